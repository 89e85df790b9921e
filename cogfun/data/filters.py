"""Clip filters of the data pipeline: minimum size, motion score, near-duplicates (docs/design.md 1.6).

The reference (VideoX-Fun / EasyAnimate ``video_caption/``) keeps clips whose *motion score* lies
in ``[2, 20]``; its score (``compute_motion_score.py``) is the mean magnitude of OpenCV's
Farneback optical flow between grey frames sampled at 2 fps, at the clip's full resolution. The
kit has no OpenCV, so :func:`motion_score` measures the same quantity with its own flow:

**Motion score** = mean over the sampled frame pairs of the mean per-pixel optical-flow magnitude,
in **pixels of the source frame per sampling interval** (the reference samples every
``int(fps / 2)`` frames, about 0.5 s; at 25 fps every 12th frame). The flow is computed on grey
frames shrunk to ``analysis_short_side`` (128) and multiplied back by
``source_short_side / analysis_short_side``, so the score keeps the reference's units while the
flow runs on ~30k pixels. Like the reference's, the score grows with resolution: the same pan
scores twice as high on a video twice as large.

Methods of :func:`optical_flow` (``method=``):
- ``"lk"`` (default): pyramidal iterative Lucas-Kanade written here in torch (7x7 windows,
  coarse-to-fine with warping, updates spread from textured to flat pixels by a
  confidence-weighted average). On textured photos panned by a known amount it reads within
  ~10% of the truth from 0.5 to 20 pixels; where much of the frame is flat (sky, walls) the
  mean magnitude reads low (-35% on scikit-image's rocket photo), since no flow can be seen
  there. About 0.05 CPU-s per frame pair at 128x228, ~5x faster than TV-L1.
- ``"tvl1"``: scikit-image's ``optical_flow_tvl1``: precise for displacements of a few pixels,
  but with its default parameters it under-reads larger ones on small frames (0.5-4 px
  instead of 7.5 on 64x96 pans), so use it with a larger ``analysis_short_side``.
- ``"ilk"``: scikit-image's ``optical_flow_ilk`` (no confidence spreading: flat regions
  over-read).
- ``"diff"`` (in :func:`motion_score` only): no flow; the mean absolute grey-level difference
  between the sampled frames, in 8-bit levels (0..255). A different scale: the ``[2, 20]`` range
  does not apply to it.

No flow estimator equals Farneback's, so treat ``[2, 20]`` as the reference's order of magnitude,
not a calibrated bound: look at clips near the limits before filtering a large corpus.

**Near-duplicates**: a clip is summarised by the 64-bit difference hash (dHash: grey 9x8 thumbnail,
one bit per "left pixel brighter than its right neighbour") of three frames (at 1/6, 1/2, 5/6 of
its length); two clips are near-duplicates when the mean Hamming distance of their three hashes
is at most ``max_distance`` bits (default 4 of 64). The hash survives re-encoding, resizing and
small colour changes; flat (uniform) frames all hash alike. Measured on bikes.mp4: a copy at half
size re-encoded at crf 30 is 0-1.7 bits from the original, different scenes 25-36 bits apart,
and the two halves of one scene 6-31 bits apart (a slow scene's halves can come close).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "FLOW_METHODS",
    "MOTION_METHODS",
    "NearDuplicateIndex",
    "clip_hash",
    "dhash",
    "hash_distance",
    "lucas_kanade_flow",
    "motion_sample_indices",
    "motion_score",
    "optical_flow",
    "passes_min_size",
    "to_grey",
]

FLOW_METHODS = ("lk", "tvl1", "ilk")
MOTION_METHODS = (*FLOW_METHODS, "diff")
#: The reference samples frames for its motion score at 2 fps.
MOTION_SAMPLE_FPS = 2.0
#: Short side of the grey frames the flow is computed on.
ANALYSIS_SHORT_SIDE = 128

# ================================================================================================
#                                        Minimum size
# ================================================================================================


def passes_min_size(width: int, height: int, min_size: int) -> bool:
    """True when the shorter side is at least ``min_size`` pixels.

    Args:
        width: frame width.
        height: frame height.
        min_size: smallest accepted short side (e.g. 64; the reference filters by resolution).
    """
    if min_size < 0:
        raise ValueError(f"min_size must be >= 0 (got {min_size})")
    return min(width, height) >= min_size


# ================================================================================================
#                                        Optical flow
# ================================================================================================


def to_grey(frames: np.ndarray) -> np.ndarray:
    """RGB frames -> luma in ``[0, 1]`` (ITU-R BT.601 weights, as OpenCV's ``BGR2GRAY``).

    Args:
        frames: ``(..., H, W, 3)`` uint8, or float in [0, 1].

    Returns:
        float32 ``(..., H, W)`` in [0, 1].
    """
    frames = np.asarray(frames)
    if frames.shape[-1] != 3:
        raise ValueError(f"frames must end in 3 RGB channels, got shape {frames.shape}")
    scale = 1.0 / 255.0 if frames.dtype == np.uint8 else 1.0
    weights = np.asarray([0.299, 0.587, 0.114], dtype=np.float32) * np.float32(scale)
    return frames.astype(np.float32) @ weights


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2r+1)^2`` window, edges replicated. ``(N, C, H, W)`` -> same shape."""
    k = 2 * radius + 1
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    rows = F.avg_pool2d(padded, (1, k), stride=1)  # separable: 2k instead of k^2 adds
    return F.avg_pool2d(rows, (k, 1), stride=1)


@contextmanager
def _single_thread():
    """Run torch on one thread: the flow's ops are too small for threads to pay off, and on a
    busy machine their spin-waits make them 100x slower. The previous count is restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences along x and y, edges replicated. ``(N, 1, H, W)`` each."""
    px = F.pad(x, (1, 1, 0, 0), mode="replicate")
    py = F.pad(x, (0, 0, 1, 1), mode="replicate")
    return (px[..., 2:] - px[..., :-2]) / 2, (py[..., 2:, :] - py[..., :-2, :]) / 2


def _warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at ``x + flow``: ``(N, 1, H, W)``, flow ``(N, 2, H, W)`` in pixels."""
    _, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=image.dtype), torch.arange(w, dtype=image.dtype), indexing="ij"
    )
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0  # (N, H, W) in [-1, 1]
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)  # (N, H, W, 2)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


@torch.no_grad()
def lucas_kanade_flow(
    previous: np.ndarray | torch.Tensor,
    following: np.ndarray | torch.Tensor,
    radius: int = 3,
    iterations: int = 5,
    min_level_size: int = 16,
    regularization: float = 1e-5,
    max_step: float = 1.0,
    spread_radius: int = 4,
) -> torch.Tensor:
    """Dense optical flow by pyramidal, iterative Lucas-Kanade (torch, batched).

    At every pyramid level (2x box-average steps while the short side stays
    ``>= min_level_size``), coarse to fine: warp ``following`` by the current flow, solve the
    2x2 Lucas-Kanade system over ``(2 * radius + 1)^2`` windows for the update (Tikhonov
    ``regularization`` on the diagonal keeps flat windows finite), clamp it to ``max_step``
    pixels, then average it over ``(2 * spread_radius + 1)^2`` windows weighted by each window's
    smaller structure-tensor eigenvalue, so textured pixels speak for the flat ones around them.

    Args:
        previous: ``(H, W)`` or ``(N, H, W)`` grey frames in [0, 1].
        following: the next frames, same shape.
        radius: window radius (3 -> 7x7).
        iterations: warping iterations per level (5).
        min_level_size: coarsest level keeps a short side >= this (16).
        regularization: added to the structure tensor's diagonal (intensities in [0, 1]).
        max_step: largest update per iteration, in pixels of that level (1).
        spread_radius: radius of the confidence-weighted average of updates (4; 0 disables).

    Returns:
        float32 ``(N, 2, H, W)``: ``[u, v]``, the displacement in pixels (x right, y down) that
        takes a pixel of ``previous`` to its place in ``following``.
    """
    a = torch.as_tensor(np.asarray(previous, dtype=np.float32))
    b = torch.as_tensor(np.asarray(following, dtype=np.float32))
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(
            f"previous and following must share a shape (H, W) or (N, H, W) "
            f"(got {tuple(a.shape)} and {tuple(b.shape)})"
        )
    if a.ndim == 2:
        a, b = a[None], b[None]
    with _single_thread():
        return _lucas_kanade(a, b, radius, iterations, min_level_size, regularization, max_step,
                             spread_radius)


def _lucas_kanade(a, b, radius, iterations, min_level_size, regularization, max_step,
                  spread_radius) -> torch.Tensor:
    """The body of :func:`lucas_kanade_flow` on ``(N, H, W)`` tensors."""
    pyramid = [(a[:, None], b[:, None])]  # (N, 1, H, W) each
    while min(pyramid[-1][0].shape[-2:]) // 2 >= min_level_size:
        la, lb = pyramid[-1]
        pyramid.append((F.avg_pool2d(la, 2), F.avg_pool2d(lb, 2)))
    flow = torch.zeros(a.shape[0], 2, *pyramid[-1][0].shape[-2:])  # (N, 2, h, w)
    for level_a, level_b in reversed(pyramid):
        if flow.shape[-2:] != level_a.shape[-2:]:  # next finer level: upsample, double
            flow = F.interpolate(flow, size=level_a.shape[-2:], mode="bilinear",
                                 align_corners=False) * 2.0
        for _ in range(iterations):
            warped = _warp(level_b, flow)  # (N, 1, h, w)
            ix, iy = _gradients((level_a + warped) / 2)  # symmetric gradients
            it = warped - level_a
            sxx = _box(ix * ix, radius) + regularization
            syy = _box(iy * iy, radius) + regularization
            sxy = _box(ix * iy, radius)
            sxt, syt = _box(ix * it, radius), _box(iy * it, radius)
            det = sxx * syy - sxy * sxy
            du = -(syy * sxt - sxy * syt) / det
            dv = -(sxx * syt - sxy * sxt) / det
            step = torch.cat([du, dv], dim=1).clamp(-max_step, max_step)  # (N, 2, h, w)
            if spread_radius > 0:
                disc = torch.sqrt(((sxx - syy) ** 2 + 4 * sxy * sxy).clamp_min(0))
                confidence = (sxx + syy - disc) / 2  # smaller eigenvalue, (N, 1, h, w)
                step = _box(confidence * step, spread_radius) / (
                    _box(confidence, spread_radius) + 1e-12
                )
            flow = flow + step
    return flow


def optical_flow(
    previous: np.ndarray, following: np.ndarray, method: str = "lk"
) -> np.ndarray:
    """Dense optical flow between grey frames by one of :data:`FLOW_METHODS`.

    Args:
        previous: ``(H, W)`` or ``(N, H, W)`` grey frames in [0, 1].
        following: same shape.
        method: ``"lk"`` (torch Lucas-Kanade, default), ``"tvl1"`` or ``"ilk"`` (scikit-image).

    Returns:
        float32 ``(N, 2, H, W)`` (``[u, v]`` in pixels; ``N = 1`` for 2D inputs).
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method {method!r}; use one of {FLOW_METHODS}")
    if method == "lk":
        return lucas_kanade_flow(previous, following).numpy()
    from skimage.registration import optical_flow_ilk, optical_flow_tvl1

    estimate = optical_flow_tvl1 if method == "tvl1" else optical_flow_ilk
    a = np.asarray(previous, dtype=np.float32)
    b = np.asarray(following, dtype=np.float32)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(f"previous and following must share a shape (got {a.shape}, {b.shape})")
    a, b = (a[None], b[None]) if a.ndim == 2 else (a, b)
    flows = [estimate(x, y) for x, y in zip(a, b)]  # each (2, H, W) as (v, u): rows first
    return np.stack([np.stack([f[1], f[0]]) for f in flows]).astype(np.float32)


# ================================================================================================
#                                        Motion score
# ================================================================================================


def motion_sample_indices(num_frames: int, fps: float, sample_fps: float = MOTION_SAMPLE_FPS
                          ) -> list[int]:
    """Frames the motion score compares, as the reference samples them.

    The interval is ``int(fps / min(max(sample_fps, 1), fps))`` frames (12 at 25 fps, 2 fps),
    shortened to ``num_frames - 1`` for a clip shorter than one interval, so any clip of two or
    more frames has at least one pair.

    Args:
        num_frames: frames in the clip.
        fps: the clip's frame rate.
        sample_fps: sampling rate (2).

    Returns:
        ``[0, k, 2k, ...]`` below ``num_frames``.
    """
    if num_frames < 1 or not fps > 0 or not sample_fps > 0:
        raise ValueError(
            f"need num_frames >= 1, fps > 0 and sample_fps > 0 (got {num_frames}, {fps}, "
            f"{sample_fps})"
        )
    interval = int(fps / min(max(sample_fps, 1.0), fps))
    interval = max(1, min(interval, num_frames - 1))
    return list(range(0, num_frames, interval))


def _shrink(grey: np.ndarray, short_side: int) -> np.ndarray:
    """``(N, H, W)`` -> ``(N, h, w)``, short side ``short_side`` (antialiased, never enlarges)."""
    h, w = grey.shape[-2:]
    if min(h, w) <= short_side:
        return grey
    scale = short_side / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = torch.from_numpy(np.ascontiguousarray(grey))[:, None]  # (N, 1, H, W)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x[:, 0].numpy()


def motion_score(
    frames: np.ndarray,
    fps: float,
    method: str = "lk",
    sample_fps: float = MOTION_SAMPLE_FPS,
    analysis_short_side: int = ANALYSIS_SHORT_SIDE,
    source_short_side: int | None = None,
) -> float:
    """Motion of a clip: mean optical-flow magnitude between frames sampled at ~2 fps.

    Args:
        frames: ``(F, H, W, 3)`` uint8, or float in [0, 1] (one scene: flow across a cut is
            meaningless).
        fps: the clip's frame rate (sets the sampling interval).
        method: ``"lk"``, ``"tvl1"``, ``"ilk"`` (flow, pixels) or ``"diff"`` (grey levels 0..255).
        sample_fps: sampling rate of the compared frames (2, the reference's).
        analysis_short_side: the flow runs on frames shrunk to this short side (128).
        source_short_side: short side of the *source* video the clip was cut from, when
            ``frames`` were resized; flow magnitudes are reported in its pixels (default: the
            short side of ``frames``).

    Returns:
        The score: source pixels per sampling interval for flow methods (the reference keeps
        ``[2, 20]``), mean absolute 8-bit difference for ``"diff"``; 0.0 for a single frame.
    """
    if method not in MOTION_METHODS:
        raise ValueError(f"unknown motion method {method!r}; use one of {MOTION_METHODS}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (F, H, W, 3), got {frames.shape}")
    if frames.shape[0] < 2:
        return 0.0
    picked = motion_sample_indices(frames.shape[0], fps, sample_fps)
    grey = to_grey(frames[picked])  # (S, H, W) in [0, 1]
    if method == "diff":
        return float(np.abs(np.diff(grey, axis=0)).mean() * 255.0)
    source_short = source_short_side or min(grey.shape[-2:])
    small = _shrink(grey, analysis_short_side)  # (S, h, w)
    scale = source_short / min(small.shape[-2:])
    flow = optical_flow(small[:-1], small[1:], method)  # (S - 1, 2, h, w)
    magnitude = np.sqrt((flow.astype(np.float64) ** 2).sum(axis=1))  # (S - 1, h, w)
    return float(magnitude.mean() * scale)


# ================================================================================================
#                                       Near-duplicates
# ================================================================================================


def dhash(frame: np.ndarray) -> int:
    """64-bit difference hash of one frame.

    The grey frame is box-resized to 9x8; bit ``8 * row + col`` is set when pixel ``col`` is
    brighter than pixel ``col + 1`` of that row.

    Args:
        frame: ``(H, W, 3)`` uint8 or float in [0, 1], or a grey ``(H, W)`` in [0, 1].

    Returns:
        The hash as a Python int in ``[0, 2**64)``.
    """
    from PIL import Image

    frame = np.asarray(frame)
    grey = to_grey(frame) if frame.ndim == 3 else frame.astype(np.float32)
    if grey.ndim != 2:
        raise ValueError(f"dhash takes one frame (H, W, 3) or (H, W), got shape {frame.shape}")
    thumb = np.asarray(Image.fromarray(grey, mode="F").resize((9, 8), Image.Resampling.BOX))
    bits = (thumb[:, :-1] > thumb[:, 1:]).reshape(-1)  # (64,)
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def clip_hash(frames: np.ndarray, num_hashes: int = 3) -> tuple[int, ...]:
    """dHashes of ``num_hashes`` frames spread over the clip (centres of equal thirds for 3).

    Args:
        frames: ``(F, H, W, 3)`` uint8 or float in [0, 1].
        num_hashes: frames hashed (3: at 1/6, 1/2 and 5/6 of the clip).

    Returns:
        ``num_hashes`` 64-bit ints.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape (F, H, W, 3) with F >= 1, got {frames.shape}")
    if num_hashes < 1:
        raise ValueError(f"num_hashes must be >= 1 (got {num_hashes})")
    n = frames.shape[0]
    picked = [min(n - 1, int((2 * k + 1) * n / (2 * num_hashes))) for k in range(num_hashes)]
    return tuple(dhash(frames[i]) for i in picked)


def hash_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """Mean Hamming distance (bits, 0..64) between two clip hashes of equal length."""
    if len(a) != len(b) or not a:
        raise ValueError(
            f"clip hashes must be non-empty and of equal length ({len(a)} vs {len(b)})")
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b)) / len(a)


class NearDuplicateIndex:
    """Clip hashes seen so far; answers "is this clip a near-duplicate of one of them?".

    A linear scan in numpy (XOR + popcount over all stored hashes): about 10 ms per query at
    100k clips.

    Args:
        max_distance: mean Hamming distance (bits of 64) at or below which two clips are
            near-duplicates (4).
    """

    def __init__(self, max_distance: float = 4.0) -> None:
        if max_distance < 0:
            raise ValueError(f"max_distance must be >= 0 (got {max_distance})")
        self.max_distance = float(max_distance)
        self.keys: list[Hashable] = []
        self._rows: list[tuple[int, ...]] = []
        self._array: np.ndarray | None = None  # (N, K) uint64, rebuilt lazily

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: Hashable, hashes: Sequence[int]) -> None:
        """Store one clip's hashes under ``key`` (e.g. its file path)."""
        if self._rows and len(hashes) != len(self._rows[0]):
            raise ValueError(
                f"every clip hash needs {len(self._rows[0])} values (got {len(hashes)})")
        self.keys.append(key)
        self._rows.append(tuple(int(h) for h in hashes))
        self._array = None

    def nearest(self, hashes: Sequence[int]) -> tuple[Hashable, float] | None:
        """``(key, distance)`` of the closest stored clip, or None when the index is empty."""
        if not self._rows:
            return None
        if self._array is None:
            self._array = np.asarray(self._rows, dtype=np.uint64)  # (N, K)
        query = np.asarray([int(h) for h in hashes], dtype=np.uint64)  # (K,)
        if query.shape != self._array.shape[1:]:
            raise ValueError(f"clip hash needs {self._array.shape[1]} values (got {len(query)})")
        distance = np.bitwise_count(self._array ^ query).mean(axis=1)  # (N,)
        best = int(distance.argmin())
        return self.keys[best], float(distance[best])

    def find(self, hashes: Sequence[int]) -> tuple[Hashable, float] | None:
        """``(key, distance)`` of the closest stored clip within ``max_distance``, else None."""
        hit = self.nearest(hashes)
        if hit is None or hit[1] > self.max_distance + 1e-9:
            return None
        return hit
