"""Control and Pose checkpoints (32 input channels) through the one pipeline: ``control_video``.

The same tiny weights and inputs through diffusers' ``CogVideoXFunControlPipeline`` give the same output latents.
"""

import numpy as np
import pytest
import torch
from diffusers import CogVideoXFunControlPipeline, CogVideoXTransformer3DModel
from PIL import Image

from cogfun.models.presets import build_scheduler
from cogfun.pipelines import CogVideoXFunPipeline
from cogfun.pipelines.components import build_components

H, W = 32, 48
FUN_ONLY_KEYS = ("pos_embed_mode", "rope_spacing", "add_noise_in_inpaint_model")
# 2B Control: sincos; 5B Control: RoPE (diffusers' spacing, which diffusers' pipeline builds).
# The sample grid is the test's (4 x 6 latents, 9 frames), where cogfun's resized sincos table is the base table.
SAMPLE = dict(sample_height=H // 8, sample_width=W // 8, sample_frames=9)
FAMILIES = {
    "2b": dict(in_channels=32, **SAMPLE),
    "5b": dict(in_channels=32, use_rotary_positional_embeddings=True, rope_spacing="diffusers", **SAMPLE),
}


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    yield


def control_pipe(**overrides) -> CogVideoXFunPipeline:
    pipe = CogVideoXFunPipeline(**build_components("tiny", **overrides))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def control_frames(num_frames=9, seed=0, h=H, w=W) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for _ in range(num_frames)]


def embeds(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 16, 32, generator=g), torch.randn(1, 16, 32, generator=g)


def diffusers_twin(pipe: CogVideoXFunPipeline) -> CogVideoXFunControlPipeline:
    """diffusers' Control pipeline on the same VAE, text encoder and weights (diffusers' own transformer class)."""
    config = {k: v for k, v in pipe.transformer.config.items() if not k.startswith("_") and k not in FUN_ONLY_KEYS}
    transformer = CogVideoXTransformer3DModel(**config).eval()
    transformer.load_state_dict(pipe.transformer.state_dict(), strict=True)  # key for key
    twin = CogVideoXFunControlPipeline(
        tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, vae=pipe.vae, transformer=transformer,
        scheduler=build_scheduler("ddim"),
    )
    twin.set_progress_bar_config(disable=True)
    return twin


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_matches_diffusers_control_pipeline(family):
    pipe = control_pipe(**FAMILIES[family])
    frames = control_frames()
    positive, negative = embeds()
    common = dict(prompt_embeds=positive, negative_prompt_embeds=negative, num_inference_steps=2, guidance_scale=6.0,
                  output_type="latent")
    ours = pipe(control_video=frames, generator=torch.Generator().manual_seed(0), **common).frames
    theirs = diffusers_twin(pipe)(control_video=frames, height=H, width=W, generator=torch.Generator().manual_seed(0),
                                  **common).frames
    assert ours.shape == theirs.shape == (1, 3, 16, H // 8, W // 8)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_control_latents_reach_the_transformer_after_the_noisy_latents():
    pipe = control_pipe(in_channels=32)
    seen = {}
    original = pipe.transformer.forward

    def forward(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    pipe.transformer.forward = forward
    frames = control_frames()
    pipe("a red circle", control_video=frames, num_inference_steps=1, output_type="latent")
    assert "inpaint_latents" not in seen
    control = seen["control_latents"]
    assert control.shape == (2, 3, 16, H // 8, W // 8)  # CFG doubles the batch; 16 + 16 = 32 channels
    expected = pipe.encode_video(torch.stack([torch.from_numpy(np.array(f)) for f in frames]).permute(3, 0, 1, 2)[None]
                                 .float() / 127.5 - 1)
    torch.testing.assert_close(control[1], expected[0], atol=1e-5, rtol=1e-5)


def test_any_number_of_control_frames():
    pipe = control_pipe(in_channels=32)
    run = dict(prompt="a red circle", num_inference_steps=1, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="using its first 9"):
        out = pipe(control_video=control_frames(11), **run)
    assert out.frames.shape == (1, 9, H, W, 3)
    # num_frames picks the first frames: the same as passing those frames alone
    def latents(**kwargs):
        return pipe(**{**run, "generator": torch.Generator().manual_seed(0)}, output_type="latent", **kwargs)

    first = latents(control_video=control_frames(11), num_frames=5)
    alone = latents(control_video=control_frames(11)[:5])
    torch.testing.assert_close(first.frames, alone.frames)
    # a control clip of another size is fitted to height x width
    with pytest.warns(UserWarning, match="resized to cover and centre cropped"):
        out = pipe(control_video=control_frames(5, h=40, w=64), height=H, width=W, **run)
    assert out.frames.shape == (1, 5, H, W, 3)
    # one control clip drives every video of the batch
    out = pipe(control_video=control_frames(5), num_videos_per_prompt=2, **run)
    assert out.frames.shape == (2, 5, H, W, 3)


def test_v15_control_pads_an_odd_latent_frame_count():
    pipe = control_pipe(in_channels=32, patch_size_t=2, patch_bias=False, use_rotary_positional_embeddings=True)
    out = pipe("a red circle", control_video=control_frames(9), num_inference_steps=1, output_type="latent")
    assert out.frames.shape == (1, 3, 16, H // 8, W // 8)  # 3 latent frames, padded to 4 inside


def test_errors_name_the_input_to_pass():
    control = control_pipe(in_channels=32)
    with pytest.raises(ValueError, match="pass control_video"):
        control("a red circle", num_frames=5, height=H, width=W, num_inference_steps=1)
    with pytest.raises(ValueError, match="pass only control_video"):
        control("x", control_video=control_frames(5), video=control_frames(5), num_inference_steps=1)
    inpaint = control_pipe()
    with pytest.raises(ValueError, match="load a Control or Pose checkpoint"):
        inpaint("x", control_video=control_frames(5), num_inference_steps=1)
    with pytest.raises(ValueError, match="control_latents drive Control/Pose models"):
        latents = torch.zeros(1, 2, 16, 4, 6)
        inpaint.transformer(latents, torch.zeros(1, 16, 32), 1, control_latents=latents)
