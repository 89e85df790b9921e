"""Tests for cogfun.training.dataset: bucket assignment, resize-crop, temporal window, collate."""

import json

import numpy as np
import pytest
import torch

from cogfun.buckets import BucketBatchSampler, bucket_for, plan_buckets
from cogfun.data.toy import write_toy_dataset
from cogfun.data.video_io import write_video
from cogfun.training.dataset import (BucketVideoDataset, TaggedBatchSampler, clip_key, collate, load_metadata,
                                     sample_window)


def _plan():
    # budget of 32x32x9 clips (3 latent frames x 2 x 2 patches = 12 tokens), ratios 0.5..2
    return plan_buckets(12, base_size=32, max_frames=9, num_ratios=3, min_ratio=0.5, max_ratio=2.0, batch_size=2)


def test_plan_used_in_tests():
    assert [(b.height, b.width, b.num_frames) for b in _plan()] == [(16, 48, 9), (32, 32, 9), (48, 16, 9)]


def test_bucket_assignment_follows_ratio_and_clip_length(tmp_path):
    write_toy_dataset(tmp_path, 6, sizes=((32, 32, 9), (32, 64, 17), (32, 32, 5)), seed=0)
    plan = _plan()
    ds = BucketVideoDataset(tmp_path / "metadata.json", plan)
    assert len(ds) == 6
    assert ds.keys[0] == (32, 32, 9)
    assert ds.keys[1] == (16, 48, 9) == bucket_for(32, 64, plan).key  # landscape -> the 16x48 bucket
    assert ds.keys[2] == (32, 32, 5)  # a 5-frame clip keeps 5 frames in the 9-frame bucket
    assert ds.batch_sizes == {(32, 32, 9): 2, (16, 48, 9): 2, (32, 32, 5): 2}
    item = ds[(1, 0)]
    assert item["pixel_values"].shape == (9, 3, 16, 48)
    assert item["pixel_values"].dtype == torch.float32
    assert -1 <= item["pixel_values"].min() and item["pixel_values"].max() <= 1
    assert item["text"] == load_metadata(tmp_path / "metadata.json")[1]["text"]


def test_clip_key_is_the_bucket_with_the_frames_the_clip_holds():
    plan = _plan()
    assert clip_key(32, 32, 17, plan) == (32, 32, 9)  # longer than the bucket: the bucket's 9 frames
    assert clip_key(32, 64, 8, plan) == (16, 48, 5)  # 8 frames hold 5 (4k+1), in the landscape bucket
    assert clip_key(64, 32, 1, plan) == (48, 16, 1)  # an image
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        clip_key(32, 32, 0, plan)


def test_an_entry_with_no_frames_is_named_in_the_error(tmp_path):
    entries = [{"file_path": "empty.mp4", "text": "x", "type": "video", "height": 32, "width": 32, "num_frames": 0}]
    with pytest.raises(ValueError, match=r"empty.mp4: num_frames must be >= 1 \(got 0\); fix or drop this entry"):
        BucketVideoDataset(entries, _plan(), data_root=tmp_path)


def _ramp_video(path, num_frames=17, height=32, width=64):
    """Frame t has brightness t / (F - 1); the left half of every frame is black."""
    frames = np.zeros((num_frames, height, width, 3), np.float32)
    for t in range(num_frames):
        frames[t, :, width // 2 :] = t / (num_frames - 1)
    write_video(path, frames)


def test_resize_to_cover_then_centre_crop(tmp_path):
    _ramp_video(tmp_path / "v.mp4", num_frames=9, height=32, width=64)
    meta = [{"file_path": "v.mp4", "text": "ramp", "type": "video", "width": 64, "height": 32, "num_frames": 9}]
    plan = plan_buckets(12, base_size=32, max_frames=9, num_ratios=1)  # one 32x32x9 bucket
    ds = BucketVideoDataset(meta, plan, data_root=tmp_path, random_start=False)
    x = ds[0]["pixel_values"]  # (9, 3, 32, 32): columns 16..48 of the 64-wide frame
    assert x.shape == (9, 3, 32, 32)
    last = (x[-1] + 1) / 2  # [0, 1]
    assert last[:, :, :14].max() < 0.1  # black half
    assert last[:, :, 18:].min() > 0.9  # bright half of the last frame (brightness 1)


def test_temporal_window_with_stride_and_seeded_start(tmp_path):
    _ramp_video(tmp_path / "v.mp4")
    meta = [{"file_path": "v.mp4", "text": "ramp", "num_frames": 17, "width": 64, "height": 32}]
    plan = plan_buckets(12, base_size=32, max_frames=5, num_ratios=1)  # 32x32x5
    brightness = lambda x: ((x[:, 0, :, 20:] + 1) / 2).mean(dim=(1, 2)).numpy() * 16  # frame index

    ds = BucketVideoDataset(meta, plan, data_root=tmp_path, frame_stride=4, random_start=True)
    np.testing.assert_allclose(brightness(ds[(0, 0)]["pixel_values"]), [0, 4, 8, 12, 16], atol=0.3)  # only start

    ds = BucketVideoDataset(meta, plan, data_root=tmp_path, frame_stride=2, random_start=True, seed=3)
    starts = set()
    for epoch in range(6):
        b = brightness(ds[(0, epoch)]["pixel_values"])
        np.testing.assert_allclose(np.diff(b), [2, 2, 2, 2], atol=0.3)
        starts.add(round(float(b[0])))
        np.testing.assert_array_equal(ds[(0, epoch)]["pixel_values"], ds[(0, epoch)]["pixel_values"])
    assert len(starts) > 1 and starts <= set(range(9))

    ds = BucketVideoDataset(meta, plan, data_root=tmp_path, frame_stride=8)  # too long: stride lowered to 4
    assert sample_window(17, 5, 8) == (4, 1)
    np.testing.assert_allclose(brightness(ds[(0, 5)]["pixel_values"]), [0, 4, 8, 12, 16], atol=0.3)


def test_collate_and_tagged_sampler(tmp_path):
    write_toy_dataset(tmp_path, 6, sizes=((32, 32, 9), (32, 64, 9)), seed=1)
    ds = BucketVideoDataset(tmp_path / "metadata.json", _plan())
    sampler = BucketBatchSampler(ds.keys, ds.batch_sizes, seed=0, infinite=True)
    tagged = iter(TaggedBatchSampler(sampler))
    first = next(tagged)
    assert [e for _, e, _ in first] == [0, 0] and [p for _, _, p in first] == [1, 1]
    batch = collate([ds[item] for item in first])
    assert batch["pixel_values"].shape[0] == 2 and batch["pixel_values"].ndim == 5
    assert batch["sampler_state"] == {"epoch": 0, "batches_yielded": 1}
    assert batch["index"].tolist() == [i for i, _, _ in first]
    with pytest.raises(ValueError, match="mixes shapes"):
        collate([ds[0], ds[1]])


def test_metadata_errors(tmp_path):
    with pytest.raises(ValueError, match="metadata file not found"):
        load_metadata(tmp_path / "nope.json")
    (tmp_path / "m.json").write_text(json.dumps([{"text": "x"}]))
    with pytest.raises(ValueError, match="needs 'file_path' and 'text'"):
        load_metadata(tmp_path / "m.json")
