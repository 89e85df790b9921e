"""Tests for cogfun.eval.toy_detector on rendered toy clips: every combination, sizes, noise."""

import itertools

import numpy as np
import pytest

from cogfun.data.toy import (
    COLOURS,
    DIRECTIONS,
    PALETTE,
    PLAIN_BACKGROUNDS,
    SHAPES,
    TRAIN_PHOTOS,
    ToyClipSpec,
    caption,
    render_clip,
    shape_track,
)
from cogfun.eval.toy_detector import (
    caption_accuracy,
    describe_object,
    detect_toy_object,
    object_present,
    score_against_caption,
)


def _all_combinations(height, width, num_frames, noise=0.0, backgrounds=tuple(PLAIN_BACKGROUNDS),
                      directions=DIRECTIONS, size_range=(0.2, 0.4), speed_range=(0.4, 1.0),
                      seed=0):
    """One clip per colour x shape x direction, random size/speed/position, optional noise."""
    rng = np.random.default_rng(seed)
    clips, specs = [], []
    for i, (colour, shape, direction) in enumerate(itertools.product(COLOURS, SHAPES, directions)):
        spec = ToyClipSpec("shape", direction, backgrounds[i % len(backgrounds)], shape, colour,
                           size=float(rng.uniform(*size_range)),
                           speed=float(rng.uniform(*speed_range)))
        frames = render_clip(spec, height, width, num_frames, seed=i)
        if noise:
            frames = np.clip(frames + noise * rng.standard_normal(frames.shape, np.float32), 0, 1)
        clips.append(frames)
        specs.append(spec)
    return clips, specs


def test_every_combination_is_detected_at_64x64():
    clips, specs = _all_combinations(64, 64, 9)
    assert len(specs) == len(COLOURS) * len(SHAPES) * len(DIRECTIONS) == 120
    wrong = [caption(s) for f, s in zip(clips, specs)
             if not score_against_caption(f, s)["all_correct"]]
    assert wrong == []  # measured: 120 / 120


@pytest.mark.parametrize("height, width, num_frames", [(32, 32, 5), (48, 80, 6), (96, 64, 9)])
def test_other_sizes_and_aspect_ratios(height, width, num_frames):
    clips, specs = _all_combinations(height, width, num_frames, seed=1)
    accuracy = caption_accuracy(clips, specs)
    assert accuracy["n"] == 120
    assert accuracy["all"] >= 0.95  # measured: 1.0 at each size


def test_noisy_frames_sigma_005():
    clips, specs = _all_combinations(64, 64, 9, noise=0.05, seed=2)
    accuracy = caption_accuracy(clips, specs)
    assert accuracy["colour"] == 1.0
    assert accuracy["all"] >= 0.90  # measured: 1.0


def test_detection_values_match_the_ground_truth():
    spec = ToyClipSpec("shape", "left", "grey", "circle", "cyan", size=0.3, speed=0.9)
    frames = render_clip(spec, 64, 96, 7, seed=3)
    centres, radius = shape_track(spec, 64, 96, 7, seed=3)
    found = detect_toy_object(frames)
    assert found["found"] and found["background"] == "border"
    assert (found["colour"], found["shape"], found["direction"]) == ("cyan", "circle", "left")
    np.testing.assert_allclose(found["rgb"], (0, 1, 1), atol=1e-6)
    np.testing.assert_allclose(found["centroids"], centres, atol=0.05)  # circle: centroid = centre
    dx, dy = found["displacement"]
    assert dx == pytest.approx(centres[-1, 0] - centres[0, 0], abs=0.1) and abs(dy) < 0.1
    assert found["fill_ratio"] == pytest.approx(np.pi / 4, abs=0.06)
    assert found["shape_errors"]["circle"] < 0.02 < min(
        v for k, v in found["shape_errors"].items() if k != "circle")


@pytest.mark.parametrize("shape, fill", [("square", 1.0), ("triangle", 0.5), ("cross", 5 / 9)])
def test_fill_ratio_diagnostic(shape, fill):
    spec = ToyClipSpec("shape", "down", "black", shape, "yellow", size=0.4, speed=0.5)
    found = detect_toy_object(render_clip(spec, 96, 96, 3, seed=0))
    assert found["shape"] == shape and found["direction"] == "down"
    assert found["fill_ratio"] == pytest.approx(fill, abs=0.08)


def test_score_against_caption_accepts_spec_dict_or_caption():
    spec = ToyClipSpec("shape", "up", "white", "triangle", "magenta", size=0.3, speed=0.8)
    frames = render_clip(spec, 48, 48, 6, seed=4)
    expected = dict(colour_correct=True, shape_correct=True, direction_correct=True,
                    all_correct=True, present_correct=True, last_present_correct=True)
    assert score_against_caption(frames, spec) == expected
    assert score_against_caption(frames, spec.to_dict()) == expected
    assert score_against_caption(frames, caption(spec)) == expected
    wrong = score_against_caption(frames, "a blue square moving down on a grey background")
    assert wrong == dict(colour_correct=False, shape_correct=False, direction_correct=False,
                         all_correct=False, present_correct=True, last_present_correct=False)
    partly = score_against_caption(frames, "a magenta circle moving up on a white background")
    assert partly["colour_correct"] and not partly["shape_correct"] and not partly["all_correct"]


def test_still_and_single_frame_clips():
    spec = ToyClipSpec("shape", "still", "grey", "square", "red", size=0.3)
    assert detect_toy_object(render_clip(spec, 32, 32, 5, seed=0))["direction"] == "still"
    one = detect_toy_object(render_clip(spec, 32, 32, 1, seed=0))
    assert (one["colour"], one["shape"], one["direction"]) == ("red", "square", "still")


def test_nothing_to_detect_and_bad_inputs():
    blank = np.full((4, 32, 32, 3), 0.5, np.float32)
    found = detect_toy_object(blank)
    assert not found["found"] and found["colour"] is None and np.isnan(found["centroids"]).all()
    spec = ToyClipSpec("shape", "left", "grey", "circle", "red")
    assert score_against_caption(blank, spec) == dict(
        colour_correct=False, shape_correct=False, direction_correct=False, all_correct=False,
        present_correct=False, last_present_correct=False)
    with pytest.raises(ValueError, match="'shape' clips"):
        score_against_caption(blank, ToyClipSpec("pan", "left", "photo:chelsea"))
    with pytest.raises(ValueError, match="describes a pan"):
        score_against_caption(blank, "a camera pan to the left across a photo of a cat")
    with pytest.raises(ValueError, match=r"\(F, H, W, 3\)"):
        detect_toy_object(np.zeros((4, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="uint8_to_frames"):
        detect_toy_object(np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="background must be"):
        detect_toy_object(blank, background="photo")


def test_moving_objects_over_photos_best_effort():
    # The temporal-median background needs the object to uncover what it hides: small, fast
    # objects. (Large slow ones cover some pixels in every frame; measured shape accuracy there
    # is about 0.75 - a documented limit.)
    backgrounds = tuple(f"photo:{p}" for p in TRAIN_PHOTOS)
    clips, specs = _all_combinations(64, 64, 9, backgrounds=backgrounds,
                                     directions=("left", "right", "up", "down"),
                                     size_range=(0.2, 0.25), speed_range=(0.9, 1.0), seed=3)
    accuracy = caption_accuracy(clips, specs)
    assert detect_toy_object(clips[0])["background"] == "temporal"
    # measured: colour 0.92, shape 0.89, direction 0.94, all 0.875 (96 clips)
    assert accuracy["colour"] >= 0.85 and accuracy["direction"] >= 0.9
    assert accuracy["all"] >= 0.8


def test_object_presence_needs_a_world_colour_of_a_sensible_size_in_most_frames():
    spec = ToyClipSpec("shape", "right", "black", "circle", "yellow", size=0.3, speed=0.8)
    frames = render_clip(spec, 64, 96, 9, seed=1)
    found = detect_toy_object(frames)
    assert object_present(found, (64, 96), spec.size)
    assert not np.isnan(found["areas"]).any()
    # a speck: far below a quarter of the asked shape's area
    speck = ToyClipSpec("shape", "right", "black", "circle", "yellow", size=0.05, speed=0.8)
    assert not object_present(detect_toy_object(render_clip(speck, 64, 96, 9, seed=1)), (64, 96), spec.size)
    # seen in too few frames: the object vanishes after frame 2
    gone = frames.copy()
    gone[2:] = 0.0
    found = detect_toy_object(gone)
    assert found["found"] and not object_present(found, (64, 96), spec.size)
    score = score_against_caption(gone, spec)
    assert not score["present_correct"] and not score["last_present_correct"]
    # a blob of no colour of the world (dull brown) is not the object
    dull = frames.copy()
    dull[frames.sum(-1) > 1.5] = (0.45, 0.3, 0.1)
    assert not object_present(detect_toy_object(dull), (64, 96), spec.size)


@pytest.mark.parametrize("shape, fill", [("square", 1.0), ("circle", np.pi / 4), ("triangle", 0.5), ("cross", 5 / 9)])
def test_describe_object_reads_what_was_drawn_and_its_size(shape, fill):
    spec = ToyClipSpec("shape", "left", "black", shape, "yellow", size=0.35, speed=0.8)
    frames = render_clip(spec, 64, 96, 9, seed=1)
    found = detect_toy_object(frames)
    reading = describe_object(found, (64, 96), spec.size)
    assert (reading["detected_colour"], reading["detected_shape"], reading["detected_direction"]) == (
        "yellow", shape, "left")
    assert reading["seen_frames"] == 1.0 and reading["colour_error"] < 0.05
    assert reading["area_ratio"] == pytest.approx(fill, rel=0.15)  # area over the asked bounding box
    dx, dy = reading["displacement"]  # fractions of the short side (64 px), image y down
    assert dx == pytest.approx(-0.8 * (96 - 2 * 11.2) / 64, abs=0.03) and abs(dy) < 0.01  # speed 0.8 of the free width
    blue = render_clip(ToyClipSpec("shape", "left", "grey", shape, "blue", size=0.35, speed=0.8), 64, 96, 9, seed=1)
    faint = describe_object(detect_toy_object(0.5 * blue + 0.5 * blue[:, :1, :1]), (64, 96), spec.size)
    assert faint["detected_colour"] == "blue" and faint["colour_error"] == pytest.approx(0.433, abs=0.03)  # half blended
    assert score_against_caption(frames, spec, found=found) == score_against_caption(frames, spec)


def test_describe_object_tells_a_flood_a_speck_and_nothing_apart():
    spec = ToyClipSpec("shape", "still", "grey", "square", "red", size=0.3)
    frames = render_clip(spec, 64, 64, 5, seed=0)
    flood = frames.copy()
    red = np.asarray(PALETTE["red"], np.float32)
    flood[:, 8:56, 8:56] = red  # the object's colour over most of the frame
    assert describe_object(detect_toy_object(flood), (64, 64), spec.size)["area_ratio"] > 4
    speck = np.full_like(frames, frames[0, 0, 0])
    speck[:3, 30:33, 30:33] = red  # 3x3 pixels in 3 of 5 frames
    reading = describe_object(detect_toy_object(speck), (64, 64), spec.size)
    assert reading["area_ratio"] < 0.05 and reading["seen_frames"] == pytest.approx(0.6)
    blank = describe_object(detect_toy_object(np.full_like(frames, 0.5)), (64, 64), spec.size)
    assert blank["detected_colour"] is None and blank["seen_frames"] == 0.0 and blank["area_ratio"] is None
    assert blank["displacement"] is None
    assert blank["colour_error"] is None
