"""Tests for cogfun.data.toy: determinism, geometry, motion, captions, splits and dataset files."""

import json
import math

import numpy as np
import pytest
import torch

from cogfun.data.toy import (
    COLOURS,
    DIRECTIONS,
    HELD_OUT_PHOTOS,
    PALETTE,
    PHOTOS,
    PLAIN_BACKGROUNDS,
    SHAPES,
    TOY_VOCABULARY,
    TRAIN_PHOTOS,
    ToyClipSpec,
    ToyVideoDataset,
    _all_specs,
    caption,
    clip_seed,
    load_photo,
    render_clip,
    sample_specs,
    shape_alpha,
    shape_track,
    write_toy_dataset,
)
from cogfun.data.video_io import read_video


def _colour_mask(frames, colour, tol=0.02):
    """(F, H, W) bool: pixels exactly (within tol) of the palette colour."""
    return (np.abs(frames - np.asarray(PALETTE[colour])) < tol).all(-1)


def _centroids(mask):
    """(F, 2) mean (x, y) of each frame's mask."""
    out = []
    for m in mask:
        ys, xs = np.nonzero(m)
        out.append((xs.mean(), ys.mean()))
    return np.array(out)


# ------------------------------------------------------------------------------- determinism


def test_render_is_deterministic_in_seed():
    for spec in sample_specs(6, seed=3, photo_background_prob=0.5):
        a = render_clip(spec, 32, 48, 5, seed=7)
        b = render_clip(spec, 32, 48, 5, seed=7)
        c = render_clip(spec, 32, 48, 5, seed=8)
        assert a.dtype == np.float32 and a.shape == (5, 32, 48, 3)
        assert 0.0 <= a.min() and a.max() <= 1.0
        np.testing.assert_array_equal(a, b)
        assert np.abs(a - c).max() > 0.1  # another instance: other position or crop
    assert sample_specs(20, seed=1) == sample_specs(20, seed=1)
    assert sample_specs(20, seed=1) != sample_specs(20, seed=2)
    d1, d2 = ToyVideoDataset(3, 16, 16, 3, seed=4), ToyVideoDataset(3, 16, 16, 3, seed=4)
    for i in range(3):
        torch.testing.assert_close(d1[i]["pixel_values"], d2[i]["pixel_values"], rtol=0, atol=0)
    assert clip_seed(0, 1) != clip_seed(0, 2) and clip_seed(0, 1) != clip_seed(1, 1)


# ------------------------------------------------------------------------------- geometry


def test_shape_alpha_areas_and_exact_interior():
    r = 10.0
    areas = {s: shape_alpha(s, 40, 40, 20.0, 20.0, r, supersample=8).sum() for s in SHAPES}
    assert areas["square"] == pytest.approx(4 * r * r)
    assert areas["circle"] == pytest.approx(math.pi * r * r, rel=0.01)
    assert areas["triangle"] == pytest.approx(2 * r * r, rel=0.01)
    assert areas["cross"] == pytest.approx(4 * r * r * 5 / 9, rel=0.02)
    tri = shape_alpha("triangle", 40, 40, 20.0, 20.0, r)
    # apex at the top (y = 10), base at the bottom (y = 30, from x = 10 to 30)
    assert tri[10, 20] < 0.5 and tri[10, 15] == 0.0 and tri[29, 12] == 1.0
    assert shape_alpha("circle", 40, 40, 20.0, 20.0, r)[20, 20] == 1.0


@pytest.mark.parametrize("shape", SHAPES)
def test_object_colour_at_centre_is_the_palette_rgb(shape):
    for i, colour in enumerate(COLOURS):
        background = tuple(PLAIN_BACKGROUNDS)[i % 3]
        spec = ToyClipSpec("shape", "right", background, shape, colour, size=0.3, speed=0.8)
        frames = render_clip(spec, 64, 64, 4, seed=i)
        centres, radius = shape_track(spec, 64, 64, 4, seed=i)
        assert radius == pytest.approx(0.3 * 64 / 2)
        for t, (cx, cy) in enumerate(centres):
            np.testing.assert_array_equal(frames[t, int(cy), int(cx)], PALETTE[colour])
            # the object stays inside the frame
            assert radius <= cx <= 64 - radius and radius <= cy <= 64 - radius
        # far from the object the background is untouched
        far = shape_alpha(shape, 64, 64, *centres[0], radius * 1.5) == 0
        np.testing.assert_array_equal(frames[0][far], np.broadcast_to(
            np.float32(PLAIN_BACKGROUNDS[background]), frames[0][far].shape))


# ------------------------------------------------------------------------------- motion


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_object_moves_in_the_stated_direction(direction):
    spec = ToyClipSpec("shape", direction, "grey", "square", "magenta", size=0.25, speed=0.8)
    frames = render_clip(spec, 48, 80, 6, seed=11)  # a wide frame: any aspect works
    c = _centroids(_colour_mask(frames, "magenta"))  # (F, 2) x, y
    step = np.diff(c, axis=0)  # (F-1, 2)
    expected = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1), "still": (0, 0)}
    sx, sy = expected[direction]
    for axis, sign in ((0, sx), (1, sy)):
        if sign == 0:
            np.testing.assert_allclose(step[:, axis], 0.0, atol=0.51)
        else:
            assert (np.sign(step[:, axis]) == sign).all()
    if direction != "still":
        extent = 80 if direction in ("left", "right") else 48
        travel = np.abs(c[-1] - c[0]).max()
        free = extent - 0.25 * 48  # frame extent minus object size
        assert travel == pytest.approx(0.8 * free, abs=1.0)


def _best_shift(a, b, max_shift=8):
    """Integer (dy, dx) minimising the MSE of b(y, x) vs a(y - dy, x - dx) on the overlap."""
    best, scores = None, {}
    h, w = a.shape[:2]
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            A = a[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
            B = b[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
            scores[(dy, dx)] = float(((A - B) ** 2).mean())
    best = min(scores, key=scores.get)
    return best, scores


@pytest.mark.parametrize("direction, content_shift", [
    ("right", (0, -4)), ("left", (0, 4)), ("down", (-4, 0)), ("up", (4, 0))])
def test_pan_shifts_the_content(direction, content_shift):
    # A pan to the right moves the window right, so the content moves left by speed*W/(F-1) px.
    spec = ToyClipSpec("pan", direction, "photo:astronaut", speed=0.5)
    frames = render_clip(spec, 64, 64, 9, seed=0)  # 32 px over 8 steps = 4 px per frame
    for t in range(8):
        best, scores = _best_shift(frames[t], frames[t + 1])
        assert best == content_shift
        assert scores[best] < 0.1 * scores[(0, 0)]  # really the same picture, shifted
    still = render_clip(ToyClipSpec("pan", "still", "photo:astronaut"), 64, 64, 3, seed=0)
    np.testing.assert_array_equal(still[0], still[-1])


def test_pan_frames_come_from_the_photo():
    frames = render_clip(ToyClipSpec("pan", "still", "photo:chelsea"), 60, 90, 1, seed=0)
    photo = load_photo("chelsea", 60, 90)
    assert photo.shape == (60, 90, 3)
    # chelsea is a 300x451 ginger cat: warm colours, red > blue on average
    assert frames[0][..., 0].mean() > frames[0][..., 2].mean() + 0.1
    assert photo[..., 0].mean() > photo[..., 2].mean() + 0.1


# ------------------------------------------------------------------------------- captions


def test_captions_and_vocabulary():
    spec = ToyClipSpec("shape", "left", "grey", "circle", "red")
    assert caption(spec) == "a red circle moving left on a grey background"
    assert caption(ToyClipSpec("pan", "right", "photo:chelsea")) == (
        "a camera pan to the right across a photo of a cat")
    assert caption(ToyClipSpec("pan", "up", "photo:astronaut")) == (
        "a camera pan up across a photo of an astronaut")
    assert caption(ToyClipSpec("shape", "still", "photo:rocket", "cross", "cyan")) == (
        "a cyan cross standing still on a photo of a rocket")
    assert TOY_VOCABULARY == sorted(set(TOY_VOCABULARY))
    vocabulary = set(TOY_VOCABULARY)
    for spec in _all_specs() + sample_specs(50, seed=0, photo_background_prob=0.5):
        words = caption(spec).split()
        assert set(words) <= vocabulary
        if spec.kind == "shape":  # the checkable words are in the caption
            assert {spec.colour, spec.shape, spec.direction} <= set(words)
    for word in (*COLOURS, *SHAPES, *DIRECTIONS, *PLAIN_BACKGROUNDS, "cat", "galaxies"):
        assert word in vocabulary
    assert len(vocabulary) == 41


def test_spec_validation_names_the_fix():
    with pytest.raises(ValueError, match="pan clips have no object"):
        ToyClipSpec("pan", "left", "photo:chelsea", shape="circle")
    with pytest.raises(ValueError, match="pan clips need a 'photo:<name>'"):
        ToyClipSpec("pan", "left", "grey")
    with pytest.raises(ValueError, match="colour in"):
        ToyClipSpec("shape", "left", "grey", "circle", "orange")
    with pytest.raises(ValueError, match="unknown photo"):
        ToyClipSpec("shape", "left", "photo:moon", "circle", "red")
    with pytest.raises(ValueError, match="direction"):
        ToyClipSpec("shape", "sideways", "grey", "circle", "red")
    with pytest.raises(ValueError, match="unknown ToyClipSpec keys"):
        ToyClipSpec.from_dict({"kind": "shape", "wat": 1})
    spec = ToyClipSpec("shape", "up", "white", "triangle", "green", 0.25, 0.6)
    assert ToyClipSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


# ------------------------------------------------------------------------------- any size


@pytest.mark.parametrize("height, width, num_frames", [
    (16, 96, 1), (96, 24, 5), (33, 47, 3), (8, 8, 2), (48, 272, 13)])
def test_any_aspect_ratio_and_length(height, width, num_frames):
    specs = [ToyClipSpec("shape", "down", "black", "cross", "yellow", 0.5, 1.0),
             ToyClipSpec("shape", "right", "photo:camera", "circle", "blue", 0.3, 1.0),
             ToyClipSpec("pan", "left", "photo:hubble_deep_field", speed=1.0),
             ToyClipSpec("pan", "down", "photo:immunohistochemistry", speed=1.0)]
    for spec in specs:
        frames = render_clip(spec, height, width, num_frames, seed=5)
        assert frames.shape == (num_frames, height, width, 3) and frames.dtype == np.float32
        assert 0.0 <= frames.min() and frames.max() <= 1.0 and frames.std() > 0.01
        if spec.kind == "shape" and min(height, width) >= 16:
            mask = _colour_mask(frames, spec.colour)
            assert mask.any(axis=(1, 2)).all()  # the object is visible in every frame


# ------------------------------------------------------------------------------- splits


def test_held_out_photos_never_sampled_for_training():
    assert set(TRAIN_PHOTOS) | set(HELD_OUT_PHOTOS) == set(PHOTOS)
    assert not set(TRAIN_PHOTOS) & set(HELD_OUT_PHOTOS)
    train = sample_specs(600, seed=0, photo_background_prob=0.5)
    used = {s.photo for s in train if s.photo}
    assert used == set(TRAIN_PHOTOS)  # every training photo appears, no held-out one
    kinds = {s.kind for s in train}
    assert kinds == {"shape", "pan"}
    test = sample_specs(100, seed=0, photos=HELD_OUT_PHOTOS, kinds=["pan"])
    assert {s.photo for s in test} == set(HELD_OUT_PHOTOS)
    only_shapes = sample_specs(50, seed=0, kinds=["shape"], photos=())
    assert all(s.kind == "shape" and s.photo is None for s in only_shapes)
    with pytest.raises(ValueError, match="at least one photo"):
        sample_specs(5, seed=0, photos=())
    with pytest.raises(ValueError, match="subset"):
        sample_specs(5, seed=0, shapes=["hexagon"])


# ------------------------------------------------------------------------------- datasets


def test_dataset_items_and_collate():
    ds = ToyVideoDataset(4, 24, 40, 5, seed=2)
    item = ds[1]
    x = item["pixel_values"]
    assert x.shape == (5, 3, 24, 40) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    spec = ToyClipSpec.from_dict(item["spec"])
    assert item["text"] == caption(spec)
    expected = render_clip(spec, 24, 40, 5, clip_seed(2, 1)) * 2 - 1
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), expected, atol=1e-6)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["pixel_values"].shape == (2, 5, 3, 24, 40) and len(batch["text"]) == 2
    specs = [ToyClipSpec("pan", "right", "photo:coffee")]
    assert ToyVideoDataset(1, 8, 8, 2, specs=specs)[0]["text"].endswith("a cup of coffee")


def test_write_toy_dataset(tmp_path):
    sizes = [(32, 48, 5), (16, 16, 3)]
    path = write_toy_dataset(tmp_path / "toy", n=4, sizes=sizes, seed=3)
    assert path == tmp_path / "toy" / "metadata.json"
    entries = json.loads(path.read_text())
    assert len(entries) == 4
    ds = ToyVideoDataset(4, 32, 48, 5, seed=3)
    for i, entry in enumerate(entries):
        assert {"file_path", "text", "type", "width", "height"} <= set(entry)
        h, w, f = sizes[i % 2]
        assert (entry["height"], entry["width"], entry["num_frames"]) == (h, w, f)
        assert entry["type"] == "video" and entry["file_path"] == f"videos/{i:05d}.mp4"
        spec = ToyClipSpec.from_dict(entry["spec"])
        assert entry["text"] == caption(spec) and spec == ds.specs[i]
        frames, fps = read_video(tmp_path / "toy" / entry["file_path"])
        assert frames.shape == (f, h, w, 3) and fps == 8.0
        rendered = render_clip(spec, h, w, f, entry["seed"])
        assert np.abs(frames - rendered).mean() < 0.03  # mp4 is lossy but close
    with pytest.raises(ValueError, match="already exists"):
        write_toy_dataset(tmp_path / "toy", n=1, sizes=sizes)
    with pytest.raises(ValueError, match="even"):
        write_toy_dataset(tmp_path / "odd", n=1, sizes=[(15, 16, 3)])
