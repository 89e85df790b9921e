"""Tests for cogfun.buckets: token arithmetic, budget rules, aspect-ratio buckets, sampler."""

import math

import pytest

from cogfun.buckets import (
    REFERENCE_SCHEDULE,
    STAGE_BUDGETS,
    Bucket,
    BucketBatchSampler,
    CropBox,
    StageSchedule,
    aspect_ratio_buckets,
    bucket_for,
    budget_side,
    frames_for_budget,
    latent_frames,
    nearest_bucket,
    nearest_ratio,
    num_tokens,
    plan_buckets,
    plan_table,
    resize_crop_box,
    sampler_statistics,
)

# ---------------------------------------------------------------------------------------------
# Token arithmetic and budgets
# ---------------------------------------------------------------------------------------------


def test_latent_frames_values_and_error():
    assert [latent_frames(f) for f in (1, 5, 9, 49, 85)] == [1, 2, 3, 13, 22]
    with pytest.raises(ValueError, match=r"num_frames must be 4k\+1 \(got 48\); try 49"):
        latent_frames(48)
    with pytest.raises(ValueError, match="4k"):
        latent_frames(0)


def test_num_tokens_reference_stages():
    assert num_tokens(512, 512, 49) == 13312
    assert num_tokens(768, 768, 49) == 29952
    assert num_tokens(1024, 1024, 49) == 53248
    assert num_tokens(480, 720, 49) == 13 * 30 * 45 == 17550  # the 2B sample grid
    # V1.5 temporal patch 2: 13 latent frames are padded to 14 -> 7 temporal patches.
    assert num_tokens(512, 512, 49, patch_size_t=2) == 7 * 32 * 32
    with pytest.raises(ValueError, match="multiples of 16"):
        num_tokens(500, 512, 49)


def test_stage_budgets_and_sides():
    assert STAGE_BUDGETS == (13312, 29952, 53248)
    assert [budget_side(b) for b in STAGE_BUDGETS] == [512, 768, 1024]
    assert isinstance(budget_side(13312), int)
    assert budget_side(13) == 16
    assert math.isclose(budget_side(20000), 16 * math.sqrt(20000 / 13))


def test_article_table_at_13312():
    table = {s: frames_for_budget(s, s, 13312, rule="article") for s in (512, 768, 1024)}
    assert table == {512: 49, 768: 21, 1024: 9}
    # The same table one stage up: 768 is the base, 1024 trades frames for pixels.
    assert frames_for_budget(768, 768, 29952) == 49
    assert frames_for_budget(1024, 1024, 29952) == 25  # 49 * 9/16 = 27.6 -> 25


def test_reference_rule():
    assert frames_for_budget(512, 512, 13312, rule="reference") == 49
    assert frames_for_budget(768, 768, 13312, rule="reference") == 21
    assert frames_for_budget(1024, 1024, 13312, rule="reference") == 13
    # The reference formula with F = 25: floor(min(25 * 4/9, 25) / 4) * 4 + 1 = 9.
    assert frames_for_budget(768, 768, 13312, rule="reference", max_frames=25) == 9
    assert frames_for_budget(1024, 1024, 53248, rule="reference") == 49


def test_tokens_rule_never_exceeds_budget():
    assert frames_for_budget(768, 768, 13312, rule="tokens") == 17
    assert frames_for_budget(1024, 1024, 13312, rule="tokens") == 9
    for budget in STAGE_BUDGETS:
        for h, w in [(256, 1024), (512, 512), (480, 720), (720, 1280), (768, 768), (1024, 1024)]:
            try:
                f = frames_for_budget(h, w, budget, rule="tokens")
            except ValueError:
                assert num_tokens(h, w, 1) > budget
                continue
            assert num_tokens(h, w, f) <= budget
            # Maximal: 4 more frames would not fit (or hit the 49 cap).
            assert f == 49 or num_tokens(h, w, f + 4) > budget


def test_frames_for_budget_errors():
    with pytest.raises(ValueError, match="budget too small for 1024x1024"):
        frames_for_budget(1024, 1024, 1000, rule="article")
    with pytest.raises(ValueError, match="lower the resolution or raise the budget"):
        frames_for_budget(1024, 1024, 1000, rule="tokens")
    with pytest.raises(ValueError, match="budget too small"):
        frames_for_budget(1024, 1024, 200, rule="reference")
    with pytest.raises(ValueError, match="article, reference, tokens"):
        frames_for_budget(512, 512, 13312, rule="pixels")
    with pytest.raises(ValueError, match=r"4k\+1 \(got 48\)"):
        frames_for_budget(512, 512, 13312, max_frames=48)
    with pytest.raises(ValueError, match="multiples of 16"):
        frames_for_budget(510, 512, 13312)


def test_stage_schedule():
    sched = StageSchedule([(0, 13312), (7000, 29952), (13500, 53248)])
    assert [sched.budget_at(s) for s in (0, 6999, 7000, 13499, 13500, 10**6)] == [
        13312, 13312, 29952, 29952, 53248, 53248,
    ]
    assert sched.stage_at(7000) == 1
    assert sched.budgets == STAGE_BUDGETS
    assert sched == REFERENCE_SCHEDULE
    with pytest.raises(ValueError, match="strictly increasing"):
        StageSchedule([(0, 13312), (7000, 29952), (7000, 53248)])
    with pytest.raises(ValueError, match="start at step 0"):
        StageSchedule([(10, 13312)])
    with pytest.raises(ValueError, match="step must be >= 0"):
        sched.budget_at(-1)


# ---------------------------------------------------------------------------------------------
# Aspect-ratio buckets
# ---------------------------------------------------------------------------------------------


def test_aspect_ratio_buckets_shape():
    buckets = aspect_ratio_buckets(512)
    ratios = list(buckets)
    assert len(buckets) == 40
    assert ratios == sorted(ratios)
    assert ratios[0] == 0.25 and ratios[-1] == 4.0 and 1.0 in buckets
    assert buckets[1.0] == (512, 512)
    assert buckets[0.25] == (256, 1024) and buckets[4.0] == (1024, 256)
    assert all(0.25 <= r <= 4.0 for r in ratios)
    assert all(h % 16 == 0 and w % 16 == 0 for h, w in buckets.values())
    assert len(set(buckets.values())) == 40  # no two ratios share a shape at base 512
    # Area about base^2 and ratio of the shape close to its key.
    for r, (h, w) in buckets.items():
        assert abs(h * w / 512**2 - 1) < 0.07
        assert abs(math.log(h / w) - math.log(r)) < 0.07
    # Geometric: log steps ln(4)/20 below 1 (20 landscape ratios), ln(4)/19 above (19 portrait).
    logs = [math.log(r) for r in ratios]
    steps = [b - a for a, b in zip(logs, logs[1:])]
    assert sum(r < 1 for r in ratios) == 20 and sum(r > 1 for r in ratios) == 19
    assert all(math.isclose(s, math.log(4) / 20, abs_tol=5e-4) for s in steps[:20])
    assert all(math.isclose(s, math.log(4) / 19, abs_tol=5e-4) for s in steps[20:])
    with pytest.raises(ValueError, match="square bucket"):
        aspect_ratio_buckets(min_ratio=1.5)


def test_nearest_bucket_landscape_720p():
    h, w = nearest_bucket(720, 1280)
    assert w > h
    assert abs(h / w - 9 / 16) < 0.02
    assert (h, w) == (384, 672)
    # Log-space comparison: a 2:1 portrait clip and a 1:2 landscape clip are mirror images.
    buckets = aspect_ratio_buckets()
    hp, wp = nearest_bucket(1024, 512, buckets)
    hl, wl = nearest_bucket(512, 1024, buckets)
    assert math.isclose(math.log(hp / wp), -math.log(hl / wl), abs_tol=0.05)
    assert nearest_ratio(512, 512, list(buckets)) == 1.0
    assert nearest_ratio(100, 10000, list(buckets)) == 0.25  # beyond the range: the extreme


def test_resize_crop_box():
    assert resize_crop_box(720, 1280, 384, 672) == CropBox(384, 683, 0, 5)
    # Portrait source into a square: width decides the scale, height is cropped evenly.
    assert resize_crop_box(1000, 500, 256, 256) == CropBox(512, 256, 128, 0)
    assert resize_crop_box(512, 512, 512, 512) == CropBox(512, 512, 0, 0)
    box = resize_crop_box(481, 777, 320, 480)
    assert box.resize_h >= 320 and box.resize_w >= 480
    assert box.top + 320 <= box.resize_h and box.left + 480 <= box.resize_w


# ---------------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------------


def test_plan_buckets_default_and_table():
    plan = plan_buckets(13312, batch_size=4)
    assert len(plan) == 40
    square = next(b for b in plan if b.height == b.width)
    assert square == Bucket(512, 512, 49, 4, 13312)
    assert square.key == (512, 512, 49)
    assert all(b.num_frames == frames_for_budget(b.height, b.width, 13312) for b in plan)
    table = plan_table(plan)
    assert table.splitlines()[0].startswith("| height | width |")
    assert "| 512 | 512 | 1.000 | 49 | 13 | 13312 | 4 | 53248 |" in table
    assert len(table.splitlines()) == 42


def test_plan_buckets_mixed_resolutions_and_constant_tokens():
    plan = plan_buckets(13312, base_size=(512, 768, 1024), num_ratios=1, batch_size=8,
                        constant_tokens=True)
    assert [(b.height, b.num_frames, b.tokens) for b in plan] == [
        (512, 49, 13312), (768, 21, 13824), (1024, 9, 12288),
    ]
    # batch = max(1, floor(8 * 13312 / tokens))
    assert [b.batch_size for b in plan] == [8, 7, 8]
    ref = plan_buckets(13312, base_size=(512, 1024), num_ratios=1, rule="reference")
    assert [b.num_frames for b in ref] == [49, 13]
    assert bucket_for(2000, 2000, plan).height == 1024  # same ratio: nearest area
    assert bucket_for(300, 300, plan).height == 512


# ---------------------------------------------------------------------------------------------
# Sampler
# ---------------------------------------------------------------------------------------------

KEYS = [(512, 512, 49)] * 13 + [(384, 672, 49)] * 9 + [(768, 768, 21)] * 7 + [(256, 1024, 49)] * 2


def _key_of_batch(batch):
    keys = {KEYS[i] for i in batch}
    assert len(keys) == 1, f"mixed batch {batch}"
    return keys.pop()


def test_sampler_batches_homogeneous_and_cover():
    sampler = BucketBatchSampler(KEYS, batch_size=4, seed=3, drop_last=False)
    batches = list(sampler)
    for b in batches:
        _key_of_batch(b)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(KEYS)))
    assert len(batches) == len(sampler) == 4 + 3 + 2 + 1  # ceil(13/4), ceil(9/4), ceil(7/4), 1
    dropped = BucketBatchSampler(KEYS, batch_size=4, seed=3, drop_last=True)
    assert len(dropped) == 3 + 2 + 1
    assert all(len(b) == 4 for b in dropped)


def test_sampler_batch_size_mapping():
    sizes = {(512, 512, 49): 5, (384, 672, 49): 3, (768, 768, 21): 7, (256, 1024, 49): 2}
    sampler = BucketBatchSampler(KEYS, batch_size=sizes, seed=0)
    counts = sampler_statistics(sampler)
    assert counts == {
        (512, 512, 49): {"batches": 2, "samples": 10},
        (384, 672, 49): {"batches": 3, "samples": 9},
        (768, 768, 21): {"batches": 1, "samples": 7},
        (256, 1024, 49): {"batches": 1, "samples": 2},
    }
    assert sampler.state_dict() == {"epoch": 0, "batches_yielded": 0, "seed": 0}  # untouched
    two_epochs = sampler_statistics(sampler, num_batches=2 * len(sampler))
    assert two_epochs[(384, 672, 49)] == {"batches": 6, "samples": 18}
    with pytest.raises(ValueError, match="no entry for bucket"):
        BucketBatchSampler(KEYS, batch_size={(512, 512, 49): 2})


def test_sampler_seed_and_epoch_order():
    a = BucketBatchSampler(KEYS, batch_size=2, seed=7)
    b = BucketBatchSampler(KEYS, batch_size=2, seed=7)
    assert list(a) == list(b)  # same seed, same order
    a.set_epoch(0)  # already at epoch 1 after a full pass: jump back to the start of epoch 0
    epoch0 = list(a)
    epoch1 = list(a)  # a full pass moves to the next epoch by itself
    assert epoch0 == list(BucketBatchSampler(KEYS, batch_size=2, seed=7))
    assert epoch0 != epoch1
    # drop_last: 6 + 4 + 3 + 1 = 14 full pairs each epoch, but which index is left out changes.
    assert len(epoch0) == len(epoch1) == 14
    assert {i for x in epoch0 for i in x} != {i for x in epoch1 for i in x}
    c = BucketBatchSampler(KEYS, batch_size=2, seed=7)
    c.set_epoch(1)
    assert list(c) == epoch1
    assert list(BucketBatchSampler(KEYS, batch_size=2, seed=8)) != epoch0
    ordered = list(BucketBatchSampler(KEYS, batch_size=4, shuffle=False, drop_last=False))
    assert ordered[:4] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12]]


def test_sampler_two_ranks_disjoint_equal():
    for drop_last in (True, False):
        ranks = [
            BucketBatchSampler(KEYS, batch_size=3, seed=1, rank=r, world_size=2,
                               drop_last=drop_last)
            for r in range(2)
        ]
        b0, b1 = list(ranks[0]), list(ranks[1])
        assert len(b0) == len(b1) == len(ranks[0]) > 0
        for b in b0 + b1:
            _key_of_batch(b)
        if drop_last:
            # 4 + 3 + 2 + 0 = 9 full batches, truncated to 8 -> 4 per rank, no index twice.
            assert len(b0) == 4
            assert not {i for b in b0 for i in b} & {i for b in b1 for i in b}
            # Ranks deal the one-process batch list round-robin.
            single = list(BucketBatchSampler(KEYS, batch_size=3, seed=1))
            assert len(single) == 9
            assert [x for pair in zip(b0, b1) for x in pair] == single[:8]
        else:
            # 5 + 3 + 3 + 1 = 12 batches -> 6 per rank; every index served once overall.
            assert len(b0) == 6
            assert sorted(i for b in b0 + b1 for i in b) == list(range(len(KEYS)))
    # Padding: 7 + 5 + 4 + 1 = 17 pairs -> 18, the first batch served twice; 9 per rank.
    padded = [list(BucketBatchSampler(KEYS, batch_size=2, seed=4, rank=r, world_size=2,
                                      drop_last=False)) for r in range(2)]
    assert [len(p) for p in padded] == [9, 9]
    served = sorted(i for p in padded for b in p for i in b)
    assert set(served) == set(range(len(KEYS))) and len(served) == len(KEYS) + len(padded[0][0])
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler(KEYS, batch_size=3, rank=2, world_size=2)


def test_sampler_resume_mid_epoch_matches_uninterrupted():
    reference = BucketBatchSampler(KEYS, batch_size=2, seed=11, rank=1, world_size=2)
    per_epoch = len(reference)
    full = list(reference) + list(reference) + list(reference)  # epochs 0, 1, 2 uninterrupted
    assert len(full) == 3 * per_epoch and full[:per_epoch] != full[per_epoch : 2 * per_epoch]

    live = BucketBatchSampler(KEYS, batch_size=2, seed=11, rank=1, world_size=2)
    live.set_epoch(1)
    it = iter(live)
    consumed = [next(it) for _ in range(3)]
    state = live.state_dict()
    assert state == {"epoch": 1, "batches_yielded": 3, "seed": 11}
    assert consumed == full[per_epoch : per_epoch + 3]

    resumed = BucketBatchSampler(KEYS, batch_size=2, seed=11, rank=1, world_size=2)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)  # a training loop re-announcing the epoch keeps the position
    rest = list(resumed)
    assert rest == full[per_epoch + 3 : 2 * per_epoch]
    assert list(resumed) == full[2 * per_epoch :]  # then the next epoch, as uninterrupted
    assert resumed.state_dict()["epoch"] == 3

    infinite = BucketBatchSampler(KEYS, batch_size=2, seed=11, rank=1, world_size=2,
                                  infinite=True)
    infinite.load_state_dict(state)
    it = iter(infinite)
    assert [next(it) for _ in range(2 * per_epoch - 3)] == full[per_epoch + 3 :]


def test_sampler_load_state_dict_errors():
    sampler = BucketBatchSampler(KEYS, batch_size=2, seed=5)
    with pytest.raises(ValueError, match="exactly the keys"):
        sampler.load_state_dict({"epoch": 0})
    with pytest.raises(ValueError, match="build the sampler with seed=6"):
        sampler.load_state_dict({"epoch": 0, "batches_yielded": 0, "seed": 6})
    with pytest.raises(ValueError, match="out of range"):
        sampler.load_state_dict({"epoch": 0, "batches_yielded": len(sampler) + 1, "seed": 5})
    with pytest.raises(ValueError, match="must be an int"):
        sampler.load_state_dict({"epoch": "1", "batches_yielded": 0, "seed": 5})
    with pytest.raises(ValueError, match="mapping"):
        sampler.load_state_dict([0, 0, 5])
    assert sampler.state_dict() == {"epoch": 0, "batches_yielded": 0, "seed": 5}


def test_sampler_in_dataloader():
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Shapes(Dataset):
        def __len__(self):
            return len(KEYS)

        def __getitem__(self, i):
            h, w, _ = KEYS[i]
            return torch.zeros(1, h // 256, w // 256)

    sampler = BucketBatchSampler(KEYS, batch_size=2, seed=0)
    shapes = [tuple(x.shape) for x in DataLoader(Shapes(), batch_sampler=sampler)]
    assert len(shapes) == len(sampler) == 6 + 4 + 3 + 1
    assert (2, 1, 2, 2) in shapes and (2, 1, 1, 4) in shapes
