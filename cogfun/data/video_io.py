"""Video and image input/output, and the kit's in-memory video convention.

**Convention.** A video in memory is a numpy ``float32`` array ``(F, H, W, 3)`` with RGB values in
``[0, 1]`` ("frames"); a single image is ``(H, W, 3)`` in the same range. Models consume torch
tensors ``(F, C, H, W)`` in ``[-1, 1]`` (the layout of CogVideoX-Fun's ``pixel_values``); convert
with :func:`frames_to_tensor` and :func:`tensor_to_frames`. Files hold ``uint8``; convert with
:func:`frames_to_uint8` and :func:`uint8_to_frames`.

Everything here runs offline. Videos are decoded and encoded with PyAV (its wheels bundle
FFmpeg with libx264, libvpx and the GIF codec); images go through Pillow. mediapy's reader does
not work with the ffmpeg shipped by imageio-ffmpeg, so mediapy is only used to *show* videos.

Quirks, named rather than hidden:
- ``.mp4`` is H.264 in ``yuv420p`` (what every browser and player accepts), which needs even
  width and height and subsamples chroma; :func:`write_video` raises on odd sizes unless asked
  to pad. All three formats are lossy: expect a mean absolute error of about 0.01 - 0.02.
- ``.gif`` stores frame delays in 1/100 s, so 8 fps is stored as 12/13 cs delays and read back as
  about 8.3 fps. Each frame gets its own 256-colour palette (Pillow's median cut).
- Image sources (one image, a folder of images) have no frame rate: the kit's default ``8.0`` is
  returned.
"""

from __future__ import annotations

import io
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

# ================================================================================================
#                                         Conventions
# ================================================================================================

DEFAULT_FPS = 8.0  # CogVideoX-Fun's default output frame rate
VIDEO_EXTENSIONS = (".mp4", ".webm", ".gif", ".mov", ".mkv", ".avi")
WRITABLE_VIDEO_EXTENSIONS = (".mp4", ".webm", ".gif")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _check_frames(frames: Any, name: str = "frames") -> np.ndarray:
    """Validate a ``(F, H, W, 3)`` numpy video (float in [0, 1] or uint8) and return it."""
    if isinstance(frames, torch.Tensor):
        raise ValueError(
            f"{name} must be a numpy (F, H, W, 3) array in [0, 1], got a torch tensor of shape "
            f"{tuple(frames.shape)}; convert a (F, C, H, W) tensor in [-1, 1] with "
            "tensor_to_frames(x)"
        )
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"{name} must have shape (F, H, W, 3) (RGB, channels last), got {frames.shape}; "
            "add a frame axis with x[None] for one image, or np.repeat(x[..., None], 3, -1) for "
            "grey frames"
        )
    if frames.shape[0] == 0:
        raise ValueError(f"{name} has no frames (shape {frames.shape}); pass at least one frame")
    if frames.dtype != np.uint8 and not np.issubdtype(frames.dtype, np.floating):
        raise ValueError(f"{name} must be float in [0, 1] or uint8, got dtype {frames.dtype}")
    return frames


def frames_to_uint8(frames: np.ndarray) -> np.ndarray:
    """Convert float frames in [0, 1] to uint8 (values outside [0, 1] are clipped).

    Args:
        frames: ``(..., 3)`` float array in [0, 1] (e.g. ``(F, H, W, 3)`` or ``(H, W, 3)``);
            a uint8 array is returned unchanged.

    Returns:
        uint8 array of the same shape, ``round(clip(x, 0, 1) * 255)``.
    """
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    if not np.issubdtype(frames.dtype, np.floating):
        raise ValueError(f"frames must be float in [0, 1] or uint8, got dtype {frames.dtype}")
    if np.isnan(frames).any():
        raise ValueError("frames contain NaN; fix the generator output before saving it")
    return np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)


def uint8_to_frames(frames: np.ndarray) -> np.ndarray:
    """Convert uint8 frames to the kit's float32 convention in [0, 1].

    Args:
        frames: uint8 array ``(..., 3)``, e.g. ``(F, H, W, 3)``.

    Returns:
        float32 array of the same shape, ``x / 255``.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"uint8_to_frames expects uint8 input, got dtype {frames.dtype}")
    return frames.astype(np.float32) / np.float32(255.0)


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """Numpy frames ``(F, H, W, 3)`` in [0, 1] (or uint8) -> torch ``(F, C, H, W)`` in [-1, 1].

    Args:
        frames: ``(F, H, W, 3)`` float in [0, 1] or uint8.

    Returns:
        float32 tensor ``(F, 3, H, W)`` in [-1, 1] (the layout of ``pixel_values``).
    """
    frames = _check_frames(frames)
    if frames.dtype == np.uint8:
        frames = uint8_to_frames(frames)
    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))  # (F, H, W, C)
    return x.permute(0, 3, 1, 2).mul(2.0).sub(1.0).contiguous()  # (F, C, H, W) in [-1, 1]


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """Torch ``(F, C, H, W)`` in [-1, 1] -> numpy frames ``(F, H, W, 3)`` float32 in [0, 1].

    Values outside [-1, 1] (common in generated output) are clipped.

    Args:
        x: tensor ``(F, 3, H, W)`` in [-1, 1], any float dtype and device. For a pipeline's
            ``(B, F, C, H, W)`` output pass one sample, ``x[0]``.

    Returns:
        float32 array ``(F, H, W, 3)`` in [0, 1].
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"tensor_to_frames expects a torch tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(
            f"tensor_to_frames expects (F, 3, H, W), got {tuple(x.shape)}; for a batch "
            "(B, F, C, H, W) pass one sample x[b]"
        )
    y = (x.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) / 2.0  # (F, C, H, W) in [0, 1]
    return y.permute(0, 2, 3, 1).contiguous().numpy()  # (F, H, W, C)


# ================================================================================================
#                                           Images
# ================================================================================================


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 ``(H, W, 3)`` in [0, 1].

    Grey images are repeated to RGB; an alpha channel is dropped (not composited).

    Args:
        path: an image file (png, jpg, bmp, webp, tif, ...).

    Returns:
        float32 array ``(H, W, 3)`` in [0, 1].
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    _check_file(path, what="image")
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"could not decode image {path}: {err}; is it a valid png/jpg?") from None
    return uint8_to_frames(rgb)


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write one image; the format follows the extension (png is lossless).

    Args:
        path: output file, e.g. ``frame.png``; its folder is created.
        image: ``(H, W, 3)`` float in [0, 1] (clipped) or uint8.

    Returns:
        the path written.
    """
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(
            f"unknown image extension {path.suffix!r} for {path}; use one of {IMAGE_EXTENSIONS}"
        )
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}; for a video use "
                         "write_video")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frames_to_uint8(image)).save(path)
    return path


# ================================================================================================
#                                           Reading
# ================================================================================================


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise ValueError(f"{what} file not found: {path}; check the path")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"{what} file is empty (0 bytes): {path}; it was probably not written "
                         "completely, write it again")


def _decode_error(path: Path, err: BaseException) -> ValueError:
    reason = str(err) or type(err).__name__
    return ValueError(f"could not decode video {path}: {reason}; is it a valid mp4/webm/gif?")


def _natural_key(name: str) -> list:
    """Sort key so that ``frame2.png`` comes before ``frame10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _check_window(max_frames: int | None, start: int, stride: int) -> None:
    if start < 0:
        raise ValueError(f"start must be >= 0 (got {start})")
    if stride < 1:
        raise ValueError(f"stride must be >= 1 (got {stride})")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None (got {max_frames})")


def _read_image_source(
    files: list[Path], max_frames: int | None, start: int, stride: int, source: Path
) -> tuple[np.ndarray, float]:
    picked = files[start::stride]
    if max_frames is not None:
        picked = picked[:max_frames]
    if not picked:
        raise ValueError(f"start={start} is past the end of {source} ({len(files)} frames); "
                         f"use start < {len(files)}")
    images = [read_image(f) for f in picked]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f"images in {source} have different sizes {sorted(shapes)}; resize them "
                         "to one size before reading them as a video")
    return np.stack(images), DEFAULT_FPS


def read_video(
    path: str | os.PathLike,
    max_frames: int | None = None,
    start: int = 0,
    stride: int = 1,
) -> tuple[np.ndarray, float]:
    """Read a video (or an image, or a folder of images) as float32 frames in [0, 1].

    Frames ``start, start + stride, start + 2 * stride, ...`` are kept, at most ``max_frames`` of
    them; decoding stops as soon as enough frames are read.

    Args:
        path: a video file PyAV can decode (mp4, webm, gif, mov, mkv, ...), a single image
            (-> one frame) or a folder of same-sized images (sorted by natural name order).
        max_frames: maximum number of frames returned; ``None`` reads to the end.
        start: index of the first frame kept (0-based).
        stride: keep every ``stride``-th frame from ``start``.

    Returns:
        ``(frames, fps)``: float32 ``(F, H, W, 3)`` in [0, 1], and the source frame rate (not
        divided by ``stride``; ``8.0`` for image sources; approximate for GIF). Mind memory on
        long clips: 720p costs 11 MB per frame in float32, so pass ``max_frames``.
    """
    import av

    _check_window(max_frames, start, stride)
    path = Path(path)
    if path.is_dir():
        files = sorted((f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS),
                       key=lambda f: _natural_key(f.name))
        if not files:
            raise ValueError(f"folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                             "point read_video at a video file or a folder of frames")
        return _read_image_source(files, max_frames, start, stride, path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _read_image_source([path], max_frames, start, stride, path)

    _check_file(path, what="video")
    frames: list[np.ndarray] = []
    n_seen = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"could not decode video {path}: it has no video stream; is it "
                                 "a valid mp4/webm/gif?")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threading: faster, same pixels
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else DEFAULT_FPS
            for frame in container.decode(stream):
                if n_seen >= start and (n_seen - start) % stride == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))  # (H, W, 3) uint8
                    if max_frames is not None and len(frames) >= max_frames:
                        break
                n_seen += 1
    except ValueError as err:
        # av.error.FFmpegError subclasses ValueError; also re-wraps our own message unchanged.
        if str(err).startswith("could not decode video"):
            raise
        raise _decode_error(path, err) from None
    except (OSError, RuntimeError, EOFError) as err:
        raise _decode_error(path, err) from None
    if not frames:
        if n_seen == 0:
            raise ValueError(f"could not decode video {path}: no frames decoded; is it a valid "
                             "mp4/webm/gif?")
        raise ValueError(f"start={start} is past the end of {path} ({n_seen} frames); use "
                         f"start < {n_seen}")
    return uint8_to_frames(np.stack(frames)), fps


def frame_indices(
    total: int,
    source_fps: float,
    start: int = 0,
    stride: int | None = None,
    sample_fps: float | None = None,
    num_frames: int | None = None,
) -> tuple[list[int], float]:
    """The indices of the frames to use from a clip of ``total`` frames, and their frame rate.

    Frames ``start, start + step, start + 2 * step, ...`` with ``step = stride`` or
    ``source_fps / sample_fps`` (rounded to the nearest frame, as ffmpeg's ``fps`` filter does), at most
    ``num_frames`` of them (``None``: all to the end).

    Returns:
        ``(indices, fps)``: 0-based frame indices and the rate of the picked frames, ``source_fps / step``.
    """
    from ..pipelines.validation import check_frame_window, check_num_frames

    check_frame_window(start, stride, sample_fps)
    if num_frames is not None and (not isinstance(num_frames, int) or num_frames < 1):
        check_num_frames(num_frames)  # raises with the rule and the fix
    if sample_fps is not None and sample_fps > source_fps:
        raise ValueError(f"sample_fps={sample_fps:g} is above the source's {source_fps:g} fps (frames would repeat); "
                         f"use sample_fps <= {source_fps:g}")
    step = float(stride) if stride is not None else (source_fps / sample_fps if sample_fps else 1.0)
    if start >= total:
        raise ValueError(f"start={start} is past the end of the video ({total} frames); use start < {total}")
    available = int((total - 1 - start) // step) + 1
    if num_frames is not None and num_frames > available:
        raise ValueError(
            f"the video has {available} frames from start={start} with a step of {step:g} ({total} in all) but "
            f"{num_frames} were asked for; ask for at most {available} (--num-frames), or lower --start or the step"
        )
    count = available if num_frames is None else num_frames
    return [start + int(round(k * step)) for k in range(count)], source_fps / step


def _decode_by_counting(container, stream, wanted: set[int], last: int) -> dict[int, np.ndarray]:
    """Decode from the start, counting frames (GIFs, files whose timestamps cannot be trusted)."""
    picked: dict[int, np.ndarray] = {}
    for index, frame in enumerate(container.decode(stream)):
        if index in wanted:
            picked[index] = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
        if index >= last:
            break
    return picked


def _decode_after_seek(container, stream, wanted: set[int], first: int, last: int, fps: float) -> dict[int, np.ndarray]:
    """Seek to the keyframe at or before frame ``first``, then decode up to frame ``last`` (timestamps -> index)."""
    time_base, origin = stream.time_base, stream.start_time or 0
    if first > 0:
        container.seek(origin + int(first / fps / time_base), stream=stream, backward=True, any_frame=False)
    picked: dict[int, np.ndarray] = {}
    for frame in container.decode(stream):
        if frame.pts is None:
            return {}
        index = int(round(float((frame.pts - origin) * time_base) * fps))
        if index in wanted:
            picked[index] = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
        if index >= last:
            break
    return picked


def read_video_frames(
    path: str | os.PathLike,
    start: int = 0,
    stride: int | None = None,
    num_frames: int | None = None,
    sample_fps: float | None = None,
) -> tuple[np.ndarray, float]:
    """Read only the frames used from a video: seek to ``start``, keep every ``stride``-th, stop after the last.

    What ``cogfun generate --video --start --stride/--sample-fps --num-frames`` and the pipeline's video inputs
    use: a 2.7 GB clip costs the frames asked for, not the whole file. The container is sought to the keyframe
    before ``start`` (PyAV ``seek``); the frames in between are decoded (inter-frame codecs need them) but not
    converted. Frame indices come from timestamps at the stream's average rate (constant frame rate assumed);
    GIFs, and files where seeking misses a frame, are decoded from the start by counting instead.

    Args:
        path: a video file, an image, or a folder of images (those are read with :func:`read_video`).
        start: index of the first frame used (0-based).
        stride: use every ``stride``-th frame. Exclusive with ``sample_fps``.
        num_frames: frames to return (``None``: all to the end); more than the clip holds is an error.
        sample_fps: sample the clip at this rate (``<=`` the source's), e.g. 8 from a 25 fps clip.

    Returns:
        ``(frames, fps)``: float32 ``(F, H, W, 3)`` in [0, 1], and the rate of the returned frames (the source's
        divided by the step: 25 fps with ``stride=2`` gives 12.5).
    """
    import av

    path = Path(path)
    if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS:
        info = probe_video(path)
        indices, fps = frame_indices(info["num_frames"], info["fps"], start, stride, sample_fps, num_frames)
        frames, _ = read_video(path, max_frames=indices[-1] + 1)  # image files: read up to the last one used
        return frames[indices], fps
    info = probe_video(path)  # raises a clear ValueError for a missing, empty or broken file
    indices, fps = frame_indices(info["num_frames"], info["fps"], start, stride, sample_fps, num_frames)
    wanted, first, last = set(indices), indices[0], indices[-1]
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            picked = {}
            if path.suffix.lower() != ".gif":
                picked = _decode_after_seek(container, stream, wanted, first, last, info["fps"])
            if len(picked) != len(wanted):  # no timestamps, or the seek missed: count from the start
                container.seek(0)
                picked = _decode_by_counting(container, stream, wanted, last)
    except ValueError as err:  # av.error.FFmpegError subclasses ValueError
        raise _decode_error(path, err) from None
    except (OSError, RuntimeError, EOFError) as err:
        raise _decode_error(path, err) from None
    if len(picked) != len(wanted):
        got = max(picked, default=-1) + 1
        raise ValueError(f"{path} ended after {got} decodable frames, before frame {last}; ask for fewer frames "
                         f"(--num-frames) or an earlier --start")
    return uint8_to_frames(np.stack([picked[i] for i in indices])), fps


def probe_video(path: str | os.PathLike) -> dict:
    """Read a video's size, frame count, frame rate and duration without decoding pixels.

    The frame count comes from the container header when it has one (mp4), otherwise from
    counting packets (webm, gif) - still no decoding.

    Args:
        path: a video file, an image, or a folder of images.

    Returns:
        ``dict(num_frames=int, fps=float, width=int, height=int, duration=float seconds)``.
    """
    import av

    path = Path(path)
    if path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS:
        if path.is_dir():
            files = sorted((f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS),
                           key=lambda f: _natural_key(f.name))
            if not files:
                raise ValueError(f"folder {path} holds no images; point probe_video at a video")
        else:
            files = [path]
        h, w, _ = read_image(files[0]).shape
        n = len(files)
        return dict(num_frames=n, fps=DEFAULT_FPS, width=w, height=h, duration=n / DEFAULT_FPS)

    _check_file(path, what="video")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"could not decode video {path}: it has no video stream; is it "
                                 "a valid mp4/webm/gif?")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else DEFAULT_FPS
            width, height = stream.codec_context.width, stream.codec_context.height
            num_frames = int(stream.frames or 0)
            if num_frames == 0:
                num_frames = sum(1 for p in container.demux(stream) if p.size > 0)
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000  # AV_TIME_BASE microseconds
            else:
                duration = num_frames / fps
    except ValueError as err:
        if str(err).startswith("could not decode video"):
            raise
        raise _decode_error(path, err) from None
    except (OSError, RuntimeError, EOFError) as err:
        raise _decode_error(path, err) from None
    if num_frames == 0 or not width or not height:
        raise ValueError(f"could not decode video {path}: no frames found; is it a valid "
                         "mp4/webm/gif?")
    return dict(num_frames=num_frames, fps=fps, width=int(width), height=int(height),
                duration=duration)


# ================================================================================================
#                                           Writing
# ================================================================================================


def _gif_palette_frame(rgb: np.ndarray):
    """One ``(H, W, 3)`` uint8 frame -> PyAV ``pal8`` frame with its own 256-colour palette."""
    import av
    from PIL import Image

    q = Image.fromarray(rgb).quantize(256, method=Image.Quantize.MEDIANCUT,
                                      dither=Image.Dither.NONE)
    index = np.asarray(q)  # (H, W) uint8 palette indices
    rgb_palette = np.array(q.getpalette()[: 256 * 3], dtype=np.uint8).reshape(-1, 3)
    palette = np.zeros((256, 4), dtype=np.uint8)  # PyAV wants ARGB rows
    palette[:, 0] = 255
    palette[: len(rgb_palette), 1:] = rgb_palette
    return av.VideoFrame.from_ndarray((index, palette), format="pal8")


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float = DEFAULT_FPS,
    crf: int = 18,
    pad_to_even: bool = False,
) -> Path:
    """Write frames to a video file; the codec follows the extension.

    - ``.mp4``: H.264 (libx264), ``yuv420p``; width and height must be even (see ``pad_to_even``).
    - ``.webm``: VP9 (libvpx-vp9), ``yuv420p``; any size.
    - ``.gif``: GIF with a 256-colour palette per frame, looping; delays in 1/100 s.

    Args:
        path: output file; its folder is created. An existing file is overwritten.
        frames: ``(F, H, W, 3)`` float in [0, 1] (clipped) or uint8. Not a torch tensor: convert
            one with :func:`tensor_to_frames` first.
        fps: frame rate (default 8, CogVideoX-Fun's output rate).
        crf: quality for mp4/webm, lower is better (x264: 0..51, 18 ~ visually lossless;
            vp9: 0..63). Ignored for gif.
        pad_to_even: for mp4 with an odd width or height, repeat the last row/column to make them
            even instead of raising. The file is then one pixel larger than ``frames``.

    Returns:
        the path written.
    """
    import av

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITABLE_VIDEO_EXTENSIONS:
        raise ValueError(f"cannot write {path}: unknown video extension {ext!r}; use one of "
                         f"{WRITABLE_VIDEO_EXTENSIONS}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0 (got {fps})")
    frames = frames_to_uint8(_check_frames(frames))  # (F, H, W, 3) uint8
    _, height, width, _ = frames.shape
    if ext == ".mp4" and (height % 2 or width % 2):
        if not pad_to_even:
            raise ValueError(
                f"mp4 (H.264 yuv420p) needs even width and height, got {width}x{height} for "
                f"{path}; crop or pad the frames, pass pad_to_even=True, or write .webm/.gif"
            )
        frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        _, height, width, _ = frames.shape

    # A Fraction keeps e.g. 8 fps exact in the container's time base.
    rate = Fraction(fps).limit_denominator(1001)
    # Byte-reproducible files: the same frames give the same bytes on any machine. One encoder thread (x264
    # and vp9 split work by thread count), and "bitexact" flags so that neither the encoder nor the muxer
    # writes its version string, a creation date or random ids (matroska's segment UID).
    if ext == ".mp4":
        codec, pix_fmt = "libx264", "yuv420p"
        options = {"crf": str(crf), "preset": "medium", "threads": "1"}
    elif ext == ".webm":
        codec, pix_fmt = "libvpx-vp9", "yuv420p"
        options = {"crf": str(crf), "b:v": "0", "cpu-used": "4", "threads": "1"}
    else:
        codec, pix_fmt, options = "gif", "pal8", {}
    options["flags"] = "+bitexact"

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(path), mode="w", options={"fflags": "+bitexact"}) as container:
            stream = container.add_stream(codec, rate=rate, options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            for rgb in frames:
                if ext == ".gif":
                    frame = _gif_palette_frame(rgb)
                else:
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():  # flush the encoder
                container.mux(packet)
    except (ValueError, OSError, RuntimeError) as err:
        raise ValueError(f"could not encode video {path} with {codec}: {err}") from None
    return path


def write_frames(folder: str | os.PathLike, frames: np.ndarray) -> Path:
    """Write frames losslessly as ``folder/000.png, 001.png, ...`` (``read_video(folder)`` reads them back).

    Args:
        folder: output folder (created); it must not already hold images, so no clip is mixed into another.
        frames: ``(F, H, W, 3)`` float in [0, 1] or uint8.

    Returns:
        the folder.
    """
    folder = Path(folder)
    frames = frames_to_uint8(_check_frames(frames))  # (F, H, W, 3) uint8
    if folder.is_dir() and any(f.suffix.lower() in IMAGE_EXTENSIONS for f in folder.iterdir()):
        raise ValueError(f"{folder} already holds images; write the frames to a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    digits = max(3, len(str(len(frames) - 1)))
    for i, frame in enumerate(frames):
        write_image(folder / f"{i:0{digits}d}.png", frame)
    return folder


def gif_bytes(frames: np.ndarray, fps: float = DEFAULT_FPS) -> bytes:
    """Encode frames as an animated, looping GIF in memory (for notebooks and HTML reports).

    Uses Pillow, so it needs no FFmpeg. Pillow merges identical consecutive frames into one longer
    frame, which plays the same but changes the frame count: use :func:`write_video` with ``.gif``
    for files that must keep every frame.

    Args:
        frames: ``(F, H, W, 3)`` float in [0, 1] or uint8.
        fps: frame rate.

    Returns:
        the GIF file's bytes.
    """
    from PIL import Image

    frames = frames_to_uint8(_check_frames(frames))
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(int(round(1000.0 / fps)), 20), loop=0)
    return buffer.getvalue()


def apng_bytes(frames: np.ndarray, fps: float = DEFAULT_FPS, colours: int | None = None) -> bytes:
    """Encode frames as an animated, looping PNG (APNG) in memory: lossless, and small for upscaled frames.

    Browsers play APNG in a plain ``<img>`` (so a notebook's ``image/png`` output animates without trust). PNG's
    row filters make the repeated rows of a nearest-neighbour upscale almost free, where GIF (LZW, 256 colours)
    pays for every row: a 3x upscale of toy clips is about 2.4x smaller as APNG than as GIF, in full colour.

    Args:
        frames: ``(F, H, W, 3)`` float in [0, 1] or uint8.
        fps: frame rate.
        colours: ``None`` (default): full colour, lossless. A count (2-256): one palette of that many colours
            shared by every frame (median cut, no dithering), one byte per pixel instead of three: about 2.3x
            smaller for a generated toy clip upscaled 3x (the decoder's pixel noise is what full colour pays for),
            at the cost of small colour steps. For notebooks that must stay small.

    Returns:
        the PNG file's bytes (a still PNG for one frame).
    """
    from PIL import Image

    frames = frames_to_uint8(_check_frames(frames))
    if colours is None:
        images = [Image.fromarray(f) for f in frames]
    else:
        if not 2 <= int(colours) <= 256:
            raise ValueError(f"colours must be None or 2..256 (got {colours})")
        n, height, width, _ = frames.shape
        strip = Image.fromarray(frames.reshape(n * height, width, 3)).quantize(
            colors=int(colours), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        palette, indices = strip.getpalette(), np.asarray(strip).reshape(n, height, width)
        images = []
        for index in indices:
            image = Image.fromarray(index, mode="P")
            image.putpalette(palette)
            images.append(image)
    buffer = io.BytesIO()
    images[0].save(buffer, format="PNG", save_all=True, append_images=images[1:],
                   duration=max(int(round(1000.0 / fps)), 20), loop=0, default_image=False)
    return buffer.getvalue()


# ================================================================================================
#                                          Notebooks
# ================================================================================================

_MEDIAPY_READY: bool | None = None  # None: not tried yet


def _mediapy_ready() -> bool:
    """Point mediapy at imageio-ffmpeg's bundled binary once (there may be no system ffmpeg)."""
    global _MEDIAPY_READY
    if _MEDIAPY_READY is None:
        try:
            import imageio_ffmpeg
            import mediapy

            mediapy.set_ffmpeg(imageio_ffmpeg.get_ffmpeg_exe())
            _MEDIAPY_READY = True
        except Exception:  # noqa: BLE001 - any failure means "use the GIF fallback"
            _MEDIAPY_READY = False
    return _MEDIAPY_READY


#: Smallest width a notebook shows a video at: toy clips are 64-96 px wide, unreadable at their own size.
MIN_DISPLAY_WIDTH = 256


def display_scale(width: int, min_width: int = MIN_DISPLAY_WIDTH) -> int:
    """The integer upscaling factor that makes ``width`` at least ``min_width`` pixels (1 if it already is)."""
    return max(1, -(-min_width // max(int(width), 1)))


def side_by_side(videos: Sequence[np.ndarray], gap: int = 2, fill: int = 255) -> np.ndarray:
    """Videos next to each other in one clip (an input beside its output, several outputs in a row).

    Args:
        videos: ``(F_i, H_i, W_i, 3)`` clips, float in [0, 1] or uint8; lengths and heights may differ.
        gap: pixels of ``fill`` between neighbouring clips.
        fill: the gap's (and the padding's) grey level, 0-255 (white by default: it reads as a border).

    Returns:
        ``(max F_i, max H_i, sum W_i + gap * (n - 1), 3)`` uint8: a shorter clip holds its last frame, a lower
        one is padded below with ``fill``.
    """
    clips = [frames_to_uint8(_check_frames(v, f"videos[{i}]")) for i, v in enumerate(videos)]
    if not clips:
        raise ValueError("side_by_side needs at least one video")
    length = max(len(c) for c in clips)
    height = max(c.shape[1] for c in clips)
    parts = []
    for i, c in enumerate(clips):
        c = np.concatenate([c, np.repeat(c[-1:], length - len(c), axis=0)])  # hold the last frame
        c = np.pad(c, ((0, 0), (0, height - c.shape[1]), (0, 0), (0, 0)), constant_values=fill)
        parts.append(c)
        if gap and i < len(clips) - 1:
            parts.append(np.full((length, height, gap, 3), fill, dtype=np.uint8))
    return np.concatenate(parts, axis=2)


def show_video(frames: np.ndarray | Mapping[str, np.ndarray], fps: float = DEFAULT_FPS, title: str | None = None,
               width: int | None = None, player: str = "png", colours: int | None = None) -> str:
    """Display a video inline in a notebook, at a readable size; several, side by side, from a mapping.

    The default is an animated PNG (APNG, an ``<img>``; :func:`apng_bytes`): it plays in JupyterLab without trusting
    the notebook, where
    a ``<video>`` tag in an untrusted notebook shows as a black box, and it carries no player controls over small
    frames. Frames are upscaled by an integer factor with nearest-neighbour pixels in the file itself, to at least
    :data:`MIN_DISPLAY_WIDTH` pixels wide per clip, so toy pixels stay sharp squares. (A browser-side upscale would
    need the ``image-rendering: pixelated`` style, and JupyterLab's sanitiser keeps only a short list of inline
    styles in untrusted outputs (jupyterlab/jupyterlab#5012): the kit does not rely on it.)

    Args:
        frames: ``(F, H, W, 3)`` float in [0, 1] or uint8; or ``{label: frames}`` to show the clips side by side
            in one GIF that plays them in step (an input next to its output), the labels named left to right
            in the caption.
        fps: playback frame rate.
        title: optional caption shown above the video.
        width: display width in pixels (default: the upscaled width).
        player: ``"png"`` (default, APNG), ``"gif"`` (an animated GIF, 256 colours, larger) or ``"video"``
            (mediapy's H.264 ``<video>`` tag with controls; needs a trusted notebook to play; falls back to the
            APNG when mediapy or ffmpeg is missing).
        colours: the APNG's palette size (:func:`apng_bytes`; ``None``, the default: full colour). 256 keeps a
            notebook with several generated clips small.

    Returns:
        ``"png"``, ``"gif"`` or ``"mediapy"``: which path displayed the video.
    """
    if player not in ("png", "gif", "video"):
        raise ValueError(f"player must be 'png', 'gif' or 'video' (got {player!r})")
    if isinstance(frames, Mapping):
        clips = {label: frames_to_uint8(_check_frames(v, f"video {label!r}")) for label, v in frames.items()}
        if not clips:
            raise ValueError("show_video needs at least one video")
        scale = display_scale(min(c.shape[2] for c in clips.values()))
        frames = side_by_side([c.repeat(scale, axis=1).repeat(scale, axis=2) for c in clips.values()], gap=2 * scale)
        labels = " | ".join(clips)
        title = f"{title}: {labels}" if title else labels
    else:
        frames = frames_to_uint8(_check_frames(frames))
        scale = display_scale(frames.shape[2])
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)  # (F, s*H, s*W, 3), nearest neighbour
    if player == "video" and _mediapy_ready():
        try:
            import mediapy

            mediapy.show_video(frames, fps=fps, title=title, width=width)
            return "mediapy"
        except Exception:  # noqa: BLE001 - fall back to the APNG rather than fail in a notebook
            pass
    from IPython.display import Image as IPyImage
    from IPython.display import Markdown, display

    if title:
        display(Markdown(f"**{title}**"))
    if player == "gif":
        display(IPyImage(data=gif_bytes(frames, fps=fps), format="gif", width=width))
        return "gif"
    display(IPyImage(data=apng_bytes(frames, fps=fps, colours=colours), format="png", width=width))
    return "png"
