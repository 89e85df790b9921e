"""Every released CogVideoX-Fun checkpoint family x every mode: loads / runs / refuses, at tiny widths.

Each family is its published config (``cogfun.models.presets``: same keys, channels, sincos or RoPE, sample grid,
``patch_size_t``) with only the widths shrunk, run through the one pipeline in every mode it supports (32 x 48,
9 frames, 2 steps). The README's "Released checkpoints: conformance" table is this file's summary.
"""

import numpy as np
import pytest
import torch
from diffusers import CogVideoXTransformer3DModel
from PIL import Image

from cogfun.models.presets import build_transformer, transformer_config
from cogfun.models.transformer import CogVideoXFunTransformer3DModel
from cogfun.pipelines import CogVideoXFunPipeline, generate_long_video
from cogfun.pipelines.components import build_components

H, W, FRAMES, STEPS = 32, 48, 9, 2

# Widths only: heads, head size, depth, time/text widths and the text length (the tiny T5's).
TINY_WIDTHS = dict(num_attention_heads=2, attention_head_dim=16, num_layers=2, time_embed_dim=32, text_embed_dim=32,
                   max_text_seq_length=16)

# family -> (preset, modes it runs). V1.0 and V1.1 share each architecture; Control and Pose share theirs.
INPAINT_MODES = ("t2v", "i2v", "start+end", "v2v", "inpaint", "long")
FAMILIES = {
    "V1.0/V1.1 2B InP": ("cogvideox-fun-2b-inp", INPAINT_MODES),
    "V1.0/V1.1 5B InP": ("cogvideox-fun-5b-inp", INPAINT_MODES),
    "V1.1 2B Control/Pose": ("cogvideox-fun-v1.1-2b-control", ("control",)),
    "V1.1 5B Control/Pose": ("cogvideox-fun-v1.1-5b-control", ("control",)),
    "V1.5 5B InP": ("cogvideox-fun-v1.5-5b-inp", INPAINT_MODES),
}
ALL_MODES = (*INPAINT_MODES, "control")
FUN_ONLY_KEYS = ("pos_embed_mode", "rope_spacing", "add_noise_in_inpaint_model")


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    yield


_PIPES: dict[str, CogVideoXFunPipeline] = {}


def family_pipe(family: str) -> CogVideoXFunPipeline:
    """The family's published config at tiny widths, with the tiny VAE, T5 and tokenizer (cached per family)."""
    if family not in _PIPES:
        preset = FAMILIES[family][0]
        parts = build_components("tiny")
        parts["transformer"] = build_transformer(preset, meta=False, seed=0, **TINY_WIDTHS)
        pipe = CogVideoXFunPipeline(**parts)
        pipe.set_progress_bar_config(disable=True)
        _PIPES[family] = pipe
    return _PIPES[family]


def frames(n=FRAMES, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, H, W, 3)).astype(np.float32)


def box_mask() -> np.ndarray:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[8:24, 16:40] = 255
    return mask


def run(pipe: CogVideoXFunPipeline, mode: str):
    """One generation in ``mode``; returns ``(F, H, W, 3)`` frames."""
    common = dict(num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0))
    prompt = "a red circle moving left"
    if mode == "t2v":
        return pipe.text_to_video(prompt, num_frames=FRAMES, height=H, width=W, **common).frames[0]
    if mode == "i2v":
        return pipe.image_to_video(prompt, frames(1)[0], num_frames=FRAMES, **common).frames[0]
    if mode == "start+end":
        end = frames(1, 1)[0]
        return pipe.image_to_video(prompt, frames(1)[0], end_image=end, num_frames=FRAMES, **common).frames[0]
    if mode == "v2v":
        return pipe.video_to_video(prompt, frames(), **common).frames[0]
    if mode == "inpaint":
        return pipe.inpaint(prompt, frames(), box_mask(), **common).frames[0]
    if mode == "long":
        return generate_long_video(pipe, prompt, 13, segment_frames=FRAMES, overlap=4, image=frames(1)[0],
                                   height=H, width=W, **common)
    if mode == "control":
        return pipe(prompt, control_video=[Image.fromarray((f * 255).astype(np.uint8)) for f in frames()],
                    **common).frames[0]
    raise AssertionError(mode)


# ------------------------------------------------------------------------------------------------
# The configs: tiny widths, everything else published
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_tiny_family_keeps_the_published_config_but_the_widths(family):
    published = transformer_config(FAMILIES[family][0])
    tiny = family_pipe(family).transformer.config
    for key, value in published.items():
        if key not in TINY_WIDTHS:
            assert tiny[key] == value, key
    control = "Control" in family
    assert tiny["in_channels"] == (32 if control else 33) and tiny["out_channels"] == 16
    assert tiny["use_rotary_positional_embeddings"] == ("5B" in family)
    assert tiny["patch_size_t"] == (2 if "V1.5" in family else None)
    assert tiny["patch_bias"] == ("V1.5" not in family)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_loads_key_for_key_in_cogfun_and_diffusers(family, tmp_path):
    """A folder saved with the family's config loads into cogfun's class and into diffusers' (released checkpoints
    name diffusers' class), with the same weights and no missing or extra key."""
    model = family_pipe(family).transformer
    model.save_pretrained(tmp_path)
    ours = CogVideoXFunTransformer3DModel.from_pretrained(tmp_path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)
    config = {k: v for k, v in model.config.items() if not k.startswith("_") and k not in FUN_ONLY_KEYS}
    theirs = CogVideoXTransformer3DModel(**config)
    assert theirs.load_state_dict(model.state_dict(), strict=True)  # raises on a missing or unexpected key


# ------------------------------------------------------------------------------------------------
# Every mode: runs where supported, refused with a clear error elsewhere
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family, mode", [(f, m) for f in sorted(FAMILIES) for m in FAMILIES[f][1]])
def test_supported_mode_runs(family, mode):
    out = np.asarray(run(family_pipe(family), mode))
    expected_frames = 13 if mode == "long" else FRAMES
    assert out.shape == (expected_frames, H, W, 3)
    assert np.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


UNSUPPORTED = [(f, m) for f in sorted(FAMILIES) for m in ALL_MODES if m not in FAMILIES[f][1]]


@pytest.mark.parametrize("family, mode", UNSUPPORTED)
def test_unsupported_mode_is_refused_naming_the_input(family, mode):
    match = "load a Control or Pose checkpoint" if mode == "control" else "control_video"
    with pytest.raises(ValueError, match=match):
        run(family_pipe(family), mode)


# ------------------------------------------------------------------------------------------------
# V1.5: odd latent frame counts are padded, never refused
# ------------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self, pipe):
        self.pipe, self.calls, self.original = pipe, [], pipe.transformer.forward

    def __enter__(self):
        def forward(*args, **kwargs):
            self.calls.append(kwargs)
            return self.original(*args, **kwargs)

        self.pipe.transformer.forward = forward
        return self

    def __exit__(self, *exc):
        self.pipe.transformer.forward = self.original


@pytest.mark.parametrize("num_frames, latent_frames, padded", [(5, 2, 2), (9, 3, 4), (13, 4, 4), (17, 5, 6)])
def test_v15_pads_odd_latent_frame_counts_at_the_start(num_frames, latent_frames, padded):
    pipe = family_pipe("V1.5 5B InP")
    assert pipe.temporal_padding(latent_frames) == padded - latent_frames
    image = frames(1)[0]
    with Recorder(pipe) as rec:
        out = pipe.image_to_video("a red circle", image, num_frames=num_frames, num_inference_steps=1,
                                  output_type="latent")
    assert out.frames.shape == (1, latent_frames, 16, H // 8, W // 8)  # the padded frames are dropped
    call = rec.calls[0]
    assert call["hidden_states"].shape[1] == padded
    inpaint = call["inpaint_latents"]
    assert inpaint.shape[1] == padded
    # the first frame (the kept image: mask channel = scaling factor) is repeated at the start
    for i in range(padded - latent_frames + 1):
        torch.testing.assert_close(inpaint[:, i], inpaint[:, padded - latent_frames])
    assert call["image_rotary_emb"][0].shape[0] == (padded // 2) * (H // 16) * (W // 16)


def test_v15_noise_is_drawn_at_the_padded_length_as_diffusers_does():
    """Same generator, same noise: the padded run denoises ``randn(B, F + pad, ...)``, as diffusers' CogVideoX 1.5
    pipelines do, and returns its last ``F`` latent frames."""
    pipe = family_pipe("V1.5 5B InP")
    kwargs = dict(num_frames=9, height=H, width=W, num_inference_steps=STEPS, output_type="latent")
    drawn = pipe("a red circle", generator=torch.Generator().manual_seed(3), **kwargs).frames
    noise = torch.randn(1, 4, 16, H // 8, W // 8, generator=torch.Generator().manual_seed(3))
    given = pipe("a red circle", latents=noise, **kwargs).frames
    torch.testing.assert_close(drawn, given, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"latents must have shape \(1, 4, 16"):
        pipe("a red circle", latents=noise[:, 1:], **kwargs)
    # one frame (an image): one latent frame, padded to one temporal patch
    assert pipe("a red circle", num_frames=1, height=H, width=W, num_inference_steps=1).frames.shape == (1, 1, H, W, 3)
