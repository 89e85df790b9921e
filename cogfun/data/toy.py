"""The toy world: deterministic captioned clips for training and testing tiny models on a CPU.

Two kinds of clips, each described by a :class:`ToyClipSpec` and rendered at any size, aspect
ratio and length by :func:`render_clip`:

- ``"shape"``: a flat-coloured circle, square, triangle (apex up) or plus-shaped cross moving
  left/right/up/down (or standing still) in a straight line at constant speed, over a plain
  background or a still photo. Caption: ``"a red circle moving left on a grey background"``.
- ``"pan"``: a camera pan across a real photo (scikit-image's bundled photos, no download): a
  crop window slides over the resized photo at constant speed. "A pan to the right" moves the
  *window* right, so the content moves *left* in the frame. Caption:
  ``"a camera pan to the right across a photo of a cat"``.

Captions contain exactly the words a metric can check (colour, shape, direction, background or
photo subject) from the closed vocabulary :data:`TOY_VOCABULARY`; ``size`` and ``speed`` are
nuisance factors and are not captioned. Which frame positions a clip uses (start point, photo
crop) comes from the render ``seed``, so a spec is the *meaning* and the seed the *instance*.

Photos in :data:`HELD_OUT_PHOTOS` never appear in :func:`sample_specs` with the default
``photos=TRAIN_PHOTOS``: generating them tests generalisation to unseen content.

Dataset files follow the reference metadata format (a JSON list of
``{"file_path", "text", "type", "width", "height"}``, docs/design.md 1.6); see :func:`write_toy_dataset`.
Video convention: float32 ``(F, H, W, 3)`` in [0, 1] (see :mod:`cogfun.data.video_io`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# ================================================================================================
#                                        The world's vocabulary
# ================================================================================================

KINDS = ("shape", "pan")
SHAPES = ("circle", "square", "triangle", "cross")
# Saturated colours, pairwise at least 1.0 apart in RGB and at least 0.87 from every background.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "magenta": (1.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
}
COLOURS = tuple(PALETTE)
DIRECTIONS = ("left", "right", "up", "down", "still")
PLAIN_BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "grey": (0.5, 0.5, 0.5),
    "black": (0.0, 0.0, 0.0),
    "white": (1.0, 1.0, 1.0),
}
# scikit-image photo loader name -> caption subject. All ship inside the scikit-image wheel.
PHOTOS: dict[str, str] = {
    "astronaut": "an astronaut",
    "chelsea": "a cat",
    "camera": "a photographer",  # the classic "cameraman"; not "camera", which pans use
    "hubble_deep_field": "galaxies",
    "immunohistochemistry": "stained cells",
    "coffee": "a cup of coffee",
    "rocket": "a rocket",
}
HELD_OUT_PHOTOS = ("coffee", "rocket")
TRAIN_PHOTOS = tuple(name for name in PHOTOS if name not in HELD_OUT_PHOTOS)
PHOTO_PREFIX = "photo:"


@dataclass(frozen=True)
class ToyClipSpec:
    """What a toy clip shows (its caption's content), independent of size, length and seed.

    Attributes:
        kind: ``"shape"`` (a moving object) or ``"pan"`` (a camera pan across a photo).
        direction: ``"left" | "right" | "up" | "down" | "still"``: the object's motion, or the
            direction the camera pans (content then moves the opposite way).
        background: a plain colour name from :data:`PLAIN_BACKGROUNDS` (shape clips only) or
            ``"photo:<name>"`` with a name from :data:`PHOTOS`.
        shape: shape clips: one of :data:`SHAPES`; pan clips: ``""``.
        colour: shape clips: one of :data:`COLOURS`; pan clips: ``""``.
        size: shape clips: the object's bounding-box side as a fraction of ``min(H, W)``, in
            ``(0, 0.8]``. Not used by pans.
        speed: in ``(0, 1]``. Shape clips: distance travelled over the whole clip as a fraction of
            the free travel (frame extent minus object size; 1 = edge to edge). Pans: distance the
            window moves over the whole clip as a fraction of the frame's width (left/right) or
            height (up/down). Ignored for ``"still"``.
    """

    kind: str
    direction: str
    background: str
    shape: str = ""
    colour: str = ""
    size: float = 0.3
    speed: float = 0.5

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS} (got {self.kind!r})")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS} (got {self.direction!r})")
        if self.background.startswith(PHOTO_PREFIX):
            if self.photo not in PHOTOS:
                raise ValueError(f"unknown photo {self.photo!r} in background "
                                 f"{self.background!r}; use one of {tuple(PHOTOS)}")
        elif self.background not in PLAIN_BACKGROUNDS:
            raise ValueError(f"background must be one of {tuple(PLAIN_BACKGROUNDS)} or "
                             f"'photo:<name>' (got {self.background!r})")
        if self.kind == "shape":
            if self.shape not in SHAPES:
                raise ValueError(f"shape clips need shape in {SHAPES} (got {self.shape!r})")
            if self.colour not in COLOURS:
                raise ValueError(f"shape clips need colour in {COLOURS} (got {self.colour!r})")
            if not 0.0 < self.size <= 0.8:
                raise ValueError(f"size must be in (0, 0.8] of min(H, W) (got {self.size})")
        else:
            if self.shape or self.colour:
                raise ValueError("pan clips have no object: leave shape='' and colour='' (got "
                                 f"shape={self.shape!r}, colour={self.colour!r})")
            if self.photo is None:
                raise ValueError(f"pan clips need a 'photo:<name>' background (got "
                                 f"{self.background!r}); photos: {tuple(PHOTOS)}")
        if not 0.0 < self.speed <= 1.0:
            raise ValueError(f"speed must be in (0, 1] (got {self.speed})")

    @property
    def photo(self) -> str | None:
        """The photo's name for a ``"photo:<name>"`` background, else ``None``."""
        if self.background.startswith(PHOTO_PREFIX):
            return self.background[len(PHOTO_PREFIX):]
        return None

    def to_dict(self) -> dict:
        """Plain dict of the fields (JSON-safe, and collatable by torch's DataLoader)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ToyClipSpec":
        """Inverse of :meth:`to_dict`; unknown keys raise."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ToyClipSpec keys {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


# ================================================================================================
#                                            Captions
# ================================================================================================


def caption(spec: ToyClipSpec) -> str:
    """The clip's caption, built only from words in :data:`TOY_VOCABULARY`.

    Examples: ``"a red circle moving left on a grey background"``,
    ``"a blue cross standing still on a photo of a cat"``,
    ``"a camera pan to the right across a photo of an astronaut"``,
    ``"a camera pan up across a photo of galaxies"``, ``"a still shot of a photo of a rocket"``.

    Args:
        spec: the clip.

    Returns:
        a lower-case caption without punctuation.
    """
    where = (f"a photo of {PHOTOS[spec.photo]}" if spec.photo else
             f"a {spec.background} background")
    if spec.kind == "shape":
        motion = "standing still" if spec.direction == "still" else f"moving {spec.direction}"
        return f"a {spec.colour} {spec.shape} {motion} on {where}"
    if spec.direction == "still":
        return f"a still shot of {where}"
    if spec.direction in ("left", "right"):
        return f"a camera pan to the {spec.direction} across {where}"
    return f"a camera pan {spec.direction} across {where}"


def _all_specs() -> list[ToyClipSpec]:
    """One spec for every captionable combination (sizes and speeds left at defaults)."""
    specs = []
    for direction in DIRECTIONS:
        for photo in PHOTOS:
            specs.append(ToyClipSpec("pan", direction, PHOTO_PREFIX + photo))
        for background in (*PLAIN_BACKGROUNDS, *(PHOTO_PREFIX + p for p in PHOTOS)):
            for shape in SHAPES:
                for colour in COLOURS:
                    specs.append(ToyClipSpec("shape", direction, background, shape, colour))
    return specs


TOY_VOCABULARY: list[str] = sorted({w for s in _all_specs() for w in caption(s).split()})


# ================================================================================================
#                                            Rendering
# ================================================================================================


def shape_alpha(
    shape: str, height: int, width: int, cx: float, cy: float, radius: float, supersample: int = 4
) -> np.ndarray:
    """Anti-aliased coverage of one shape: the fraction of each pixel the shape covers.

    Coordinates are continuous pixels: x right, y down, pixel ``(i, j)`` spans
    ``[j, j + 1) x [i, i + 1)``. Every shape fits the square of half-side ``radius`` around
    ``(cx, cy)``: circle (radius r), square (side 2r), triangle with its apex up and its base at
    the bottom (bounding-box fill 1/2, centroid r/3 below ``cy``), cross of two bars of width 2r/3
    (fill 5/9). Pixels fully inside get exactly 1.0.

    Args:
        shape: one of :data:`SHAPES`.
        height, width: frame size in pixels.
        cx, cy: centre of the bounding box, in pixels.
        radius: half the bounding-box side, in pixels.
        supersample: samples per pixel side (coverage resolution ``1 / supersample**2``).

    Returns:
        float32 ``(H, W)`` in [0, 1].
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES} (got {shape!r})")
    alpha = np.zeros((height, width), np.float32)
    # Only rasterise the bounding box: rendering cost is independent of the frame size.
    x0, x1 = max(int(math.floor(cx - radius)), 0), min(int(math.ceil(cx + radius)), width)
    y0, y1 = max(int(math.floor(cy - radius)), 0), min(int(math.ceil(cy + radius)), height)
    if x1 <= x0 or y1 <= y0:
        return alpha
    s = supersample
    offsets = (np.arange(s) + 0.5) / s
    xs = (np.arange(x0, x1)[:, None] + offsets).reshape(-1) - cx  # (w*s,)
    ys = (np.arange(y0, y1)[:, None] + offsets).reshape(-1) - cy  # (h*s,)
    dx, dy = np.abs(xs)[None, :], ys[:, None]  # (1, w*s), (h*s, 1)
    r = radius
    if shape == "circle":
        inside = dx**2 + dy**2 <= r**2
    elif shape == "square":
        inside = (dx <= r) & (np.abs(dy) <= r)
    elif shape == "triangle":
        inside = (dy <= r) & (dx <= (dy + r) / 2)  # half-width grows from 0 (apex) to r (base)
    else:  # cross
        arm = r / 3
        inside = ((dx <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (dx <= r))
    cover = inside.reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3))  # (h, w)
    alpha[y0:y1, x0:x1] = cover
    return alpha


def _positions(lo: float, hi: float, travel: float, direction_sign: int, num_frames: int,
               rng: np.random.Generator) -> np.ndarray:
    """Positions along one axis moving ``travel`` inside ``[lo, hi]``; sign +1 = increasing."""
    start = rng.uniform(lo, hi - travel) if hi - travel > lo else lo
    t = np.arange(num_frames) / max(num_frames - 1, 1)  # 0 .. 1
    frac = t if direction_sign > 0 else 1.0 - t
    return start + travel * frac


def shape_track(
    spec: ToyClipSpec, height: int, width: int, num_frames: int, seed: int
) -> tuple[np.ndarray, float]:
    """Where a shape clip's object is in every frame (the ground truth behind :func:`render_clip`).

    Args:
        spec: a ``"shape"`` spec.
        height, width, num_frames: clip size.
        seed: render seed (chooses the start point and the cross-axis position).

    Returns:
        ``(centres, radius)``: float64 ``(F, 2)`` bounding-box centres ``(x, y)`` in pixels
        (x right, y down) and the half-side of the bounding box in pixels. The object stays
        fully inside the frame.
    """
    if spec.kind != "shape":
        raise ValueError(f"shape_track needs a 'shape' spec (got kind={spec.kind!r})")
    _check_size(height, width, num_frames)
    rng = np.random.default_rng(seed)
    radius = spec.size * min(height, width) / 2
    x_lo, x_hi = radius, width - radius
    y_lo, y_hi = radius, height - radius
    x = np.full(num_frames, rng.uniform(x_lo, x_hi))
    y = np.full(num_frames, rng.uniform(y_lo, y_hi))
    if spec.direction in ("left", "right"):
        travel = spec.speed * (x_hi - x_lo)
        x = _positions(x_lo, x_hi, travel, 1 if spec.direction == "right" else -1, num_frames, rng)
    elif spec.direction in ("up", "down"):
        travel = spec.speed * (y_hi - y_lo)
        y = _positions(y_lo, y_hi, travel, 1 if spec.direction == "down" else -1, num_frames, rng)
    return np.stack([x, y], axis=1), radius


def object_track_box(spec: ToyClipSpec, height: int, width: int, num_frames: int, seed: int,
                     pad: int = 2, frames: slice | None = None) -> tuple[int, int, int, int]:
    """The box that hides a shape clip's object in every frame: ``(top, bottom, left, right)`` in pixels.

    The bounding box of the object's whole track (:func:`shape_track`) plus ``pad`` pixels, clipped to the
    frame; ``frames`` limits the track to some of the clip's frames (a window read from a longer clip).
    The benchmark's inpaint hole (``cogfun.eval.benchmark.inpaint_box``) and the latent cache's
    ``object_box`` training masks are this box.
    """
    centres, radius = shape_track(spec, height, width, num_frames, seed)
    if frames is not None:
        centres = centres[frames]
        if not len(centres):
            raise ValueError(f"frames {frames} selects none of the clip's {num_frames} frames")
    left = max(int(np.floor(centres[:, 0].min() - radius)) - pad, 0)
    right = min(int(np.ceil(centres[:, 0].max() + radius)) + pad, width)
    top = max(int(np.floor(centres[:, 1].min() - radius)) - pad, 0)
    bottom = min(int(np.ceil(centres[:, 1].max() + radius)) + pad, height)
    return top, bottom, left, right


@functools.lru_cache(maxsize=None)
def _photo_uint8(name: str) -> np.ndarray:
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:  # grey photos (camera) -> RGB
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


@functools.lru_cache(maxsize=64)
def _photo_resized(name: str, height: int, width: int) -> np.ndarray:
    from PIL import Image

    resized = Image.fromarray(_photo_uint8(name)).resize((width, height), Image.Resampling.LANCZOS)
    out = np.asarray(resized).astype(np.float32) / np.float32(255.0)
    out.flags.writeable = False  # shared by the cache
    return out


def load_photo(name: str, height: int, width: int) -> np.ndarray:
    """A toy-world photo scaled (aspect kept) to cover ``height x width`` and centre-cropped.

    Args:
        name: one of :data:`PHOTOS`.
        height, width: output size.

    Returns:
        float32 ``(H, W, 3)`` in [0, 1].
    """
    canvas = _photo_canvas(name, height, width, np.random.default_rng(0), centre=True)
    return np.array(canvas)


def _photo_canvas(name: str, height: int, width: int, rng: np.random.Generator,
                  centre: bool = False) -> np.ndarray:
    """Photo scaled to cover ``(height, width)``, cropped at a seeded (or centred) offset.

    Seeded crops also zoom in by a random factor in [1, 1.5], so that different seeds show
    different parts of the photo even when its aspect ratio matches the canvas.
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; use one of {tuple(PHOTOS)}")
    ph, pw = _photo_uint8(name).shape[:2]
    zoom = 1.0 if centre else float(rng.uniform(1.0, 1.5))
    scale = max(height / ph, width / pw) * zoom
    rh, rw = max(height, math.ceil(ph * scale)), max(width, math.ceil(pw * scale))
    photo = _photo_resized(name, rh, rw)
    if centre:
        oy, ox = (rh - height) // 2, (rw - width) // 2
    else:
        oy, ox = int(rng.integers(0, rh - height + 1)), int(rng.integers(0, rw - width + 1))
    return photo[oy:oy + height, ox:ox + width]


def _render_pan(spec: ToyClipSpec, height: int, width: int, num_frames: int,
                rng: np.random.Generator) -> np.ndarray:
    horizontal = spec.direction in ("left", "right")
    extent = width if horizontal else height
    travel = 0.0 if spec.direction == "still" else spec.speed * extent
    slack = int(math.ceil(travel)) + 1  # +1: the sub-pixel blend reads one pixel further
    canvas_h, canvas_w = (height, width + slack) if horizontal else (height + slack, width)
    canvas = _photo_canvas(spec.photo, canvas_h, canvas_w, rng)  # (Hc, Wc, 3)
    sign = 1 if spec.direction in ("right", "down") else -1
    offsets = _positions(0.0, float(slack - 1), travel, sign, num_frames, rng)  # window position
    frames = np.empty((num_frames, height, width, 3), np.float32)
    for t, offset in enumerate(offsets):
        i = int(math.floor(offset))
        a = np.float32(offset - i)  # sub-pixel part: linear blend of two integer crops
        if horizontal:
            frames[t] = (1 - a) * canvas[:, i:i + width] + a * canvas[:, i + 1:i + 1 + width]
        else:
            frames[t] = (1 - a) * canvas[i:i + height] + a * canvas[i + 1:i + 1 + height]
    return frames


def _check_size(height: int, width: int, num_frames: int) -> None:
    if height < 1 or width < 1 or num_frames < 1:
        raise ValueError(f"height, width and num_frames must be >= 1 (got {height}, {width}, "
                         f"{num_frames})")


def render_clip(spec: ToyClipSpec, height: int, width: int, num_frames: int,
                seed: int = 0) -> np.ndarray:
    """Render a toy clip at any size, aspect ratio and length; deterministic in ``seed``.

    Args:
        spec: what the clip shows.
        height, width: frame size in pixels (any values; shapes are sized by ``min(H, W)``).
        num_frames: clip length (1 gives a still frame at the motion's start).
        seed: render seed: start position, cross-axis position, photo zoom and crop.

    Returns:
        float32 ``(F, H, W, 3)`` in [0, 1].
    """
    _check_size(height, width, num_frames)
    if spec.kind == "pan":
        return _render_pan(spec, height, width, num_frames, np.random.default_rng(seed))
    # shape clip: a still background with the object alpha-blended on top
    centres, radius = shape_track(spec, height, width, num_frames, seed)
    rng = np.random.default_rng([seed, 1])  # separate stream: the photo crop
    if spec.photo:
        background = _photo_canvas(spec.photo, height, width, rng)
    else:
        background = np.broadcast_to(
            np.asarray(PLAIN_BACKGROUNDS[spec.background], np.float32), (height, width, 3))
    colour = np.asarray(PALETTE[spec.colour], np.float32)
    frames = np.empty((num_frames, height, width, 3), np.float32)
    for t, (cx, cy) in enumerate(centres):
        alpha = shape_alpha(spec.shape, height, width, cx, cy, radius)[..., None]  # (H, W, 1)
        frames[t] = background * (1 - alpha) + colour * alpha
    return frames


# ================================================================================================
#                                        Sampling and datasets
# ================================================================================================


def _check_choices(name: str, values, allowed) -> tuple:
    values = tuple(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"{name} must be a non-empty subset of {tuple(allowed)} (got {values})")
    return values


def sample_specs(
    n: int,
    seed: int = 0,
    photos=TRAIN_PHOTOS,
    kinds=KINDS,
    shapes=SHAPES,
    colours=COLOURS,
    directions=DIRECTIONS,
    plain_backgrounds=tuple(PLAIN_BACKGROUNDS),
    photo_background_prob: float = 0.0,
    size_range: tuple[float, float] = (0.2, 0.4),
    speed_range: tuple[float, float] = (0.4, 1.0),
) -> list[ToyClipSpec]:
    """Draw ``n`` random specs, uniformly over the given choices; deterministic in ``seed``.

    Args:
        n: number of specs.
        seed: sampling seed.
        photos: photos pans (and photo backgrounds) may use; default :data:`TRAIN_PHOTOS`, so
            :data:`HELD_OUT_PHOTOS` never appear. Pass ``HELD_OUT_PHOTOS`` for a test split.
        kinds: subset of :data:`KINDS`, chosen uniformly per clip.
        shapes, colours, directions: subsets of :data:`SHAPES`, :data:`COLOURS`,
            :data:`DIRECTIONS`.
        plain_backgrounds: backgrounds of shape clips.
        photo_background_prob: probability that a shape clip is over a photo instead.
        size_range: uniform range of ``size`` (shape clips).
        speed_range: uniform range of ``speed``.

    Returns:
        list of ``n`` :class:`ToyClipSpec`.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0 (got {n})")
    kinds = _check_choices("kinds", kinds, KINDS)
    shapes = _check_choices("shapes", shapes, SHAPES)
    colours = _check_choices("colours", colours, COLOURS)
    directions = _check_choices("directions", directions, DIRECTIONS)
    plain_backgrounds = _check_choices("plain_backgrounds", plain_backgrounds, PLAIN_BACKGROUNDS)
    photos = tuple(photos)
    if photos:
        _check_choices("photos", photos, PHOTOS)
    elif "pan" in kinds or photo_background_prob > 0:
        raise ValueError("pans and photo backgrounds need at least one photo; pass photos="
                         "TRAIN_PHOTOS or remove 'pan' from kinds")
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        kind = kinds[rng.integers(len(kinds))]
        direction = directions[rng.integers(len(directions))]
        speed = float(rng.uniform(*speed_range))
        if kind == "pan":
            photo = photos[rng.integers(len(photos))]
            specs.append(ToyClipSpec("pan", direction, PHOTO_PREFIX + photo, speed=speed))
            continue
        shape = shapes[rng.integers(len(shapes))]
        colour = colours[rng.integers(len(colours))]
        size = float(rng.uniform(*size_range))
        if photos and rng.random() < photo_background_prob:
            background = PHOTO_PREFIX + photos[rng.integers(len(photos))]
        else:
            background = plain_backgrounds[rng.integers(len(plain_backgrounds))]
        specs.append(ToyClipSpec("shape", direction, background, shape, colour, size, speed))
    return specs


def clip_seed(seed: int, index: int) -> int:
    """Render seed of clip ``index`` in a dataset with seed ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class ToyVideoDataset(torch.utils.data.Dataset):
    """A map-style dataset of toy clips, rendered on the fly (nothing is stored).

    Items are ``dict(pixel_values, text, spec)``: ``pixel_values`` float32 ``(F, C, H, W)`` in
    [-1, 1] (the reference's layout), ``text`` the caption, ``spec`` the spec as a plain dict (so
    the default ``DataLoader`` collate works; rebuild with ``ToyClipSpec.from_dict``).

    Args:
        n: number of clips.
        height, width, num_frames: clip size (any aspect ratio and length).
        seed: seeds both the specs and the per-clip render seeds.
        specs: explicit specs instead of sampling (then ``n`` must equal ``len(specs)``).
        **sample_kwargs: forwarded to :func:`sample_specs` (``photos``, ``kinds``, ...).
    """

    def __init__(self, n: int, height: int, width: int, num_frames: int, seed: int = 0,
                 specs: list[ToyClipSpec] | None = None, **sample_kwargs):
        _check_size(height, width, num_frames)
        if specs is None:
            specs = sample_specs(n, seed, **sample_kwargs)
        elif len(specs) != n:
            raise ValueError(f"n={n} but {len(specs)} specs were given; pass n=len(specs)")
        self.specs = list(specs)
        self.height, self.width, self.num_frames, self.seed = height, width, num_frames, seed

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        index = index % len(self)
        spec = self.specs[index]
        frames = render_clip(spec, self.height, self.width, self.num_frames,
                             clip_seed(self.seed, index))  # (F, H, W, 3) in [0, 1]
        pixel_values = torch.from_numpy(frames).permute(0, 3, 1, 2) * 2 - 1  # (F, C, H, W)
        return dict(pixel_values=pixel_values.contiguous(), text=caption(spec),
                    spec=spec.to_dict())


def write_toy_dataset(
    folder: str | Path,
    n: int,
    sizes=((64, 64, 17),),
    seed: int = 0,
    fps: float = 8.0,
    ext: str = ".mp4",
    overwrite: bool = False,
    **sample_kwargs,
) -> Path:
    """Render ``n`` clips to video files plus a ``metadata.json`` in the reference format.

    Layout: ``folder/videos/00000.mp4, ...`` and ``folder/metadata.json``, a JSON list with one
    entry per clip::

        {"file_path": "videos/00000.mp4",   # relative to folder (the reference's key)
         "text": "a red circle moving left on a grey background",
         "type": "video", "width": 64, "height": 64,
         "num_frames": 17, "fps": 8.0,      # extra: clip length and rate
         "seed": 123456789,                 # extra: render seed (render_clip reproduces pixels)
         "spec": {"kind": "shape", ...}}    # extra: ToyClipSpec.to_dict(), the ground truth

    Clip ``i`` has size ``sizes[i % len(sizes)]`` (mixed resolutions for bucketing tests).
    With ``ext=".png"`` each clip is a folder of lossless PNG frames (``videos/00000/000.png``,
    ...), which :func:`cogfun.data.video_io.read_video` reads like a video: H.264 subsamples
    colour (4:2:0) and smears the saturated edges a toy VAE is trained to reproduce.

    Args:
        folder: output folder (created).
        n: number of clips.
        sizes: ``(height, width, num_frames)`` triples; even sides for mp4.
        seed: seeds specs and render seeds (as :class:`ToyVideoDataset` with the same seed).
        fps: frame rate written to the files.
        ext: ``".mp4"`` (H.264), ``".webm"``, ``".gif"`` or ``".png"`` (a folder of frames).
        overwrite: allow replacing an existing ``metadata.json`` in ``folder``.
        **sample_kwargs: forwarded to :func:`sample_specs`.

    Returns:
        path of ``metadata.json``.
    """
    from cogfun.data.video_io import write_frames, write_video

    folder = Path(folder)
    sizes = [tuple(int(v) for v in s) for s in sizes]
    if not sizes or any(len(s) != 3 for s in sizes):
        raise ValueError(f"sizes must be a non-empty list of (height, width, num_frames), got "
                         f"{sizes}")
    for h, w, f in sizes:
        _check_size(h, w, f)
        if ext == ".mp4" and (h % 2 or w % 2):
            raise ValueError(f"mp4 needs even height and width, got {h}x{w} in sizes; use even "
                             "sizes or ext='.webm'")
    metadata_path = folder / "metadata.json"
    if metadata_path.exists() and not overwrite:
        raise ValueError(f"{metadata_path} already exists; write to a new folder or pass "
                         "overwrite=True")
    specs = sample_specs(n, seed, **sample_kwargs)
    entries = []
    for index, spec in enumerate(specs):
        height, width, num_frames = sizes[index % len(sizes)]
        render_seed = clip_seed(seed, index)
        relative = f"videos/{index:05d}" + ("" if ext == ".png" else ext)
        frames = render_clip(spec, height, width, num_frames, render_seed)
        if ext == ".png":
            write_frames(folder / relative, frames)
        else:
            write_video(folder / relative, frames, fps=fps)
        entries.append({"file_path": relative, "text": caption(spec), "type": "video",
                        "width": width, "height": height, "num_frames": num_frames,
                        "fps": fps, "seed": render_seed, "spec": spec.to_dict()})
    folder.mkdir(parents=True, exist_ok=True)
    metadata_path.write_text(json.dumps(entries, indent=1))
    return metadata_path
