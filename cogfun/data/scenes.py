"""Scene cuts by content difference: the first step of the data pipeline (docs/design.md 1.6).

The reference (VideoX-Fun / EasyAnimate, ``video_caption/cutscene_detect.py``) splits long videos
with PySceneDetect's ``ContentDetector(threshold=27, min_scene_len=15)`` before cutting 3-10 s
clips. This module re-implements that detector's rule with numpy so the kit needs neither OpenCV
nor PySceneDetect, keeping its units so the reference's threshold carries over:

1. Each frame is shrunk by an integer box average (Pillow's ``reduce``),
   ``factor = max(1, width // 256)`` (the detector's default downscale: an analysis width between
   256 and 511 pixels).
2. It is converted to HSV in OpenCV's 8-bit units: hue in ``[0, 180)`` (degrees / 2),
   saturation and value in ``[0, 255]``.
3. The *content score* of the transition ``t-1 -> t`` is the mean over the three channels of the
   mean absolute difference between the two frames. A fully different frame scores ~50-120; a
   moving object on a still background scores ~1-5.
4. A cut is placed at frame ``t`` (the first frame of the new scene) when the score is
   ``>= threshold`` (27) and at least ``min_scene_frames`` (15) frames have passed since the last
   cut (or since frame 0), so a flash cannot make one-frame scenes.

Quirks, named rather than hidden:
- Hue is compared linearly, as in PySceneDetect, not around the circle: red at hue 2 and red at
  hue 178 look 176 apart. Dark and grey pixels have an arbitrary hue (0 here) that weighs in only
  through the other two channels.
- A content detector finds hard cuts. Fades and dissolves change each frame a little and pass
  unseen; fast camera motion or a flash can create a false cut.
- Scores depend on the analysis size only through the box average (sub-pixel noise averages out).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_MIN_SCENE_FRAMES",
    "DEFAULT_THRESHOLD",
    "ContentDetector",
    "content_score",
    "detect_scenes",
    "detect_video_scenes",
    "downscale_factor",
    "hsv_opencv_units",
]

#: PySceneDetect's ContentDetector default, the value the reference runs with.
DEFAULT_THRESHOLD = 27.0
#: Minimum scene length in frames (the reference's ``min_scene_len=15``).
DEFAULT_MIN_SCENE_FRAMES = 15
#: Frames are shrunk so that their width is at least this (PySceneDetect's default).
ANALYSIS_MIN_WIDTH = 256


def downscale_factor(width: int, min_width: int = ANALYSIS_MIN_WIDTH) -> int:
    """Integer box-average factor that brings ``width`` to ``[min_width, 2 * min_width)``.

    Args:
        width: frame width in pixels.
        min_width: smallest analysis width (256); narrower frames are not shrunk.

    Returns:
        ``max(1, width // min_width)`` (5 for 1280 wide frames, 2 for 640).
    """
    if width <= 0 or min_width <= 0:
        raise ValueError(f"width and min_width must be positive (got {width}, {min_width})")
    return max(1, width // min_width)


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"a frame must have shape (H, W, 3), got {frame.shape}")
    if frame.dtype == np.uint8:
        return frame
    if not np.issubdtype(frame.dtype, np.floating):
        raise ValueError(f"frames must be uint8 or float in [0, 1], got dtype {frame.dtype}")
    return np.round(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)


def _box_downscale(frame: np.ndarray, factor: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(ceil(H / f), ceil(W / f), 3)`` float32 by block means (Pillow's
    ``reduce``; a ragged edge block averages the pixels it has)."""
    from PIL import Image

    if factor == 1:
        return frame.astype(np.float32)
    return np.asarray(Image.fromarray(frame).reduce(factor), dtype=np.float32)


def hsv_opencv_units(rgb: np.ndarray) -> np.ndarray:
    """RGB ``(..., 3)`` in ``[0, 255]`` -> HSV in OpenCV's 8-bit units (float32).

    Args:
        rgb: float or uint8 array ``(..., 3)`` with values in ``[0, 255]``.

    Returns:
        float32 ``(..., 3)``: hue in ``[0, 180)`` (degrees / 2; 0 for grey pixels), saturation
        ``255 * (max - min) / max`` (0 for black) and value ``max``, both in ``[0, 255]``.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=-1)
    chroma = value - rgb.min(axis=-1)
    safe_value = np.where(value > 0, value, 1.0)
    saturation = np.where(value > 0, 255.0 * chroma / safe_value, 0.0)
    safe_chroma = np.where(chroma > 0, chroma, 1.0)
    # Hue sector by which channel is the maximum (ties resolved r, then g, then b).
    hue = np.where(
        value == r,
        (g - b) / safe_chroma % 6.0,
        np.where(value == g, (b - r) / safe_chroma + 2.0, (r - g) / safe_chroma + 4.0),
    )
    hue = np.where(chroma > 0, hue * 30.0, 0.0)  # 60 degrees per sector, halved: [0, 180)
    return np.stack([hue, saturation, value], axis=-1).astype(np.float32)


def content_score(previous_hsv: np.ndarray, hsv: np.ndarray) -> float:
    """Content score of one transition: mean over H, S, V of the mean absolute difference.

    Args:
        previous_hsv: ``(h, w, 3)`` HSV of frame ``t - 1`` (from :func:`hsv_opencv_units`).
        hsv: ``(h, w, 3)`` HSV of frame ``t``, same shape.

    Returns:
        The score in OpenCV 8-bit HSV units (0 for identical frames).
    """
    if previous_hsv.shape != hsv.shape:
        raise ValueError(
            f"frames of one video must share a size (got {previous_hsv.shape} and {hsv.shape})"
        )
    return float(np.abs(hsv - previous_hsv).mean(axis=(0, 1)).mean())


class ContentDetector:
    """Streaming scene-cut detector: feed frames in order with :meth:`push`.

    Args:
        threshold: content score at or above which a cut is placed (27, the reference's).
        min_scene_frames: no cut closer than this to the previous cut or to frame 0 (15).
        min_width: analysis width floor of the box downscale (256).

    Attributes:
        cuts: frame indices that start a new scene (frame 0 excluded).
        scores: content score of every transition; ``scores[t - 1]`` is ``t-1 -> t``.
        num_frames: frames pushed so far.
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        min_scene_frames: int = DEFAULT_MIN_SCENE_FRAMES,
        min_width: int = ANALYSIS_MIN_WIDTH,
    ) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0 (got {threshold}); the reference uses 27")
        if min_scene_frames < 1:
            raise ValueError(f"min_scene_frames must be >= 1 (got {min_scene_frames})")
        self.threshold = float(threshold)
        self.min_scene_frames = int(min_scene_frames)
        self.min_width = int(min_width)
        self.cuts: list[int] = []
        self.scores: list[float] = []
        self.num_frames = 0
        self._previous: np.ndarray | None = None
        self._factor: int | None = None

    def push(self, frame: np.ndarray) -> bool:
        """Add the next frame; True when it starts a new scene.

        Args:
            frame: ``(H, W, 3)`` uint8, or float in [0, 1].
        """
        frame = _to_uint8(frame)
        if self._factor is None:
            self._factor = downscale_factor(frame.shape[1], self.min_width)
        hsv = hsv_opencv_units(_box_downscale(frame, self._factor))  # (h, w, 3)
        index = self.num_frames
        self.num_frames += 1
        previous, self._previous = self._previous, hsv
        if previous is None:
            return False
        score = content_score(previous, hsv)
        self.scores.append(score)
        last_cut = self.cuts[-1] if self.cuts else 0
        if score >= self.threshold and index - last_cut >= self.min_scene_frames:
            self.cuts.append(index)
            return True
        return False

    def scenes(self) -> list[tuple[int, int]]:
        """Scenes so far: ``(start, end)`` frame ranges, ``end`` exclusive, covering all frames."""
        if self.num_frames == 0:
            return []
        bounds = [0, *self.cuts, self.num_frames]
        return [(a, b) for a, b in zip(bounds, bounds[1:])]


def detect_scenes(
    frames: Iterable[np.ndarray],
    threshold: float = DEFAULT_THRESHOLD,
    min_scene_frames: int = DEFAULT_MIN_SCENE_FRAMES,
) -> list[tuple[int, int]]:
    """Split frames into scenes at hard cuts.

    Args:
        frames: ``(F, H, W, 3)`` array (uint8, or float in [0, 1]) or any iterable of frames.
        threshold: content score of a cut (27).
        min_scene_frames: shortest scene in frames (15).

    Returns:
        ``[(start, end), ...]`` with ``end`` exclusive; consecutive, covering ``0 .. F``.
    """
    detector = ContentDetector(threshold, min_scene_frames)
    for frame in frames:
        detector.push(frame)
    return detector.scenes()


def detect_video_scenes(
    path: str | os.PathLike,
    threshold: float = DEFAULT_THRESHOLD,
    min_scene_frames: int = DEFAULT_MIN_SCENE_FRAMES,
    max_frames: int | None = None,
) -> ContentDetector:
    """Decode a video once (PyAV, streaming: one frame in memory) and detect its scene cuts.

    Args:
        path: a video file PyAV can decode.
        threshold: content score of a cut (27).
        min_scene_frames: shortest scene in frames (15).
        max_frames: stop after this many frames (None: the whole video).

    Returns:
        The detector: ``.scenes()``, ``.cuts``, ``.scores``, ``.num_frames``.
    """
    import av

    path = Path(path)
    detector = ContentDetector(threshold, min_scene_frames)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"could not decode video {path}: it has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if max_frames is not None and detector.num_frames >= max_frames:
                    break
                detector.push(frame.to_ndarray(format="rgb24"))  # (H, W, 3) uint8
    except ValueError as err:  # av.error.FFmpegError subclasses ValueError
        if str(err).startswith("could not decode video"):
            raise
        raise ValueError(f"could not decode video {path}: {err}") from None
    except (OSError, RuntimeError, EOFError) as err:
        raise ValueError(f"could not decode video {path}: {err}") from None
    if detector.num_frames == 0:
        raise ValueError(f"could not decode video {path}: no frames decoded")
    return detector
