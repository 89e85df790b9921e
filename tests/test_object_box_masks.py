"""Object-box training masks: the latent cache can store, per toy shape clip, a mask that hides the object's whole
track and keeps the rest, the case the benchmark's inpaint subset measures (experiments/toy-model/DIAGNOSIS.md,
section 11)."""

import json

import numpy as np
import pytest
import torch

from cogfun.data.latent_cache import LatentCacheDataset, cache_latents, object_box_mask
from cogfun.data.toy import PLAIN_BACKGROUNDS, ToyClipSpec, object_track_box, render_clip, write_toy_dataset
from cogfun.pipelines.components import write_initial_model
from cogfun.training.random_masks import MASK_KINDS

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

FIRST_FRAMES = [0.0] * len(MASK_KINDS)
FIRST_FRAMES[MASK_KINDS.index("first_frames")] = 1.0


def object_pixels(spec: ToyClipSpec, height: int, width: int, num_frames: int, seed: int) -> np.ndarray:
    """(F, H, W) bool: where a plain-background clip differs from its background."""
    frames = render_clip(spec, height, width, num_frames, seed)
    background = np.asarray(PLAIN_BACKGROUNDS[spec.background], np.float32)
    return np.abs(frames - background).max(-1) > 1e-3


@pytest.mark.parametrize("direction", ["right", "up", "still"])
def test_the_box_holds_the_object_in_every_frame_and_spans_its_track(direction):
    spec = ToyClipSpec("shape", direction, "grey", "square", "red", size=0.3, speed=0.8)
    top, bottom, left, right = object_track_box(spec, 48, 64, 9, seed=3, pad=0)
    pixels = object_pixels(spec, 48, 64, 9, seed=3)
    rows, cols = np.nonzero(pixels.any(0))
    assert rows.min() >= top and rows.max() < bottom and cols.min() >= left and cols.max() < right
    # tight: the object touches every side of the unpadded box within a pixel of antialiasing
    assert rows.min() - top <= 1 and bottom - 1 - rows.max() <= 1
    assert cols.min() - left <= 1 and right - 1 - cols.max() <= 1
    box_width, object_width = right - left, 0.3 * 48
    if direction == "right":
        assert box_width > object_width + 0.8 * (64 - object_width) * 0.9  # the travel is inside the box
    if direction == "still":
        assert box_width <= object_width + 2
    padded = object_track_box(spec, 48, 64, 9, seed=3, pad=2)
    assert padded == (max(top - 2, 0), min(bottom + 2, 48), max(left - 2, 0), min(right + 2, 64))


def test_a_window_of_frames_gives_the_box_of_those_frames_only():
    spec = ToyClipSpec("shape", "right", "black", "circle", "green", size=0.25, speed=1.0)
    whole = object_track_box(spec, 32, 96, 17, seed=5, pad=0)
    first = object_track_box(spec, 32, 96, 17, seed=5, pad=0, frames=slice(0, 5))
    pixels = object_pixels(spec, 32, 96, 17, seed=5)[:5]
    cols = np.nonzero(pixels.any((0, 1)))[0]
    assert first[3] - first[2] < whole[3] - whole[2]
    assert cols.min() >= first[2] and cols.max() < first[3]
    with pytest.raises(ValueError, match="selects none"):
        object_track_box(spec, 32, 96, 17, seed=5, frames=slice(20, 30))


def test_the_benchmark_hole_is_the_training_box():
    from cogfun.eval.benchmark import held_out_shape_specs, inpaint_box

    for clip in held_out_shape_specs(4):
        assert inpaint_box(clip, 64, 96, 17) == object_track_box(clip.spec, 64, 96, 17, clip.render_seed)


def test_object_box_mask_of_an_entry():
    spec = ToyClipSpec("shape", "down", "white", "triangle", "blue", size=0.3, speed=0.6)
    entry = {"file_path": "videos/00000", "height": 32, "width": 48, "num_frames": 17, "seed": 9,
             "spec": spec.to_dict()}
    mask = object_box_mask(entry, (32, 48, 9), frame_stride=2)
    top, bottom, left, right = object_track_box(spec, 32, 48, 17, 9, frames=slice(0, 17, 2))
    assert mask.shape == (1, 1, 9, 32, 48)
    assert torch.all(mask[..., top:bottom, left:right] == 1) and mask.sum() == 9 * (bottom - top) * (right - left)
    pan = {**entry, "spec": {"kind": "pan", "direction": "left", "background": "photo:cat"}}
    assert object_box_mask(pan, (32, 48, 9)) is None
    assert object_box_mask({k: v for k, v in entry.items() if k != "seed"}, (32, 48, 9)) is None
    with pytest.raises(ValueError, match="cached at their own size.*--base-size"):
        object_box_mask(entry, (48, 48, 9))
    with pytest.raises(ValueError, match="fewer than the 9"):
        object_box_mask({**entry, "num_frames": 9}, (32, 48, 9), frame_stride=2)


@pytest.fixture(scope="module")
def tiny_init(tmp_path_factory):
    return write_initial_model(tmp_path_factory.mktemp("init") / "init", "tiny")


def test_the_cache_stores_one_object_box_per_shape_clip(tmp_path, tiny_init):
    metadata = write_toy_dataset(tmp_path / "data", 4, sizes=((32, 32, 9),), seed=1, ext=".png", photos=(),
                                 kinds=("shape",))
    cache_latents(metadata, tmp_path / "cache", model=tiny_init, budget=64, base_size=[32], max_frames=9,
                  inpaint_masks=2, mask_probabilities=FIRST_FRAMES, object_box_masks=True, progress=False)
    options = json.loads((tmp_path / "cache" / "options.json").read_text())
    assert options["object_box_masks"] is True
    data = LatentCacheDataset(tmp_path / "cache")
    index = json.loads(next((tmp_path / "cache").glob("*/shard-00000.json")).read_text())
    entries = json.loads(metadata.read_text())
    scale = float(data[0]["inpaint"][0, 0, 0].max())  # kept first frame: the mask channel is the scaling factor
    for row, kinds in enumerate(index["mask_kinds"]):
        assert kinds == ["first_frames", "first_frames", "object_box"]
        item = data[row]
        assert item["inpaint"].shape[0] == 3 and not item["inpaint_full"].any()
        entry = entries[index["indices"][row]]
        top, bottom, left, right = object_track_box(ToyClipSpec.from_dict(entry["spec"]), 32, 32, 9, entry["seed"])
        channel = item["inpaint"][2, :, 0]  # (F_lat, h, w): what is kept, times the scaling factor
        for i in range(4):
            for j in range(4):
                cell = (slice(8 * i, 8 * i + 8), slice(8 * j, 8 * j + 8))
                inside = top <= 8 * i and 8 * i + 8 <= bottom and left <= 8 * j and 8 * j + 8 <= right
                outside = 8 * i + 8 <= top or 8 * i >= bottom or 8 * j + 8 <= left or 8 * j >= right
                if inside:  # a cell wholly in the box: hidden in every latent frame
                    assert torch.all(channel[:, i, j] == 0), (row, i, j, cell)
                if outside:  # a cell wholly outside: given in every latent frame
                    assert torch.allclose(channel[:, i, j], torch.tensor(scale)), (row, i, j, cell)


def test_clips_without_an_object_get_one_more_random_mask(tmp_path, tiny_init):
    metadata = write_toy_dataset(tmp_path / "data", 4, sizes=((32, 32, 9),), seed=2, ext=".png",
                                 kinds=("shape", "pan"))
    specs = [e["spec"]["kind"] for e in json.loads(metadata.read_text())]
    assert "pan" in specs and "shape" in specs
    cache_latents(metadata, tmp_path / "cache", model=tiny_init, budget=64, base_size=[32], max_frames=9,
                  inpaint_masks=1, mask_probabilities=FIRST_FRAMES, object_box_masks=True, progress=False)
    index = json.loads(next((tmp_path / "cache").glob("*/shard-00000.json")).read_text())
    for row, kinds in enumerate(index["mask_kinds"]):
        expected = "object_box" if specs[index["indices"][row]] == "shape" else "first_frames"
        assert kinds == ["first_frames", expected]


def test_object_boxes_need_cached_masks_and_leave_older_caches_resumable(tmp_path, tiny_init):
    metadata = write_toy_dataset(tmp_path / "data", 2, sizes=((32, 32, 9),), seed=1, ext=".png", photos=(),
                                 kinds=("shape",))
    with pytest.raises(ValueError, match="inpaint_masks >= 1"):
        cache_latents(metadata, tmp_path / "a", model=tiny_init, budget=64, base_size=[32], max_frames=9,
                      object_box_masks=True, progress=False)
    cache_latents(metadata, tmp_path / "b", model=tiny_init, budget=64, base_size=[32], max_frames=9,
                  inpaint_masks=1, mask_probabilities=FIRST_FRAMES, progress=False)
    assert "object_box_masks" not in json.loads((tmp_path / "b" / "options.json").read_text())
    with pytest.raises(ValueError, match="other options.*object_box_masks"):
        cache_latents(metadata, tmp_path / "b", model=tiny_init, budget=64, base_size=[32], max_frames=9,
                      inpaint_masks=1, mask_probabilities=FIRST_FRAMES, object_box_masks=True, progress=False)
