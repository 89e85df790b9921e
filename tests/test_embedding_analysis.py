"""Tests of cogfun.models.embedding_analysis: tables per mode, similarity maps, distance to the base table."""

import math

import pytest
import torch

from cogfun.models.embedding_analysis import (
    EMBEDDING_MODES,
    aligned_base_index,
    base_grid,
    base_table,
    compare_modes,
    default_mode,
    distance_to_base,
    embedding_config,
    position_similarity_map,
    position_table,
    sincos_row_norm,
)
from cogfun.models.positional_embeddings import POS_EMBED_MODES
from cogfun.models.presets import build_transformer

TINY_BASE = (13, 4, 4)  # tiny preset: 49 frames -> 13 latent frames, 64 x 64 px -> 4 x 4 patches
TINY_DIM = 32  # 2 heads x 16


def test_config_from_preset_transformer_and_dict_agree():
    model = build_transformer("tiny", pos_embed_mode="scaled")
    assert base_grid("tiny") == base_grid(model) == TINY_BASE
    assert base_grid("cogvideox-fun-2b-inp") == (13, 30, 45)
    assert default_mode(model) == "scaled"
    assert default_mode("tiny") == "interpolate"
    assert default_mode("cogvideox-fun-5b-inp") == "rope"
    assert embedding_config({"sample_width": 12})["sample_height"] == 60  # defaults filled in
    with pytest.raises(ValueError, match="preset name"):
        embedding_config(3.5)


@pytest.mark.parametrize("mode", POS_EMBED_MODES)
def test_every_sincos_mode_gives_the_base_table_at_the_sample_grid(mode):
    table = position_table("tiny", mode, *TINY_BASE)
    base = base_table("tiny")
    assert table.shape == (13 * 4 * 4, TINY_DIM)
    torch.testing.assert_close(table, base, rtol=0, atol=1e-6)  # diffusers builds in float32
    for how in ("aligned", "nearest"):
        assert float(distance_to_base(table, base, *TINY_BASE, TINY_BASE, how=how).max()) < 1e-6
    # every sincos row has norm sqrt(D / 2): D/2 (sin, cos) pairs of norm 1
    torch.testing.assert_close(base.norm(dim=-1), torch.full((208,), sincos_row_norm(TINY_DIM), dtype=torch.float64))


@pytest.mark.parametrize("mode", EMBEDDING_MODES)
def test_similarity_map_is_one_at_the_query_and_symmetric(mode):
    grid = (3, 5, 6)
    table = position_table("tiny", mode, *grid)
    query, other = (1, 2, 3), (2, 4, 0)
    sim = position_similarity_map(table, *grid, query=query)
    assert sim.shape == grid
    assert sim[query] == pytest.approx(1.0, abs=1e-12)
    assert float(sim.max()) <= 1 + 1e-12 and float(sim.min()) >= -1 - 1e-12
    back = position_similarity_map(table, *grid, query=other)
    assert back[query] == pytest.approx(float(sim[other]), abs=1e-12)


def test_truncate_breaks_the_layout_when_the_width_changes():
    # 6 columns instead of 4: row 1 of the new grid starts at flat index 6 = base position (t=0, y=1, x=2)
    table = position_table("tiny", "truncate", 1, 2, 6)
    base = base_table("tiny")
    torch.testing.assert_close(table[6], base[1 * 4 + 2])
    # so its nearest base row is at distance 0 everywhere, but it is far from the aligned base cell
    nearest = distance_to_base(table, base, 1, 2, 6, TINY_BASE, how="nearest")
    aligned = distance_to_base(table, base, 1, 2, 6, TINY_BASE, how="aligned")
    interpolated = distance_to_base(position_table("tiny", "interpolate", 1, 2, 6), base, 1, 2, 6, TINY_BASE)
    assert float(nearest.max()) < 1e-6  # cdist via matmul: ~1e-7 rounding
    assert float(aligned[0, 1].mean()) > 3 * float(interpolated[0, 1].mean())


def test_extrapolate_reuses_base_positions_inside_the_base_range_only():
    grid = (2, 6, 6)  # 6 x 6 patches: columns/rows 4 and 5 are beyond the 4 x 4 base grid
    table = position_table("tiny", "extrapolate", *grid)
    nearest = distance_to_base(table, base_table("tiny"), *grid, TINY_BASE, how="nearest")
    assert float(nearest[:, :4, :4].max()) < 1e-6
    assert float(nearest[:, 4:, :].min()) > 0.05


def test_interpolate_is_closer_to_the_aligned_base_than_extrapolate_at_a_larger_grid():
    grid = (13, 8, 8)
    base = base_table("tiny")
    mean = {m: float(distance_to_base(position_table("tiny", m, *grid), base, *grid, TINY_BASE).mean())
            for m in ("interpolate", "extrapolate")}
    assert mean["interpolate"] < mean["extrapolate"]


def test_aligned_base_index():
    assert aligned_base_index(*TINY_BASE, TINY_BASE).tolist() == list(range(208))
    # a 2 x 2 grid over a 4 x 4 base: cell centres 0.5 and 1.5 -> base cells 1 and 3; time past 13 clips to 12
    index = aligned_base_index(14, 2, 2, TINY_BASE).reshape(14, 2, 2)
    assert index[0].tolist() == [[1 * 4 + 1, 1 * 4 + 3], [3 * 4 + 1, 3 * 4 + 3]]
    assert index[13, 0, 0].item() == 12 * 16 + 5


def test_rope_similarity_is_the_mean_cosine_of_angle_differences():
    grid = (2, 4, 4)
    table = position_table("tiny", "rope", *grid)  # [cos | sin] of each angle
    half = table.shape[1] // 2
    angles = torch.atan2(table[:, half:], table[:, :half])  # (N, head_dim)
    sim = position_similarity_map(table, *grid, query=(0, 1, 2))
    expected = torch.cos(angles - angles[1 * 4 + 2]).mean(dim=1).reshape(grid)
    torch.testing.assert_close(sim, expected, rtol=0, atol=1e-6)
    assert table.norm(dim=-1)[0].item() == pytest.approx(math.sqrt(16), abs=1e-6)  # sqrt(head_dim)


def test_rope_spacings_agree_when_the_crop_starts_at_zero_and_differ_otherwise():
    same = (position_table("tiny", "rope", 1, 4, 4), position_table("tiny", "rope_diffusers", 1, 4, 4))
    torch.testing.assert_close(same[0], same[1], rtol=0, atol=1e-6)
    # a 2 x 4 grid is fitted into the 4 x 4 box with rows 1..3: numpy and diffusers spacing differ
    differ = (position_table("tiny", "rope", 1, 2, 4), position_table("tiny", "rope_diffusers", 1, 2, 4))
    assert float((differ[0] - differ[1]).abs().max()) > 1e-3


def test_compare_modes_reports_a_mode_that_cannot_serve_the_grid():
    rows = {r["mode"]: r for r in compare_modes("tiny", 13, 6, 6, query=(0, 3, 3))}
    assert rows["truncate"]["error"] is not None and "truncate" in rows["truncate"]["error"]
    for mode in ("interpolate", "extrapolate", "scaled"):
        assert rows[mode]["error"] is None
        assert rows[mode]["similarity"][0, 3, 3] == pytest.approx(1.0)
        assert rows[mode]["mean_distance_aligned"] == pytest.approx(float(rows[mode]["distance_aligned"].mean()))


def test_errors_name_the_fix():
    table = position_table("tiny", "interpolate", 2, 3, 3)
    with pytest.raises(ValueError, match="outside the 2x3x3 grid"):
        position_similarity_map(table, 2, 3, 3, query=(2, 0, 0))
    with pytest.raises(ValueError, match="position_table"):
        position_similarity_map(table, 2, 3, 4)
    with pytest.raises(ValueError, match="mode must be one of"):
        position_table("tiny", "bilinear", 1, 2, 2)
    with pytest.raises(ValueError, match="how must be one of"):
        distance_to_base(table, base_table("tiny"), 2, 3, 3, TINY_BASE, how="far")
    with pytest.raises(ValueError, match="interpolate"):
        position_table("tiny", "interpolate", 14, 4, 4)  # more latent frames than the base table
