"""A classical (no learning) detector that reads colour, shape and motion off toy "shape" clips.

It turns generated toy videos into caption accuracy: did the model draw a *red* *circle* moving
*left*? (The toy world is :mod:`cogfun.data.toy`.) Steps, per clip:

1. **Background.** ``"border"``: the median colour of each frame's border (plain backgrounds);
   ``"temporal"``: the per-pixel median over frames (any static background, e.g. a photo, as long
   as the object moves); ``"auto"`` picks border when the border is near-uniform.
2. **Object.** Pixels farther than ``contrast`` from the background; the largest 8-connected
   component per frame (so isolated noise pixels do not count).
3. **Colour.** Median RGB of the component's high-contrast half, snapped to the nearest
   :data:`~cogfun.data.toy.PALETTE` colour.
4. **Coverage.** A soft mask ``alpha = <p - bg, c - bg> / |c - bg|^2`` (the projection of each
   pixel on the background->object colour line): unbiased under zero-mean noise, and sub-pixel
   accurate at anti-aliased edges.
5. **Shape.** Matched templates rather than a bounding-box fill ratio: for each candidate shape
   the toy renderer draws it with the observed area and centroid (a triangle's centroid sits r/3
   below its box centre) and the shape with the smallest squared error wins. Fill ratios (circle
   0.785, square 1, triangle 0.5, cross 0.556) blur at small sizes and under noise; the templates
   use all pixels. The fill ratio is still returned as a diagnostic.
6. **Motion.** A least-squares line through the per-frame centroids; its displacement over the
   clip, if shorter than ``still_threshold * min(H, W)``, is ``"still"``, otherwise its dominant
   axis gives left/right/up/down (image y points down, so negative dy is "up").

Measured on rendered clips (tests/test_toy_detector.py): 120/120 colour x shape x direction
combinations right on plain backgrounds at 16x16 to 96x96, also with Gaussian noise sigma 0.05,
and with blur sigma 1 + 30 % desaturation + noise at 64x64. Limits, by design: one object per
clip; objects over *photos* are best effort (the temporal median cannot see the photo under a
large, slow object: about 0.75 - 0.9 of clips fully right), and a *still* object over a photo is
not found at all. Pans are not this detector's business.

Frames follow the kit's convention: float ``(F, H, W, 3)`` in [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cogfun.data.toy import COLOURS, DIRECTIONS, PALETTE, SHAPES, ToyClipSpec, shape_alpha

# Area of each shape as a multiple of radius^2 (radius = half the bounding-box side).
_AREA_PER_R2 = {"circle": np.pi, "square": 4.0, "triangle": 2.0, "cross": 20.0 / 9.0}
_PALETTE_RGB = np.array([PALETTE[c] for c in COLOURS], np.float32)  # (6, 3)
_EIGHT_CONNECTED = np.ones((3, 3), bool)


def _estimate_background(frames: np.ndarray, mode: str) -> tuple[np.ndarray, str]:
    """Background ``(F, 1, 1, 3)`` (border) or ``(1, H, W, 3)`` (temporal) and the mode used."""
    num_frames, height, width, _ = frames.shape
    b = max(1, min(height, width) // 32)  # border thickness
    border = np.concatenate([
        frames[:, :b].reshape(num_frames, -1, 3), frames[:, -b:].reshape(num_frames, -1, 3),
        frames[:, :, :b].reshape(num_frames, -1, 3), frames[:, :, -b:].reshape(num_frames, -1, 3),
    ], axis=1)  # (F, P, 3)
    if mode == "auto":
        spread = np.median(np.abs(border - np.median(border, axis=1, keepdims=True)))
        mode = "border" if spread < 0.08 or num_frames < 3 else "temporal"
    if mode == "border":
        return np.median(border, axis=1)[:, None, None, :], mode  # (F, 1, 1, 3)
    if mode == "temporal":
        return np.median(frames, axis=0, keepdims=True), mode  # (1, H, W, 3)
    raise ValueError(f"background must be 'auto', 'border' or 'temporal' (got {mode!r})")


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a ``(H, W)`` bool mask (empty stays empty)."""
    labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(np.argmax(sizes)))


def _window(component: np.ndarray, pad: int) -> tuple[slice, slice]:
    ys, xs = np.nonzero(component)
    h, w = component.shape
    return (slice(max(ys.min() - pad, 0), min(ys.max() + pad + 1, h)),
            slice(max(xs.min() - pad, 0), min(xs.max() + pad + 1, w)))


def detect_toy_object(
    frames: np.ndarray,
    background: str = "auto",
    contrast: float = 0.25,
    still_threshold: float = 0.05,
    max_shape_frames: int = 8,
) -> dict:
    """Estimate the colour, shape and motion direction of the one object in a toy shape clip.

    Args:
        frames: ``(F, H, W, 3)`` float in [0, 1] (generated or rendered); values are clipped.
        background: ``"auto"``, ``"border"`` (plain background) or ``"temporal"`` (per-pixel
            median over frames; static photo backgrounds with a moving object).
        contrast: minimum RGB distance from the background for a pixel to seed the object mask.
        still_threshold: displacements over the clip shorter than this fraction of ``min(H, W)``
            are ``"still"``.
        max_shape_frames: frames (evenly spaced) used for template matching.

    Returns:
        dict with ``found`` (bool: an object was seen in at least one frame), ``colour``,
        ``shape``, ``direction`` (names from the toy world, or ``None`` when not found),
        ``displacement`` ``(dx, dy)`` in pixels over the clip (x right, y down), ``centroids``
        ``(F, 2)`` float (NaN where no object), ``areas`` ``(F,)`` the object's soft area in
        pixels per frame (NaN where none), ``rgb`` the measured object colour ``(3,)``,
        ``shape_errors`` ``{shape: normalised squared error}``, ``fill_ratio`` (area over
        bounding box, diagnostic) and ``background`` (the mode used).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3) in [0, 1], got shape {frames.shape}; "
                         "convert a (F, C, H, W) tensor with cogfun.data.video_io.tensor_to_frames")
    if frames.dtype == np.uint8:
        raise ValueError("frames must be float in [0, 1], got uint8; use "
                         "cogfun.data.video_io.uint8_to_frames")
    frames = np.clip(frames.astype(np.float32), 0.0, 1.0)
    num_frames, height, width, _ = frames.shape
    not_found = dict(found=False, colour=None, shape=None, direction=None,
                     displacement=(float("nan"), float("nan")),
                     centroids=np.full((num_frames, 2), np.nan), areas=np.full(num_frames, np.nan),
                     rgb=None, shape_errors={},
                     fill_ratio=float("nan"), background=background)

    # 1. Background and per-pixel distance from it.
    bg, mode = _estimate_background(frames, background)
    not_found["background"] = mode
    diff = frames - bg  # (F, H, W, 3)
    dist = np.linalg.norm(diff, axis=-1)  # (F, H, W)

    # 2. The object: the largest connected blob of high-contrast pixels, per frame.
    components = [_largest_component(d > contrast) for d in dist]  # F x (H, W)
    seen = [t for t, c in enumerate(components) if c.sum() >= 2]
    if not seen:
        return not_found

    # 3. Colour: the high-contrast half of the object pixels (away from anti-aliased edges).
    core = []
    for t in seen:
        d = dist[t][components[t]]
        core.append(frames[t][components[t]][d >= np.median(d)])
    rgb = np.median(np.concatenate(core), axis=0)  # (3,)
    colour = COLOURS[int(np.argmin(np.linalg.norm(_PALETTE_RGB - rgb, axis=1)))]

    # 4. Soft coverage alpha in a window around each frame's object; centroids.
    centroids = np.full((num_frames, 2), np.nan)
    areas = np.full(num_frames, np.nan)
    alphas: dict[int, tuple[tuple[slice, slice], np.ndarray]] = {}
    fills = []
    for t in seen:
        window = _window(components[t], pad=2)
        bg_t = np.broadcast_to(bg[t if bg.shape[0] > 1 else 0], (height, width, 3))[window]
        towards = rgb - bg_t  # (h, w, 3) background -> object colour
        # floor: on a photo, pixels close to the object's colour would divide by ~0
        norm2 = np.maximum((towards**2).sum(-1), 0.05)  # (h, w)
        a = ((frames[t][window] - bg_t) * towards).sum(-1) / norm2  # (h, w) coverage
        area = a.sum()
        if area <= 1e-3:
            continue
        ys = np.arange(window[0].start, window[0].stop) + 0.5  # pixel centres
        xs = np.arange(window[1].start, window[1].stop) + 0.5
        centroids[t] = ((a.sum(0) * xs).sum() / area, (a.sum(1) * ys).sum() / area)
        areas[t] = area
        alphas[t] = (window, a)
        solid = a > 0.5
        if solid.any():
            rows, cols = np.nonzero(solid.any(1))[0], np.nonzero(solid.any(0))[0]
            box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
            fills.append(solid.sum() / box)
    if not alphas:
        return not_found

    # 5. Shape by matched templates of equal area and centroid.
    frames_used = sorted(alphas)
    if len(frames_used) > max_shape_frames:
        pick = np.linspace(0, len(frames_used) - 1, max_shape_frames).round().astype(int)
        frames_used = [frames_used[i] for i in pick]
    errors = {s: 0.0 for s in SHAPES}
    total = 0.0
    for t in frames_used:
        window, a = alphas[t]
        area = a.sum()
        cx, cy = centroids[t]
        observed = np.zeros((height, width), np.float32)
        observed[window] = a
        total += float((observed**2).sum())
        for s in SHAPES:
            radius = float(np.sqrt(area / _AREA_PER_R2[s]))
            centre_y = cy - radius / 3 if s == "triangle" else cy  # centroid vs box centre
            template = shape_alpha(s, height, width, cx, centre_y, radius)
            errors[s] += float(((observed - template) ** 2).sum())
    shape_errors = {s: e / max(total, 1e-9) for s, e in errors.items()}
    shape = min(shape_errors, key=shape_errors.get)

    # 6. Motion: least-squares line through the centroids.
    valid = np.nonzero(~np.isnan(centroids[:, 0]))[0]
    if len(valid) >= 2:
        t = valid.astype(np.float64)
        slope_x = np.polyfit(t, centroids[valid, 0], 1)[0]
        slope_y = np.polyfit(t, centroids[valid, 1], 1)[0]
        dx, dy = slope_x * (num_frames - 1), slope_y * (num_frames - 1)
    else:
        dx, dy = 0.0, 0.0  # one frame: no motion can be seen
    if np.hypot(dx, dy) < still_threshold * min(height, width):
        direction = "still"
    elif abs(dx) >= abs(dy):
        direction = "right" if dx > 0 else "left"
    else:
        direction = "down" if dy > 0 else "up"

    return dict(found=True, colour=colour, shape=shape, direction=direction,
                displacement=(float(dx), float(dy)), centroids=centroids, areas=areas,
                rgb=rgb.astype(np.float32), shape_errors=shape_errors,
                fill_ratio=float(np.median(fills)) if fills else float("nan"), background=mode)


def _expected(spec) -> dict:
    """Expected colour/shape/direction from a spec, its dict, or a caption string."""
    if isinstance(spec, str):
        words = spec.split()

        def pick(choices, name):
            found = [w for w in words if w in choices]
            if len(found) != 1:
                raise ValueError(f"caption {spec!r} must name exactly one {name} from {choices}")
            return found[0]

        if "pan" in words or "shot" in words:
            raise ValueError(f"caption {spec!r} describes a pan; the detector reads shape clips")
        return dict(colour=pick(COLOURS, "colour"), shape=pick(SHAPES, "shape"),
                    direction=pick(DIRECTIONS, "direction"))
    if isinstance(spec, dict):
        spec = ToyClipSpec.from_dict(spec)
    if not isinstance(spec, ToyClipSpec):
        raise ValueError(f"spec must be a ToyClipSpec, its dict, or a caption (got "
                         f"{type(spec).__name__})")
    if spec.kind != "shape":
        raise ValueError(f"the detector reads 'shape' clips, got kind={spec.kind!r}; score pans "
                         "with a motion metric instead")
    return dict(colour=spec.colour, shape=spec.shape, direction=spec.direction)


def score_against_caption(frames: np.ndarray, spec, found: dict | None = None, **detector_kwargs) -> dict:
    """Check a (generated) shape clip against what its caption asked for.

    Args:
        frames: ``(F, H, W, 3)`` float in [0, 1].
        spec: the :class:`~cogfun.data.toy.ToyClipSpec` (or its ``to_dict()``, as the toy dataset
            returns it, or the caption text itself) of a ``"shape"`` clip.
        found: :func:`detect_toy_object` of ``frames`` when already computed (then ``detector_kwargs`` are unused).
        **detector_kwargs: forwarded to :func:`detect_toy_object`.

    Returns:
        dict of bools ``colour_correct``, ``shape_correct``, ``direction_correct``,
        ``all_correct`` (all three), ``present_correct`` (:func:`object_present`: one object of a
        sensible size in most frames) and ``last_present_correct`` (the same object, in the
        asked colour, still in the last frame); all ``False`` when no object is found.
    """
    expected = _expected(spec)
    found = detect_toy_object(frames, **detector_kwargs) if found is None else found
    out = {f"{k}_correct": bool(found["found"] and found[k] == v) for k, v in expected.items()}
    out["all_correct"] = all(out.values())
    size = None if isinstance(spec, str) else (spec["size"] if isinstance(spec, dict) else spec.size)
    out["present_correct"] = object_present(found, np.asarray(frames).shape[1:3], size)
    out["last_present_correct"] = bool(
        out["present_correct"] and out["colour_correct"] and not np.isnan(found["areas"][-1]))
    return out


def describe_object(found: dict, frame_size: tuple[int, int], size: float | None = None) -> dict:
    """What the detector read, for telling failures apart (records of ``cogfun eval``).

    Args:
        found: :func:`detect_toy_object` output.
        frame_size: ``(H, W)``.
        size: the spec's object size (fraction of ``min(H, W)``), or None.

    Returns:
        dict with ``detected_colour``, ``detected_shape``, ``detected_direction`` (None when no object),
        ``colour_error`` (RGB distance of the object's measured colour from its palette colour: above
        :func:`object_present`'s 0.4 the object is faint, e.g. half blended into the background; None when no
        object), ``seen_frames`` (share of frames the object is seen in) and ``area_ratio`` (median area over the frames
        it is seen in, over the asked bounding box ``(size * min(H, W))^2``: about 0.5-1 for a right-sized
        object, far above 1 for a flood, far below for a speck; None without ``size`` or object) and
        ``displacement`` (the fitted motion ``[dx, dy]`` over the clip as fractions of ``min(H, W)``, image
        y pointing down: what the direction was read from, so a drift shared by many videos shows; None when
        no object).
    """
    areas = np.asarray(found["areas"], np.float64)
    seen = ~np.isnan(areas)
    ratio = None
    if found["found"] and size is not None and seen.any():
        ratio = float(np.median(areas[seen]) / (size * min(frame_size)) ** 2)
    error = displacement = None
    if found["found"]:
        error = float(np.linalg.norm(found["rgb"] - np.asarray(PALETTE[found["colour"]])))
        displacement = [round(float(d) / min(frame_size), 4) for d in found["displacement"]]
    return dict(detected_colour=found["colour"], detected_shape=found["shape"], detected_direction=found["direction"],
                colour_error=error, seen_frames=float(seen.mean()), area_ratio=ratio, displacement=displacement)


def object_present(found: dict, frame_size: tuple[int, int], size: float | None = None,
                   min_frames: float = 0.75, area_range: tuple[float, float] = (0.25, 4.0),
                   max_colour_error: float = 0.4) -> bool:
    """Is there one object of a sensible size in most frames (the "object present" of the benchmark)?

    Args:
        found: :func:`detect_toy_object` output.
        frame_size: ``(H, W)``.
        size: the spec's object size (fraction of ``min(H, W)``); None: only the lower bound of
            a 3x3-pixel object is checked.
        min_frames: fraction of frames in which the object must be seen.
        area_range: median area over frames as a multiple of the asked shape's area (at ``size``,
            the area of a shape of that bounding box is between 0.5 and 1 box, so ``(0.25, 4.0)``
            accepts any of the four shapes drawn somewhat small or large, and rejects a speck or a
            flood).
        max_colour_error: largest RGB distance of the object's colour from its palette colour.
    """
    if not found["found"]:
        return False
    if np.linalg.norm(found["rgb"] - np.asarray(PALETTE[found["colour"]])) > max_colour_error:
        return False  # a blob, but of no colour of the world (noise, a smear of background)
    areas = np.asarray(found["areas"], np.float64)
    seen = ~np.isnan(areas)
    if seen.mean() < min_frames:
        return False
    median = float(np.median(areas[seen]))
    if size is None:
        return median >= 9.0
    box = (size * min(frame_size)) ** 2  # the asked bounding box, pixels
    return bool(area_range[0] * 0.5 * box <= median <= area_range[1] * box)


def caption_accuracy(clips, specs, **detector_kwargs) -> dict:
    """Mean of :func:`score_against_caption` over clips (for tables and experiment records).

    Args:
        clips: iterable of ``(F, H, W, 3)`` float arrays in [0, 1].
        specs: the matching specs (or dicts, or captions), same length.
        **detector_kwargs: forwarded to :func:`detect_toy_object`.

    Returns:
        dict of floats in [0, 1]: ``colour``, ``shape``, ``direction``, ``all`` and ``n`` (count).
    """
    scores = [score_against_caption(f, s, **detector_kwargs) for f, s in zip(clips, specs,
                                                                               strict=True)]
    if not scores:
        raise ValueError("caption_accuracy needs at least one clip")
    keys = ("colour", "shape", "direction", "all")
    out = {k: float(np.mean([s[f"{k}_correct"] for s in scores])) for k in keys}
    out["n"] = len(scores)
    return out
