"""Random inpaint masks for training, the ten kinds of the reference (docs/design.md 1.5).

CogVideoX-Fun learns every mode at once (text-to-video, image-to-video, inpainting, continuation)
because each training clip gets a random regenerate-mask. This module draws those masks with the
kinds and probabilities of the reference implementation, VideoX-Fun
(`videox_fun/data/dataset_image_video.py`, `get_random_mask`), from a `torch.Generator` so that
a seed reproduces a run. Masks are 1 = regenerate, 0 = keep, shape `(1, F, H, W)` (the channel
axis of `cogfun.masks`' `(B, 1, F, H, W)`).

The kinds, in the reference's order (index = the reference's `mask_index`), for a video of F
frames and H x W pixels; "box" below means a rectangle with a uniform centre, sides drawn in
[S // 4, 3 * (S // 4)) and half of each side on either side of the centre, clipped at the border:
    box            one box, the same on every frame.
    all            everything regenerated (text-to-video).
    first_frames   the first k frames kept, k uniform in 1..4, the rest regenerated
                   (image-to-video for k = 1, continuation for k > 1).
    middle         the first k and the last k frames kept, k uniform in 1..4, the middle
                   regenerated (start+end; nothing is regenerated when F <= 2k).
    box_span       one box on frames [t0, t1), t0 uniform in [0, F // 2), t1 in [F // 2, F).
    bernoulli      every pixel of every frame regenerated with probability 1/2.
    small_boxes    n frames (n uniform in 1..max(F // 2, 1), distinct) each get one small box:
                   sides uniform in 1..S // 4, placed uniformly inside the frame.
    ellipse        one axis-aligned ellipse on every frame: uniform centre, semi-axes uniform in
                   [m // 8, m // 4), m = min(H, W); strict inside test.
    circle         one circle on every frame: uniform centre, radius uniform in [m // 8, m // 4).
    random_frames  every frame regenerated whole with probability 1/2.
For a single image (F = 1) the reference draws only box (0.2) or all (0.8).
"""

from __future__ import annotations

import torch

MASK_KINDS = (
    "box",
    "all",
    "first_frames",
    "middle",
    "box_span",
    "bernoulli",
    "small_boxes",
    "ellipse",
    "circle",
    "random_frames",
)
MASK_PROBABILITIES = (0.05, 0.2, 0.2, 0.2, 0.05, 0.05, 0.05, 0.1, 0.05, 0.05)

# Single images (F = 1): the reference's image branch.
IMAGE_MASK_KINDS = ("box", "all")
IMAGE_MASK_PROBABILITIES = (0.2, 0.8)

# Kinds that only make sense across several frames.
_TEMPORAL_KINDS = ("first_frames", "middle", "box_span")


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform integer in [low, high) (exclusive, like torch.randint)."""
    return int(torch.randint(low, high, (1,), generator=generator))


def _box(height: int, width: int, generator: torch.Generator) -> tuple[slice, slice]:
    """A random box as (rows, cols) slices: uniform centre, sides in [S // 4, 3 * (S // 4))."""
    cx = _randint(0, width, generator)
    cy = _randint(0, height, generator)
    bw = _randint(width // 4, width // 4 * 3, generator)
    bh = _randint(height // 4, height // 4 * 3, generator)
    cols = slice(max(cx - bw // 2, 0), min(cx + bw // 2, width))
    rows = slice(max(cy - bh // 2, 0), min(cy + bh // 2, height))
    return rows, cols


def draw_mask_kind(num_frames: int, generator: torch.Generator) -> str:
    """Draw a kind with the reference's probabilities (the image ones when num_frames == 1).

    Args:
        num_frames: F.
        generator: torch generator.

    Returns:
        a name from `MASK_KINDS`.
    """
    if num_frames == 1:
        kinds, probs = IMAGE_MASK_KINDS, IMAGE_MASK_PROBABILITIES
    else:
        kinds, probs = MASK_KINDS, MASK_PROBABILITIES
    index = int(torch.multinomial(torch.tensor(probs), 1, generator=generator))
    return kinds[index]


def random_mask(
    num_frames: int,
    height: int,
    width: int,
    generator: torch.Generator,
    kind: str | None = None,
) -> tuple[torch.Tensor, str]:
    """One random training mask.

    Args:
        num_frames: F (>= 1).
        height, width: H, W in pixels (each >= 8, so every kind has a non-empty size range).
        generator: torch generator (CPU); the same generator state gives the same mask.
        kind: one of `MASK_KINDS`, or None to draw it with `MASK_PROBABILITIES`.

    Returns:
        (mask `(1, F, H, W)` float32 in {0, 1}, 1 = regenerate; the kind's name).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1 (got {num_frames})")
    if height < 8 or width < 8:
        raise ValueError(
            f"random masks need height and width >= 8 (got {height}x{width}); the ellipse and "
            "circle radii are drawn in [min(H, W) // 8, min(H, W) // 4)"
        )
    if kind is None:
        kind = draw_mask_kind(num_frames, generator)
    elif kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS} (got {kind!r})")
    if num_frames == 1 and kind in _TEMPORAL_KINDS:
        raise ValueError(f"kind {kind!r} needs num_frames >= 2 (got 1); use one of the others")

    f, h, w = num_frames, height, width
    mask = torch.zeros(f, h, w)  # (F, H, W)
    m = min(h, w)

    if kind == "box":
        rows, cols = _box(h, w, generator)
        mask[:, rows, cols] = 1
    elif kind == "all":
        mask[:] = 1
    elif kind == "first_frames":
        k = _randint(1, 5, generator)
        mask[k:] = 1
    elif kind == "middle":
        k = _randint(1, 5, generator)
        mask[k : f - k] = 1  # empty when f <= 2k, as in the reference
    elif kind == "box_span":
        rows, cols = _box(h, w, generator)
        t0 = _randint(0, f // 2, generator)
        t1 = _randint(f // 2, f, generator)
        mask[t0:t1, rows, cols] = 1
    elif kind == "bernoulli":
        mask = torch.randint(0, 2, (f, h, w), generator=generator).float()
    elif kind == "small_boxes":
        n = _randint(1, max(f // 2, 1) + 1, generator)
        frames = torch.randperm(f, generator=generator)[:n].tolist()
        for t in frames:
            bh = _randint(1, h // 4 + 1, generator)
            bw = _randint(1, w // 4 + 1, generator)
            top = _randint(0, h - bh + 1, generator)
            left = _randint(0, w - bw + 1, generator)
            mask[t, top : top + bh, left : left + bw] = 1
    elif kind in ("ellipse", "circle"):
        cx = _randint(0, w, generator)
        cy = _randint(0, h, generator)
        a = _randint(m // 8, m // 4, generator)  # semi-axis along x (the radius for a circle)
        b = a if kind == "circle" else _randint(m // 8, m // 4, generator)  # along y
        y = torch.arange(h, dtype=torch.float32).view(h, 1)
        x = torch.arange(w, dtype=torch.float32).view(1, w)
        inside = ((y - cy) / b) ** 2 + ((x - cx) / a) ** 2 < 1  # (H, W)
        mask[:, inside] = 1
    elif kind == "random_frames":
        regenerate = torch.rand(f, generator=generator) > 0.5  # (F,)
        mask[regenerate] = 1
    return mask.unsqueeze(0), kind  # (1, F, H, W)


def random_mask_batch(
    batch_size: int,
    num_frames: int,
    height: int,
    width: int,
    generator: torch.Generator,
    kind: str | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """A batch of independent random masks, drawn one after another from `generator`.

    Args:
        batch_size: B.
        num_frames, height, width: F, H, W.
        generator: torch generator.
        kind: force one kind for every sample, or None to draw each.

    Returns:
        (masks `(B, 1, F, H, W)` float32 in {0, 1}; the B kinds).
    """
    draws = [random_mask(num_frames, height, width, generator, kind) for _ in range(batch_size)]
    masks = torch.stack([mask for mask, _ in draws])  # (B, 1, F, H, W)
    return masks, [k for _, k in draws]
