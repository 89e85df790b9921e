"""Pixel metrics of generated videos: PSNR, temporal smoothness and long-video seam continuity.

Every function reads the kit's video convention, float ``(F, H, W, 3)`` in [0, 1] (images
``(H, W, 3)``), and returns plain Python floats, so results go straight into a metrics JSON.

- **PSNR** ``10 log10(range^2 / MSE)`` over every pixel and channel (the definition scikit-image's
  ``peak_signal_noise_ratio`` uses). Identical inputs would give ``+inf``, which JSON cannot hold
  and which would swamp any mean, so the value is **capped at** :data:`PSNR_CAP_DB` (100 dB, an
  MSE of 1e-10 at range 1: far beyond float32 rounding of 8-bit content).
- **Temporal smoothness**, warping-free (no optical flow): the mean absolute frame-to-frame
  difference ``mean |x[t+1] - x[t]|`` (how much the video changes per frame; 0 = frozen) and the
  mean absolute second difference ``mean |x[t+1] - 2 x[t] + x[t-1]|`` (jitter: change of the
  change, which flicker and stutter raise and steady motion keeps low). Either is only meaningful
  next to a reference: the benchmark divides a generated clip's value by the value of the
  ground-truth toy clip of the same caption (ratio 1 = as much change as the real motion, above 1
  = flicker, below 1 = frozen). Toy clips are flat-coloured, so absolute values are small.
- **Seam continuity** for long videos made of overlapping segments
  (:mod:`cogfun.pipelines.long_video`): the mean frame-to-frame difference across segment seams
  divided by the mean difference inside segments. 1 = seams are invisible; a jump at a seam
  raises it. A seam is the cross-fade window before the first frame a segment adds (see
  :func:`long_video_seams`).

Reference for the benchmark these serve: CogVideoX-Fun (VideoX-Fun) reports no such numbers; the
definitions follow common video-generation practice (PSNR as in scikit-image; frame-difference
smoothness as a flow-free stand-in for warping error).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: PSNR returned for identical inputs (and any MSE below ``range^2 * 1e-10``), in dB.
PSNR_CAP_DB = 100.0
#: A mean absolute change below this counts as none (float rounding of a static clip), so ratios
#: over it are ``nan`` rather than huge.
STATIC_EPS = 1e-9


def _pair(a, b, name: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{name} needs two arrays of one shape (got {a.shape} and {b.shape}); "
                         "render or generate the reference at the same size")
    return a, b


def psnr(a, b, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio between two images or videos of one shape, in dB.

    Args:
        a, b: arrays of one shape (any, e.g. ``(H, W, 3)`` or ``(F, H, W, 3)``) in
            ``[0, data_range]``.
        data_range: the peak value (1.0 for the kit's float frames, 255 for uint8).

    Returns:
        ``10 log10(data_range^2 / mean((a - b)^2))``, capped at :data:`PSNR_CAP_DB` (identical
        inputs give exactly the cap, never ``inf``).
    """
    a, b = _pair(a, b, "psnr")
    mse = float(np.mean((a - b) ** 2))
    if mse <= data_range**2 * 10 ** (-PSNR_CAP_DB / 10):
        return PSNR_CAP_DB
    return float(10 * np.log10(data_range**2 / mse))


def psnr_per_frame(video, reference, data_range: float = 1.0) -> list[float]:
    """PSNR of each frame, ``[psnr(video[t], reference[t]) for t]``.

    Args:
        video, reference: ``(F, H, W, 3)`` in ``[0, data_range]``.
        data_range: the peak value.
    """
    video, reference = _pair(video, reference, "psnr_per_frame")
    return [psnr(v, r, data_range) for v, r in zip(video, reference)]


def first_frame_psnr(video, image, data_range: float = 1.0) -> float:
    """PSNR of a video's first frame against the start image it was conditioned on.

    Args:
        video: ``(F, H, W, 3)``; image: ``(H, W, 3)``, both in ``[0, data_range]``.
    """
    return psnr(np.asarray(video)[0], image, data_range)


def last_frame_psnr(video, image, data_range: float = 1.0) -> float:
    """PSNR of a video's last frame against the end image it was conditioned on.

    Args:
        video: ``(F, H, W, 3)``; image: ``(H, W, 3)``, both in ``[0, data_range]``.
    """
    return psnr(np.asarray(video)[-1], image, data_range)


def _check_video(frames, name: str, min_frames: int) -> np.ndarray:
    frames = np.asarray(frames, np.float64)
    if frames.ndim != 4 or frames.shape[0] < min_frames:
        raise ValueError(f"{name} needs a video (F, H, W, C) with at least {min_frames} frames "
                         f"(got shape {frames.shape})")
    return frames


def frame_differences(frames) -> np.ndarray:
    """Mean absolute difference of each consecutive frame pair.

    Args:
        frames: ``(F, H, W, C)``, F >= 2.

    Returns:
        float64 ``(F - 1,)``: entry ``t`` is ``mean |frames[t + 1] - frames[t]|``.
    """
    frames = _check_video(frames, "frame_differences", 2)
    return np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))


def temporal_difference(frames) -> float:
    """Mean absolute frame-to-frame difference ``mean |x[t+1] - x[t]|`` (0 = a frozen video).

    Args:
        frames: ``(F, H, W, C)`` in [0, 1], F >= 2.
    """
    return float(frame_differences(frames).mean())


def temporal_jitter(frames) -> float:
    """Mean absolute second difference ``mean |x[t+1] - 2 x[t] + x[t-1]|`` (flicker, stutter).

    A video whose pixels change linearly in time scores 0; uniform motion of a sharp object does
    not (edges switch on and off), so compare against a reference clip rather than 0.

    Args:
        frames: ``(F, H, W, C)`` in [0, 1], F >= 3.
    """
    frames = _check_video(frames, "temporal_jitter", 3)
    return float(np.abs(np.diff(frames, n=2, axis=0)).mean())


def temporal_smoothness(frames, reference=None) -> dict[str, float]:
    """Warping-free smoothness of a video, optionally relative to a reference clip.

    Args:
        frames: ``(F, H, W, C)`` in [0, 1], F >= 3.
        reference: optional ``(F', H', W', C)`` clip showing the motion that was asked for (the
            ground-truth toy clip of the same caption); sizes may differ, values are means.

    Returns:
        ``{"temporal_diff", "jitter"}`` and, with a reference, ``"temporal_diff_ref"``,
        ``"jitter_ref"``, ``"temporal_diff_ratio"`` and ``"jitter_ratio"`` (generated over
        reference; ``nan`` when the reference does not change, e.g. a still clip: below :data:`STATIC_EPS`).
    """
    out = {"temporal_diff": temporal_difference(frames), "jitter": temporal_jitter(frames)}
    if reference is not None:
        out["temporal_diff_ref"] = temporal_difference(reference)
        out["jitter_ref"] = temporal_jitter(reference)
        for key in ("temporal_diff", "jitter"):
            ref = out[f"{key}_ref"]
            out[f"{key}_ratio"] = out[key] / ref if ref > STATIC_EPS else float("nan")
    return out


# ------------------------------------------------------------------------------------------------
# Long videos
# ------------------------------------------------------------------------------------------------


def long_video_seams(num_frames: int, segment_frames: int = 25, overlap: int = 4) -> list[tuple[int, int]]:
    """Where the segments of :func:`cogfun.pipelines.generate_long_video` meet.

    Segment ``k >= 1`` starts adding its own frames at frame ``b`` (the length of the video so
    far); the ``ov`` frames before ``b`` are a cross-fade from the previous segment to the new
    one (``prev * (1 - i / ov) + new * (i / ov)``, frame ``b - ov`` is still exactly the previous
    segment). So a seam is ``(b, ov)``: the frame pairs ``(t - 1, t)`` for ``t`` in
    ``[b - ov + 1, b]`` carry the change from one segment to the next.

    Args:
        num_frames, segment_frames, overlap: as given to ``generate_long_video``.

    Returns:
        ``[(boundary, width), ...]`` one per seam (empty for a single segment).
    """
    from ..pipelines.long_video import plan_segments

    plan = plan_segments(num_frames, segment_frames, overlap)
    seams, done = [], plan[0][0]
    for length, ov in plan[1:]:
        seams.append((done, ov))
        done += length - ov
    return seams


def seam_continuity(frames, seams: Sequence[int | tuple[int, int]]) -> dict[str, float]:
    """How visible segment seams are: frame differences across seams vs inside segments.

    Args:
        frames: ``(F, H, W, C)`` in [0, 1].
        seams: seam boundaries ``b`` (first frame of new content; the pair ``(b - 1, b)`` is the
            seam, a hard cut) or ``(b, width)`` tuples (the ``width`` pairs ending at ``b`` form
            the seam, a cross-fade; see :func:`long_video_seams`).

    Returns:
        ``{"across", "within", "ratio"}``: mean absolute frame difference over seam pairs, over
        all other pairs, and ``across / within`` (1 = invisible seams, larger = a jump;
        ``nan`` when nothing changes inside segments). With no seams, ``across`` and ``ratio`` are
        ``nan``.
    """
    diffs = frame_differences(frames)  # (F - 1,): pair (t - 1, t) is entry t - 1
    num_frames = diffs.shape[0] + 1
    at_seam = np.zeros(diffs.shape[0], bool)
    for seam in seams:
        boundary, width = (seam, 1) if np.isscalar(seam) else (int(seam[0]), int(seam[1]))
        if not 1 <= boundary < num_frames or width < 1:
            raise ValueError(f"seam {seam!r} must have 1 <= boundary < num_frames ({num_frames}) and "
                             "width >= 1; build seams with long_video_seams(num_frames, segment, overlap)")
        at_seam[max(boundary - width, 0):boundary] = True
    across = float(diffs[at_seam].mean()) if at_seam.any() else float("nan")
    within = float(diffs[~at_seam].mean()) if (~at_seam).any() else float("nan")
    ratio = across / within if within > STATIC_EPS else float("nan")
    return {"across": across, "within": within, "ratio": ratio}
