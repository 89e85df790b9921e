"""CogVideoXFunTransformer3DModel against diffusers' CogVideoXTransformer3DModel, loading and errors."""

import json

import pytest
import torch
import torch.nn.functional as F
from diffusers import CogVideoXTransformer3DModel

from cogfun import CogVideoXFunTransformer3DModel
from cogfun.models.presets import build_transformer, transformer_config

FUN_ONLY_KEYS = ("pos_embed_mode", "rope_spacing", "add_noise_in_inpaint_model")


def diffusers_twin(model: CogVideoXFunTransformer3DModel) -> CogVideoXTransformer3DModel:
    """diffusers' transformer with the same config and weights (inpaint channels as plain inputs)."""
    config = {k: v for k, v in model.config.items() if not k.startswith("_") and k not in FUN_ONLY_KEYS}
    twin = CogVideoXTransformer3DModel(**config).eval()
    missing, unexpected = twin.load_state_dict(model.state_dict(), strict=True)
    assert not missing and not unexpected
    return twin


def inputs(model, frames=13, height=8, width=8, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    latents = torch.randn(batch, frames, cfg.out_channels, height, width, generator=g)
    inpaint = torch.randn(batch, frames, cfg.in_channels - cfg.out_channels, height, width, generator=g)
    text = torch.randn(batch, cfg.max_text_seq_length, cfg.text_embed_dim, generator=g)
    timestep = torch.tensor([999, 10][:batch])
    return latents, inpaint, text, timestep


@pytest.fixture(scope="module")
def tiny():
    return build_transformer("tiny")


def test_state_dict_keys_are_diffusers_keys(tiny):
    assert set(tiny.state_dict()) == set(diffusers_twin(tiny).state_dict())


def test_base_grid_matches_diffusers_with_concatenated_inpaint_channels(tiny):
    twin = diffusers_twin(tiny)
    latents, inpaint, text, t = inputs(tiny)  # 13 x 8 x 8 latents = the sample grid
    with torch.no_grad():
        ours = tiny(latents, text, t, inpaint_latents=inpaint).sample
        theirs = twin(torch.cat([latents, inpaint], dim=2), text, t).sample
    assert ours.shape == latents.shape
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("grid", [(13, 8, 12), (5, 12, 8), (3, 4, 4), (4, 16, 16)])
def test_extrapolate_matches_diffusers_at_other_grids(grid):
    model = build_transformer("tiny", pos_embed_mode="extrapolate")
    twin = diffusers_twin(model)
    latents, inpaint, text, t = inputs(model, *grid)
    with torch.no_grad():
        ours = model(latents, text, t, inpaint_latents=inpaint).sample
        theirs = twin(torch.cat([latents, inpaint], dim=2), text, t).sample
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def base_table(model):
    """The base sincos table diffusers stores, (13, 4, 4, D) for the tiny model."""
    cfg = model.config
    table = model.patch_embed.pos_embedding[0, cfg.max_text_seq_length :]
    return table.reshape(13, cfg.sample_height // 2, cfg.sample_width // 2, -1)


def video_rows(model, frames, height, width):
    """The cached table's video rows at a latent grid, as (frames, h, w, D)."""
    pe = model.patch_embed._get_positional_embeddings(height, width, (frames - 1) * 4 + 1)  # latent h, w
    assert torch.all(pe[0, : model.config.max_text_seq_length] == 0)  # text gets no position
    return pe[0, model.config.max_text_seq_length :].reshape(frames, height // 2, width // 2, -1)


def test_interpolate_is_the_trilinear_resize_of_the_base_table():
    model = build_transformer("tiny", pos_embed_mode="interpolate")
    base = base_table(model).double().permute(3, 0, 1, 2)[None]  # (1, D, 13, 4, 4)
    resized = F.interpolate(base, size=(13, 6, 10), mode="trilinear", align_corners=False)
    expected = resized[0, :, :5].permute(1, 2, 3, 0).float()  # first 5 latent frames
    torch.testing.assert_close(video_rows(model, 5, 12, 20), expected, atol=1e-6, rtol=0)
    # at the sample grid every mode is the base table itself
    torch.testing.assert_close(video_rows(model, 13, 8, 8), base_table(model).float(), atol=1e-6, rtol=0)


def test_truncate_is_the_first_rows_of_the_base_table():
    model = build_transformer("tiny", pos_embed_mode="truncate")
    base = model.patch_embed.pos_embedding[0, 16:]  # (13*4*4, D)
    rows = video_rows(model, 3, 4, 12).reshape(-1, base.shape[-1])  # 3*2*6 = 36 positions
    torch.testing.assert_close(rows, base[:36].float(), atol=0, rtol=0)


def test_scaled_spans_the_base_range():
    model = build_transformer("tiny", pos_embed_mode="scaled")
    rows = video_rows(model, 2, 16, 16)  # 8x8 patches squeezed into the base 4x4 range
    base = base_table(model).float()
    # positions 0 and 2 of the 8-grid are base positions 0 and 1
    torch.testing.assert_close(rows[0, 0, 2], base[0, 0, 1], atol=1e-6, rtol=0)
    torch.testing.assert_close(rows[1, 4, 6], base[1, 2, 3], atol=1e-6, rtol=0)
    assert not torch.allclose(rows[0, 0, 1], base[0, 0, 1])


def test_positional_table_is_cached_per_grid(tiny):
    tiny.patch_embed._pos_cache.clear()
    latents, inpaint, text, t = inputs(tiny, 3, 8, 12, batch=1)
    with torch.no_grad():
        tiny(latents, text, t[:1], inpaint_latents=inpaint)
        first = next(iter(tiny.patch_embed._pos_cache.values()))
        tiny(latents, text, t[:1], inpaint_latents=inpaint)
    assert len(tiny.patch_embed._pos_cache) == 1
    assert next(iter(tiny.patch_embed._pos_cache.values())) is first


def test_modes_differ_off_grid_and_agree_on_grid():
    outs_on, outs_off = {}, {}
    for mode in ("interpolate", "extrapolate", "truncate", "scaled"):
        model = build_transformer("tiny", pos_embed_mode=mode)
        with torch.no_grad():
            latents, inpaint, text, t = inputs(model)
            outs_on[mode] = model(latents, text, t, inpaint_latents=inpaint).sample
            latents, inpaint, text, t = inputs(model, 5, 8, 12)
            outs_off[mode] = model(latents, text, t, inpaint_latents=inpaint).sample
    for mode in ("extrapolate", "truncate", "scaled"):
        torch.testing.assert_close(outs_on[mode], outs_on["interpolate"], atol=1e-6, rtol=0)
        assert (outs_off[mode] - outs_off["interpolate"]).abs().max() > 1e-4


def test_save_load_round_trip_in_released_layout(tmp_path, tiny):
    tiny.save_pretrained(tmp_path / "transformer")
    assert (tmp_path / "transformer" / "diffusion_pytorch_model.safetensors").exists()
    loaded = CogVideoXFunTransformer3DModel.from_pretrained(tmp_path, subfolder="transformer").eval()
    assert loaded.config.pos_embed_mode == "interpolate"
    latents, inpaint, text, t = inputs(tiny, 5, 8, 12)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(latents, text, t, inpaint_latents=inpaint).sample,
            tiny(latents, text, t, inpaint_latents=inpaint).sample,
            atol=0,
            rtol=0,
        )


def test_loads_a_diffusers_checkpoint_key_for_key(tmp_path, tiny):
    twin = diffusers_twin(tiny)
    twin.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["_class_name"] == "CogVideoXTransformer3DModel"
    loaded = CogVideoXFunTransformer3DModel.from_pretrained(tmp_path).eval()
    for key, value in tiny.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize("narrow", [16, 32])
def test_narrow_checkpoint_is_widened_with_zero_channels(tmp_path, narrow):
    small = build_transformer("tiny", in_channels=narrow, seed=3)
    small.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="zero-initialised"):
        wide = CogVideoXFunTransformer3DModel.from_pretrained(tmp_path, in_channels=33).eval()
    assert wide.config.in_channels == 33
    weight = wide.patch_embed.proj.weight
    assert weight.shape[1] == 33
    assert torch.equal(weight[:, :narrow], small.patch_embed.proj.weight)
    assert torch.all(weight[:, narrow:] == 0)
    # The widened model ignores the new channels: same output whatever they hold.
    latents, inpaint, text, t = inputs(wide, 3, 8, 8)
    with torch.no_grad():
        a = wide(latents, text, t, inpaint_latents=inpaint).sample
        b = wide(latents, text, t, inpaint_latents=inpaint * 0 + 5).sample if narrow == 16 else None
        c = small(torch.cat([latents, inpaint], 2)[:, :, :narrow], text, t, inpaint_latents=None).sample
    if b is not None:
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    torch.testing.assert_close(a, c, atol=1e-5, rtol=0)


def test_widening_a_patch_size_t_model_keeps_its_weights():
    model = build_transformer("tiny", in_channels=16, patch_size_t=2, patch_bias=False, use_rotary_positional_embeddings=True)
    old = model.patch_embed.proj.weight.detach().clone()  # (D, 16*2*2*2)
    with pytest.warns(UserWarning):
        model.widen_input_channels(33)
    new = model.patch_embed.proj.weight.view(old.shape[0], 33, 8)
    assert torch.equal(new[:, :16], old.view(old.shape[0], 16, 8))
    assert torch.all(new[:, 16:] == 0)


# ------------------------------------------------------------------------------------------------
# Errors name the rule and the fix
# ------------------------------------------------------------------------------------------------


def test_error_height_width_not_multiple_of_16_pixels(tiny):
    latents, inpaint, text, t = inputs(tiny, 3, 7, 8)
    with pytest.raises(ValueError, match="multiples of 16 pixels"):
        tiny(latents, text, t, inpaint_latents=inpaint)


def test_error_text_length(tiny):
    latents, inpaint, text, t = inputs(tiny, 3)
    with pytest.raises(ValueError, match="max_text_seq_length=16.*padding='max_length'"):
        tiny(latents, text[:, :10], t, inpaint_latents=inpaint)


def test_error_too_many_latent_frames_for_interpolate(tiny):
    latents, inpaint, text, t = inputs(tiny, 14)
    with pytest.raises(ValueError, match="keeps the base table's 13 latent frames"):
        tiny(latents, text, t, inpaint_latents=inpaint)


def test_error_inpaint_channels_and_shape(tiny):
    latents, inpaint, text, t = inputs(tiny, 3)
    with pytest.raises(ValueError, match="must have 17 channels"):
        tiny(latents, text, t, inpaint_latents=inpaint[:, :, :16])
    with pytest.raises(ValueError, match="to match the latents"):
        tiny(latents, text, t, inpaint_latents=inpaint[:, :2])
    with pytest.raises(ValueError, match="pass inpaint_latents"):
        tiny(latents, text, t)


def test_error_unknown_mode_and_preset():
    with pytest.raises(ValueError, match="pos_embed_mode must be one of"):
        build_transformer("tiny", pos_embed_mode="bilinear")
    with pytest.raises(ValueError, match="unknown preset"):
        build_transformer("huge")
    with pytest.raises(ValueError, match="unknown transformer config keys"):
        transformer_config("tiny", num_layer=3)


def test_real_presets_have_published_sizes():
    from cogfun.models.presets import count_parameters

    sizes = {name: count_parameters(build_transformer(name)) / 1e9 for name in (
        "cogvideox-fun-2b-inp", "cogvideox-fun-5b-inp", "cogvideox-fun-v1.5-5b-inp")}
    assert sizes["cogvideox-fun-2b-inp"] == pytest.approx(1.69, abs=0.01)
    assert sizes["cogvideox-fun-5b-inp"] == pytest.approx(5.57, abs=0.01)
    assert sizes["cogvideox-fun-v1.5-5b-inp"] == pytest.approx(5.57, abs=0.01)
    assert next(build_transformer("cogvideox-fun-2b-inp").parameters()).device.type == "meta"
