"""3D rotary embeddings of the 5B models: positions, crop region, diffusers parity, transformer, cache.

Reference values come from diffusers 0.42 itself (``CogVideoXPipeline._prepare_rotary_positional_embeddings``
called on a stand-in pipeline, ``get_resize_crop_region_for_grid``) and from numpy's
``linspace(start, stop, n, endpoint=False)`` (the spacing of the reference's numpy code), so the tests pin
both spacings of ``cogfun.models.positional_embeddings`` to their sources (docs/design.md 1.3).
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

import cogfun.models.transformer as transformer_module
from cogfun.models.positional_embeddings import resize_crop_region_for_grid, rope_positions, rotary_embeddings
from cogfun.models.presets import build_transformer

FUN_ONLY_KEYS = ("pos_embed_mode", "rope_spacing", "add_noise_in_inpaint_model")

# Transformer configs as the pipeline reads them: 5B (CogVideoX 1.0 RoPE) and V1.5 (patch_size_t=2, "slice").
CONFIG_5B = dict(patch_size=2, patch_size_t=None, sample_width=90, sample_height=60, attention_head_dim=64)
CONFIG_V15 = dict(patch_size=2, patch_size_t=2, sample_width=300, sample_height=300, attention_head_dim=64)
BASE_5B = (30, 45)  # base patch grid (height, width) of the 5B models


def diffusers_rope(config, height: int, width: int, latent_frames: int):
    """What diffusers' CogVideoX pipeline hands its transformer: ``(cos, sin)`` for a pixel size."""
    transformer = SimpleNamespace(config=SimpleNamespace(**config))
    fake_pipe = SimpleNamespace(vae_scale_factor_spatial=8, transformer=transformer)
    return CogVideoXPipeline._prepare_rotary_positional_embeddings(fake_pipe, height, width, latent_frames, "cpu")


def cogfun_rope(config, height: int, width: int, latent_frames: int, spacing: str):
    """cogfun's ``(cos, sin)`` for the same pixel size (latent frames -> temporal patches as the model does)."""
    p, p_t = config["patch_size"], config["patch_size_t"]
    frames = latent_frames if p_t is None else (latent_frames + p_t - 1) // p_t
    return rotary_embeddings(
        config["attention_head_dim"],
        height // (8 * p),
        width // (8 * p),
        frames,
        config["sample_height"] // p,
        config["sample_width"] // p,
        patch_size_t=p_t,
        spacing=spacing,
    )


# ------------------------------------------------------------------------------------------------
# Crop region of a grid inside the base box
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grid, expected",
    [
        ((30, 45), ((0, 0), (30, 45))),  # the base grid itself
        ((60, 90), ((0, 0), (30, 45))),  # same aspect, twice the size: the whole box
        ((30, 30), ((0, 8), (30, 38))),  # square: 30 wide, left = round(7.5) = 8 (half to even)
        ((45, 30), ((0, 12), (30, 32))),  # portrait: 20 wide, left = round(12.5) = 12 (half to even)
        ((16, 64), ((10, 0), (21, 45))),  # very wide: 45 * 16/64 = 11.25 -> 11 high, top = round(9.5) = 10
        ((4, 3), ((0, 12), (30, 34))),  # 30 * 3/4 = 22.5 -> 22 wide (half to even), left = round(11.5) = 12
        ((30, 35), ((0, 5), (30, 40))),
    ],
)
def test_resize_crop_region_hand_checked(grid, expected):
    assert resize_crop_region_for_grid(*grid, *BASE_5B) == expected
    # diffusers' helper takes (grid, width, height): same answer
    assert get_resize_crop_region_for_grid(grid, BASE_5B[1], BASE_5B[0]) == expected


def test_resize_crop_region_matches_diffusers_on_many_grids():
    for h in range(1, 70, 3):
        for w in range(1, 100, 7):
            assert resize_crop_region_for_grid(h, w, *BASE_5B) == get_resize_crop_region_for_grid(
                (h, w), BASE_5B[1], BASE_5B[0]
            ), (h, w)


# ------------------------------------------------------------------------------------------------
# spacing="diffusers" is diffusers' pipeline, bit for bit
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "height, width, latent_frames",
    [
        (480, 720, 13),  # sample grid 30 x 45, crop at 0
        (768, 768, 13),  # square 48 x 48: crop ((0, 8), (30, 38)), left edge off 0
        (720, 480, 7),  # portrait 45 x 30: crop ((0, 12), (30, 32))
        (256, 1024, 3),  # wide 16 x 64: crop ((10, 0), (21, 45)), top edge off 0
        (960, 1440, 2),  # 60 x 90, base aspect at twice the size
        (64, 48, 1),  # 4 x 3: crop ((0, 12), (30, 34))
    ],
)
def test_diffusers_spacing_equals_diffusers_pipeline(height, width, latent_frames):
    expected_cos, expected_sin = diffusers_rope(CONFIG_5B, height, width, latent_frames)
    cos, sin = cogfun_rope(CONFIG_5B, height, width, latent_frames, spacing="diffusers")
    tokens = latent_frames * (height // 16) * (width // 16)
    assert cos.shape == sin.shape == expected_cos.shape == (tokens, 64)
    assert cos.dtype == sin.dtype == torch.float32
    torch.testing.assert_close(cos, expected_cos, atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, expected_sin, atol=1e-6, rtol=0)


@pytest.mark.parametrize("height, width, latent_frames", [(768, 1360, 22), (480, 720, 8), (1024, 512, 2)])
@pytest.mark.parametrize("spacing", ["diffusers", "numpy"])
def test_patch_size_t_slice_grid_equals_diffusers_pipeline(height, width, latent_frames, spacing):
    # CogVideoX 1.5: integer positions (no crop), so both spacings give diffusers' result.
    expected_cos, expected_sin = diffusers_rope(CONFIG_V15, height, width, latent_frames)
    cos, sin = cogfun_rope(CONFIG_V15, height, width, latent_frames, spacing=spacing)
    assert cos.shape == expected_cos.shape == (latent_frames // 2 * (height // 16) * (width // 16), 64)
    torch.testing.assert_close(cos, expected_cos, atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, expected_sin, atol=1e-6, rtol=0)


def test_rotary_channel_layout_by_hand():
    # head 16 = [t 4 | h 6 | w 6]; each pair of channels rotates by pos * theta^(-2k/dim), cos repeated twice.
    cos, sin = rotary_embeddings(16, 2, 3, 2, 2, 3, spacing="numpy")  # 2x3 grid = the base box: integer positions
    token = 1 * 6 + 1 * 3 + 2  # (t=1, h=1, w=2) in (t, h, w) order
    angles = torch.cat([
        1.0 * 10000.0 ** (-torch.arange(0, 4, 2, dtype=torch.float64) / 4),
        1.0 * 10000.0 ** (-torch.arange(0, 6, 2, dtype=torch.float64) / 6),
        2.0 * 10000.0 ** (-torch.arange(0, 6, 2, dtype=torch.float64) / 6),
    ]).repeat_interleave(2)
    torch.testing.assert_close(cos[token].double(), angles.cos(), atol=1e-6, rtol=0)
    torch.testing.assert_close(sin[token].double(), angles.sin(), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------
# spacing="numpy" is the reference's numpy linspace
# ------------------------------------------------------------------------------------------------


def test_numpy_spacing_is_numpy_linspace_for_an_offset_crop():
    # a square 48 x 48 grid in the 30 x 45 box: crop ((0, 8), (30, 38))
    pos_t, pos_h, pos_w = rope_positions(48, 48, 5, *BASE_5B, spacing="numpy")
    np.testing.assert_array_equal(pos_t.numpy(), np.arange(5))
    np.testing.assert_array_equal(pos_h.numpy(), np.linspace(0, 30, 48, endpoint=False))
    np.testing.assert_array_equal(pos_w.numpy(), np.linspace(8, 38, 48, endpoint=False))
    # by hand: step 30/48 = 0.625 from 8
    np.testing.assert_allclose(pos_w.numpy()[[0, 1, 47]], [8.0, 8.625, 8 + 47 * 0.625], atol=1e-12, rtol=0)
    # diffusers starts at the same place but ends at 38 * 47/48 instead of 8 + 30 * 47/48
    _, dif_h, dif_w = rope_positions(48, 48, 5, *BASE_5B, spacing="diffusers")
    np.testing.assert_allclose(dif_h.numpy(), pos_h.numpy(), atol=1e-5, rtol=0)  # top crop is 0: same
    assert dif_w[0] == pos_w[0] == 8
    assert abs(float(dif_w[-1]) - 38 * 47 / 48) < 1e-5
    assert abs(float(dif_w[-1] - pos_w[-1])) == pytest.approx(8 / 48, abs=1e-5)


def test_numpy_spacing_is_numpy_linspace_for_a_wide_grid():
    pos_t, pos_h, pos_w = rope_positions(16, 64, 3, *BASE_5B, spacing="numpy")  # crop ((10, 0), (21, 45))
    np.testing.assert_array_equal(pos_h.numpy(), np.linspace(10, 21, 16, endpoint=False))
    np.testing.assert_array_equal(pos_w.numpy(), np.linspace(0, 45, 64, endpoint=False))


@pytest.mark.parametrize("grid", [(30, 45), (60, 90), (16, 24), (2, 3)])
def test_numpy_and_diffusers_spacing_agree_when_the_crop_starts_at_0(grid):
    # base aspect ratio: the crop is the whole box, both spacings are i * 30 / h and i * 45 / w
    numpy_pos = rope_positions(*grid, 4, *BASE_5B, spacing="numpy")
    diffusers_pos = rope_positions(*grid, 4, *BASE_5B, spacing="diffusers")
    for a, b in zip(numpy_pos, diffusers_pos):
        torch.testing.assert_close(a.double(), b.double(), atol=1e-5, rtol=0)
    cos_n, sin_n = rotary_embeddings(64, *grid, 4, *BASE_5B, spacing="numpy")
    cos_d, sin_d = rotary_embeddings(64, *grid, 4, *BASE_5B, spacing="diffusers")
    # float64 vs float32 angles: equal up to float32 rounding of angles below 45 rad
    torch.testing.assert_close(cos_n, cos_d, atol=1e-5, rtol=0)
    torch.testing.assert_close(sin_n, sin_d, atol=1e-5, rtol=0)


@pytest.mark.parametrize("grid", [(48, 48), (45, 30), (16, 64)])
def test_numpy_and_diffusers_spacing_differ_when_the_crop_is_offset(grid):
    cos_n, _ = rotary_embeddings(64, *grid, 2, *BASE_5B, spacing="numpy")
    cos_d, _ = rotary_embeddings(64, *grid, 2, *BASE_5B, spacing="diffusers")
    assert (cos_n - cos_d).abs().max() > 1e-2


def test_unknown_spacing_raises():
    with pytest.raises(ValueError, match="rope spacing must be one of"):
        rope_positions(4, 4, 1, 4, 4, spacing="torch")
    with pytest.raises(ValueError, match="rope_spacing must be one of"):
        build_transformer("tiny", use_rotary_positional_embeddings=True, rope_spacing="torch")


# ------------------------------------------------------------------------------------------------
# The RoPE transformer against diffusers' transformer
# ------------------------------------------------------------------------------------------------


def diffusers_twin(model) -> CogVideoXTransformer3DModel:
    """diffusers' transformer with the same config and weights (inpaint channels as plain inputs)."""
    config = {k: v for k, v in model.config.items() if not k.startswith("_") and k not in FUN_ONLY_KEYS}
    twin = CogVideoXTransformer3DModel(**config).eval()
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin


def inputs(model, frames, height, width, batch=2, text_length=7, seed=0):
    """Latents, inpaint latents, text and timesteps; RoPE models take any text length."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    latents = torch.randn(batch, frames, cfg.out_channels, height, width, generator=g)
    inpaint = torch.randn(batch, frames, cfg.in_channels - cfg.out_channels, height, width, generator=g)
    text = torch.randn(batch, text_length, cfg.text_embed_dim, generator=g)
    return latents, inpaint, text, torch.tensor([999, 10][:batch])


def pipeline_rope(model, frames, height, width):
    """The rotary embeddings diffusers' pipeline would pass for latents of this shape."""
    fake_pipe = SimpleNamespace(vae_scale_factor_spatial=8, transformer=model)
    return CogVideoXPipeline._prepare_rotary_positional_embeddings(fake_pipe, height * 8, width * 8, frames, "cpu")


@pytest.mark.parametrize("grid", [(13, 8, 8), (3, 8, 16), (2, 12, 12), (4, 16, 8)])
def test_rope_transformer_matches_diffusers(grid):
    model = build_transformer("tiny", use_rotary_positional_embeddings=True, rope_spacing="diffusers")
    twin = diffusers_twin(model)
    latents, inpaint, text, t = inputs(model, *grid)
    with torch.no_grad():
        ours = model(latents, text, t, inpaint_latents=inpaint, image_rotary_emb=model.rope_for(latents)).sample
        theirs = twin(
            torch.cat([latents, inpaint], dim=2), text, t, image_rotary_emb=pipeline_rope(model, *grid)
        ).sample
    assert ours.shape == latents.shape
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_numpy_spacing_changes_the_output_off_centre():
    grid = (3, 8, 16)  # 4 x 8 patches in the 4 x 4 box: crop ((1, 0), (3, 4)), top edge off 0
    numpy_model = build_transformer("tiny", use_rotary_positional_embeddings=True, rope_spacing="numpy")
    diffusers_model = build_transformer("tiny", use_rotary_positional_embeddings=True, rope_spacing="diffusers")
    diffusers_model.load_state_dict(numpy_model.state_dict())
    twin = diffusers_twin(diffusers_model)
    latents, inpaint, text, t = inputs(numpy_model, *grid)
    with torch.no_grad():
        ours = numpy_model(latents, text, t, inpaint_latents=inpaint, image_rotary_emb=numpy_model.rope_for(latents)).sample
        theirs = twin(
            torch.cat([latents, inpaint], dim=2), text, t, image_rotary_emb=pipeline_rope(twin, *grid)
        ).sample
        # at the sample grid the crop is the whole box: the spacings agree
        latents0, inpaint0, text0, t0 = inputs(numpy_model, 13, 8, 8)
        a = numpy_model(latents0, text0, t0, inpaint_latents=inpaint0,
                        image_rotary_emb=numpy_model.rope_for(latents0)).sample
        b = diffusers_model(latents0, text0, t0, inpaint_latents=inpaint0,
                            image_rotary_emb=diffusers_model.rope_for(latents0)).sample
    assert (ours - theirs).abs().max() > 1e-4
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("spacing", ["numpy", "diffusers"])
@pytest.mark.parametrize("grid", [(2, 8, 8), (4, 6, 8), (6, 8, 4)])
def test_patch_size_t_rope_transformer_matches_diffusers(grid, spacing):
    model = build_transformer(
        "tiny", patch_size_t=2, patch_bias=False, use_rotary_positional_embeddings=True, rope_spacing=spacing
    )
    # diffusers 0.42 ignores patch_bias on this path: its Linear patch projection always has a bias,
    # and so does ours (same keys as a released V1.5 checkpoint)
    assert isinstance(model.patch_embed.proj, torch.nn.Linear)
    twin = diffusers_twin(model)
    latents, inpaint, text, t = inputs(model, *grid)
    with torch.no_grad():
        ours = model(latents, text, t, inpaint_latents=inpaint, image_rotary_emb=model.rope_for(latents)).sample
        theirs = twin(
            torch.cat([latents, inpaint], dim=2), text, t, image_rotary_emb=pipeline_rope(model, *grid)
        ).sample
    assert ours.shape == latents.shape
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------------


def test_rotary_embeddings_are_computed_once_per_grid(monkeypatch):
    model = build_transformer("tiny", use_rotary_positional_embeddings=True)
    calls = []

    def counting(*args, **kwargs):
        calls.append((args, kwargs))
        return rotary_embeddings(*args, **kwargs)

    monkeypatch.setattr(transformer_module, "rotary_embeddings", counting)
    latents, inpaint, text, t = inputs(model, 3, 8, 16, batch=1)
    with torch.no_grad():
        first = model(latents, text, t, inpaint_latents=inpaint, image_rotary_emb=model.rope_for(latents)).sample
        cached = next(iter(model._rope_cache.values()))
        second = model(latents, text, t, inpaint_latents=inpaint, image_rotary_emb=model.rope_for(latents)).sample
    assert len(calls) == 1
    assert len(model._rope_cache) == 1 and next(iter(model._rope_cache.values())) is cached
    torch.testing.assert_close(first, second, atol=0, rtol=0)
    # the cached value is the embedding of that grid (3 frames, 4 x 8 patches, base 4 x 4)
    expected = rotary_embeddings(16, 4, 8, 3, 4, 4, spacing="numpy")
    torch.testing.assert_close(cached[0], expected[0], atol=0, rtol=0)
    # another grid computes once more; an explicit image_rotary_emb bypasses the cache
    latents, inpaint, text, t = inputs(model, 2, 8, 8, batch=1)
    with torch.no_grad():
        model(latents, text, t, inpaint_latents=inpaint, image_rotary_emb=model.rope_for(latents))
        model(latents, text, t, inpaint_latents=inpaint, image_rotary_emb=rotary_embeddings(16, 4, 4, 2, 4, 4))
    assert len(calls) == 2 and len(model._rope_cache) == 2


# ------------------------------------------------------------------------------------------------
# Called as diffusers calls it
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("patch_size_t", [None, 2])
def test_without_image_rotary_emb_no_rope_is_applied_as_in_diffusers(patch_size_t):
    model = build_transformer("tiny", use_rotary_positional_embeddings=True, patch_size_t=patch_size_t,
                              patch_bias=patch_size_t is None)
    twin = diffusers_twin(model)
    latents, inpaint, text, t = inputs(model, 2, 8, 8)
    with torch.no_grad():
        ours = model(latents, text, t, inpaint_latents=inpaint).sample
        theirs = twin(torch.cat([latents, inpaint], dim=2), text, t).sample
        with_rope = model(latents, text, t, inpaint_latents=inpaint, image_rotary_emb=model.rope_for(latents)).sample
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    assert (ours - with_rope).abs().max() > 1e-3  # RoPE matters: passing it is the caller's job
    assert len(model._rope_cache) == 1  # built once, by rope_for


def test_rope_for_is_none_for_sincos_models_and_the_pipeline_passes_it():
    assert build_transformer("tiny").rope_for(torch.zeros(1, 2, 16, 8, 8)) is None
    from cogfun.pipelines.components import build_components
    from cogfun.pipelines.pipeline import CogVideoXFunPipeline

    parts = build_components("tiny", use_rotary_positional_embeddings=True)
    pipe = CogVideoXFunPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    seen = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("image_rotary_emb")), with_kwargs=True)
    pipe.text_to_video("a red circle", height=32, width=48, num_frames=9, num_inference_steps=2,
                       generator=torch.Generator().manual_seed(0), output_type="latent")
    hook.remove()
    cos, sin = seen[0]
    expected = pipe.transformer.rotary_embeddings_for(3, 4, 6)
    assert len(seen) == 2 and all(s is seen[0] for s in seen)  # the same cached pair every step
    torch.testing.assert_close(cos, expected[0], atol=0, rtol=0)


@pytest.mark.parametrize("head_dim", [8, 24, 40])
def test_rope_head_sizes_that_cannot_split_are_refused_at_construction(head_dim):
    with pytest.raises(ValueError, match="attention_head_dim must be a multiple of 16"):
        build_transformer("tiny", use_rotary_positional_embeddings=True, attention_head_dim=head_dim)
    build_transformer("tiny", attention_head_dim=head_dim)  # sincos models take any head size
