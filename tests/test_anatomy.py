"""cogfun.models.anatomy: every teaching picture's data agrees with the model's own forward pass."""

import pytest
import torch

from cogfun.models import anatomy as A
from cogfun.models.presets import build_transformer


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return build_transformer("tiny", meta=False, seed=0).eval()


def _inputs(model, frames=2, h=4, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = model.config
    noisy = torch.randn(1, frames, c.out_channels, h, w, generator=g)
    inpaint = torch.randn(1, frames, c.in_channels - c.out_channels, h, w, generator=g)
    text = torch.randn(1, c.max_text_seq_length, c.text_embed_dim, generator=g)
    return noisy, inpaint, text, torch.tensor([500])


def test_input_stack_is_the_33_channels_in_order(model):
    noisy, inpaint, _, _ = _inputs(model)
    stack = A.input_stack(noisy, inpaint)
    assert [t.shape[2] for t in stack.values()] == [16, 1, 16, 33]
    assert torch.equal(stack["input"][:, :, :16], noisy) and torch.equal(stack["input"][:, :, 16:17], inpaint[:, :, :1])
    with pytest.raises(ValueError, match="share"):
        A.input_stack(noisy, inpaint[:, :1])


def test_patchify_round_trips_and_the_patch_projection_is_linear_in_patches(model):
    noisy, inpaint, _, _ = _inputs(model)
    x = A.input_stack(noisy, inpaint)["input"]  # (1, 2, 33, 4, 6)
    tokens = A.patchify(x, 2)
    assert tokens.shape == (1, 2 * 2 * 3, 33 * 4)
    assert torch.equal(A.unpatchify(tokens, 2, 4, 6, 2), x)
    # token 1 is frame 0, patch row 0, patch column 1: latent pixels rows 0-1, columns 2-3
    assert torch.equal(tokens[0, 1].view(33, 2, 2), x[0, 0, :, 0:2, 2:4])
    projected = A.patch_tokens(model, x)
    weight = model.patch_embed.proj.weight.flatten(1)  # (D, 33 * 2 * 2), the (c p q) order of patchify
    torch.testing.assert_close(projected, tokens @ weight.T + model.patch_embed.proj.bias, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="multiples"):
        A.patchify(torch.zeros(1, 1, 16, 5, 6))


def test_token_layout_of_the_2b_sample_grid():
    big = build_transformer("cogvideox-fun-2b-inp")  # meta device
    layout = A.token_layout(big, 49, 480, 720)
    assert (layout.text, layout.frames, layout.rows, layout.cols) == (226, 13, 30, 45)
    assert layout.video == 17550 and layout.total == 17776


def test_recorded_attention_gives_the_same_output_and_rows_that_sum_to_one(model):
    noisy, inpaint, text, t = _inputs(model)
    with torch.no_grad():
        reference = model(noisy, text, t, inpaint_latents=inpaint, return_dict=False)[0]
    maps = A.attention_maps(model, noisy, text, t, inpaint, blocks=(0, 1))
    layout = A.token_layout(model, 5, 32, 48)  # 2 latent frames of 4x6 latents = 2 x 2 x 3 patches
    assert set(maps) == {0, 1} and maps[0].shape == (1, layout.total, layout.total)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(1, layout.total), atol=1e-5, rtol=1e-5)
    # the processors are restored, and recording did not change the output
    assert type(model.transformer_blocks[0].attn1.processor).__name__ != "RecordingAttnProcessor"
    for block in model.transformer_blocks:
        block.attn1.set_processor(A.RecordingAttnProcessor())
    with torch.no_grad():
        recorded = model(noisy, text, t, inpaint_latents=inpaint, return_dict=False)[0]
    from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

    for block in model.transformer_blocks:
        block.attn1.set_processor(CogVideoXAttnProcessor2_0())
    torch.testing.assert_close(recorded, reference, atol=1e-5, rtol=1e-5)


def test_timestep_conditioning_shapes_and_that_time_changes_it(model):
    temb = A.timestep_embedding(model, torch.tensor([0, 999]))
    assert temb.shape == (2, model.config.time_embed_dim) and not torch.allclose(temb[0], temb[1])
    parts = A.adaptive_norm(model, torch.tensor([0, 999]))
    inner = model.config.num_attention_heads * model.config.attention_head_dim
    assert list(parts) == ["shift", "scale", "gate", "text_shift", "text_scale", "text_gate"]
    assert all(v.shape == (2, inner) for v in parts.values())
    # the block's own norm gives the same modulation
    x = torch.randn(2, 3, inner)
    e = torch.randn(2, 4, inner)
    norm = model.transformer_blocks[0].norm1
    with torch.no_grad():
        out, _, gate, _ = norm(x, e, A.timestep_embedding(model, torch.tensor([0, 999])))
    expected = norm.norm(x) * (1 + parts["scale"][:, None]) + parts["shift"][:, None]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(gate[:, 0], parts["gate"])


def test_positional_table_is_the_models_and_splits_time_from_space(model):
    table, split = A.positional_table(model, 5, 64, 64)  # the tiny preset's sample grid: 8x8 latents, 2 frames
    layout = A.token_layout(model, 5, 64, 64)
    assert table.shape == (layout.video, model.config.num_attention_heads * model.config.attention_head_dim)
    stored = model.patch_embed.pos_embedding[0, model.config.max_text_seq_length:][: layout.video]
    torch.testing.assert_close(table, stored)
    # the temporal channels are equal within a frame; the spatial ones repeat from frame to frame
    per_frame = layout.rows * layout.cols
    assert torch.allclose(table[:per_frame, split["temporal"]], table[:1, split["temporal"]].expand(per_frame, -1))
    torch.testing.assert_close(table[:per_frame, split["spatial"]], table[per_frame:2 * per_frame, split["spatial"]])


def test_parameter_counts_cover_every_parameter_at_toy_and_real_size(model):
    for m in (model, build_transformer("cogvideox-fun-2b-inp")):
        counts = A.parameter_counts(m)
        assert sum(counts.values()) == sum(p.numel() for p in m.parameters())
        assert counts["attention"] > 0 and counts["feed-forward"] > 0 and counts["adaptive norms"] > 0
    big = A.parameter_counts(build_transformer("cogvideox-fun-2b-inp"))
    assert 1.6e9 < sum(big.values()) < 1.8e9


def test_positional_table_at_another_grid_follows_the_pos_embed_mode(model):
    table, _ = A.positional_table(model, 5, 32, 48)  # not the sample grid: the model's cached table for that grid
    noisy = torch.zeros(1, 2, 16, 4, 6)
    embedded = model.patch_embed(torch.zeros(1, 16, 32), torch.cat([noisy, torch.zeros(1, 2, 17, 4, 6)], dim=2))
    video = embedded[0, 16:] - A.patch_tokens(model, torch.zeros(1, 2, 33, 4, 6))[0]  # what was added: the table
    torch.testing.assert_close(video, table, atol=1e-5, rtol=1e-5)
