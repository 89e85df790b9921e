"""Tests for cogfun.training.random_masks: the ten training mask kinds and their probabilities."""

import pytest
import torch

from cogfun.training.random_masks import (
    IMAGE_MASK_PROBABILITIES,
    MASK_KINDS,
    MASK_PROBABILITIES,
    random_mask,
    random_mask_batch,
)

F_, H, W = 17, 16, 24


def _draws(kind, n=20, f=F_, h=H, w=W, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        mask, got = random_mask(f, h, w, g, kind=kind)
        assert got == kind
        assert mask.shape == (1, f, h, w) and mask.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        out.append(mask[0])  # (F, H, W)
    return out


def _is_filled_rectangle(frame):
    """frame (H, W) in {0,1}: True when its ones are exactly one axis-aligned filled rectangle."""
    rows = frame.any(dim=1).nonzero().flatten()
    cols = frame.any(dim=0).nonzero().flatten()
    if len(rows) == 0:
        return False
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    box = torch.zeros_like(frame)
    box[r0:r1, c0:c1] = 1
    return torch.equal(box, frame)


def _same_on_every_frame(mask):
    return torch.equal(mask, mask[:1].expand_as(mask))


def test_constants_match_the_reference():
    assert len(MASK_KINDS) == len(MASK_PROBABILITIES) == 10
    assert MASK_PROBABILITIES == (0.05, 0.2, 0.2, 0.2, 0.05, 0.05, 0.05, 0.1, 0.05, 0.05)
    assert sum(MASK_PROBABILITIES) == pytest.approx(1.0)


def test_all_regenerates_everything():
    for m in _draws("all", n=3):
        assert bool((m == 1).all())


def test_first_frames_keeps_the_first_k_frames():
    ks = set()
    for m in _draws("first_frames", n=40):
        per_frame = m.flatten(1)  # (F, H*W)
        assert bool((per_frame == per_frame[:, :1]).all())  # whole frames
        col = per_frame[:, 0].tolist()
        k = col.index(1.0)
        assert col == [0.0] * k + [1.0] * (F_ - k)
        ks.add(k)
    assert ks == {1, 2, 3, 4}


def test_middle_keeps_k_frames_at_both_ends():
    ks = set()
    for m in _draws("middle", n=40):
        col = m[:, 0, 0].tolist()
        k = col.index(1.0)
        assert col == [0.0] * k + [1.0] * (F_ - 2 * k) + [0.0] * k
        assert bool((m == m[:, :1, :1]).all())
        ks.add(k)
    assert ks == {1, 2, 3, 4}
    # with 5 frames and k >= 3 nothing is regenerated (the reference's slice is empty)
    assert any(float(m.sum()) == 0 for m in _draws("middle", n=40, f=5))


def test_box_is_one_rectangle_on_every_frame_with_bounded_sides():
    for m in _draws("box", n=30):
        assert _same_on_every_frame(m)
        assert _is_filled_rectangle(m[0])
        rows = int(m[0].any(dim=1).sum())
        cols = int(m[0].any(dim=0).sum())
        assert 1 <= rows <= H // 4 * 3 - 1 and 1 <= cols <= W // 4 * 3 - 1


def test_box_span_is_one_rectangle_over_a_contiguous_frame_range():
    for m in _draws("box_span", n=30):
        on = m.flatten(1).any(dim=1).nonzero().flatten().tolist()
        t0, t1 = on[0], on[-1] + 1
        assert on == list(range(t0, t1))
        assert t0 <= F_ // 2 - 1 and F_ // 2 <= t1 <= F_ - 1
        assert _is_filled_rectangle(m[t0])
        assert _same_on_every_frame(m[t0:t1])


def test_bernoulli_is_half_the_pixels():
    (m,) = _draws("bernoulli", n=1, f=9, h=64, w=64)
    assert abs(m.mean().item() - 0.5) < 0.01
    assert not _same_on_every_frame(m)


def test_small_boxes_put_one_small_box_on_up_to_half_the_frames():
    counts = set()
    for m in _draws("small_boxes", n=30):
        on = [t for t in range(F_) if m[t].any()]
        assert 1 <= len(on) <= F_ // 2
        counts.add(len(on))
        for t in on:
            assert _is_filled_rectangle(m[t])
            assert int(m[t].any(dim=1).sum()) <= H // 4 and int(m[t].any(dim=0).sum()) <= W // 4
    assert len(counts) > 3


def _ellipses(h, w, axes_x, axes_y):
    """Every candidate ellipse mask (N, H, W) with integer centre and semi-axes."""
    y = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    x = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    cand = []
    for a in axes_x:
        for b in axes_y:
            cy, cx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            cy, cx = cy.reshape(-1, 1, 1).float(), cx.reshape(-1, 1, 1).float()
            cand.append((((y - cy) / b) ** 2 + ((x - cx) / a) ** 2 < 1).float())
    return torch.cat(cand)


def test_ellipse_and_circle_match_the_formula_for_some_centre_and_axes():
    m_ = min(H, W)
    radii = range(m_ // 8, m_ // 4)  # [2, 4)
    ellipses = _ellipses(H, W, radii, radii)
    circles = torch.cat([_ellipses(H, W, [r], [r]) for r in radii])
    for kind, cands in (("ellipse", ellipses), ("circle", circles)):
        for m in _draws(kind, n=10):
            assert _same_on_every_frame(m) and m.sum() > 0
            assert bool((cands == m[0]).flatten(1).all(dim=1).any()), kind


def test_random_frames_regenerates_whole_frames():
    fractions = []
    for m in _draws("random_frames", n=30):
        per_frame = m.flatten(1)
        assert bool((per_frame == per_frame[:, :1]).all())
        fractions.append(per_frame[:, 0].mean().item())
    assert abs(sum(fractions) / len(fractions) - 0.5) < 0.1


def test_kind_frequencies_match_the_probabilities():
    g = torch.Generator().manual_seed(123)
    n = 4000
    counts = dict.fromkeys(MASK_KINDS, 0)
    for _ in range(n):
        _, kind = random_mask(5, 8, 8, g)
        counts[kind] += 1
    for kind, p in zip(MASK_KINDS, MASK_PROBABILITIES):
        assert abs(counts[kind] / n - p) < 0.025, (kind, counts[kind] / n, p)


def test_single_images_draw_box_or_all():
    g = torch.Generator().manual_seed(5)
    kinds = [random_mask(1, 8, 8, g)[1] for _ in range(1000)]
    assert set(kinds) == {"box", "all"}
    assert abs(kinds.count("box") / 1000 - IMAGE_MASK_PROBABILITIES[0]) < 0.04


def test_same_seed_same_masks_and_batch_is_sequential_draws():
    a, ka = random_mask_batch(6, 9, 16, 16, torch.Generator().manual_seed(42))
    b, kb = random_mask_batch(6, 9, 16, 16, torch.Generator().manual_seed(42))
    assert a.shape == (6, 1, 9, 16, 16) and torch.equal(a, b) and ka == kb
    g = torch.Generator().manual_seed(42)
    singles = [random_mask(9, 16, 16, g) for _ in range(6)]
    assert torch.equal(a, torch.stack([m for m, _ in singles])) and ka == [k for _, k in singles]
    c, _ = random_mask_batch(6, 9, 16, 16, torch.Generator().manual_seed(43))
    assert not torch.equal(a, c)


def test_errors():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="kind must be one of"):
        random_mask(9, 16, 16, g, kind="square")
    with pytest.raises(ValueError, match="height and width >= 8"):
        random_mask(9, 4, 16, g)
    with pytest.raises(ValueError, match="needs num_frames >= 2"):
        random_mask(1, 16, 16, g, kind="box_span")
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        random_mask(0, 16, 16, g)
