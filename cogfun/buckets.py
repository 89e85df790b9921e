"""Token arithmetic, frame budgets, aspect-ratio buckets and a bucketed batch sampler.

CogVideoX-Fun (VideoX-Fun, aigc-apps) trains one model at many resolutions by *token-length
bucketing*: every training step has a token budget, and inside the budget a clip trades frames
for pixels, so a 1024x1024 clip gets fewer frames than a 512x512 one. This module holds:

- token arithmetic: ``latent_frames``, ``num_tokens`` (VAE 8x spatial / 4x temporal with a causal
  first frame, patch size 2: tokens = latent frames x H/16 x W/16);
- the budget rules of ``frames_for_budget`` (the article's table and the training code's formula,
  side by side), the three reference stage budgets and a ``StageSchedule`` of budgets by step;
- aspect-ratio buckets (``aspect_ratio_buckets``, ``nearest_bucket``, ``resize_crop_box``) in the
  spirit of VideoX-Fun's ``ASPECT_RATIO_512`` / ``get_closest_ratio``, with the same ratio
  convention ``ratio = height / width``;
- a plan of buckets for one budget (``Bucket``, ``plan_buckets``, ``plan_table``);
- ``BucketBatchSampler``: batches that never mix shapes (the role of VideoX-Fun's
  ``AspectRatioBatchImageVideoSampler``), seeded per epoch, split across ranks, resumable
  mid-epoch; ``sampler_statistics`` counts what it yields.

The two budget rules (budget 13312 = 512x512x49, maximum 49 frames):

=========  ==========================================  =======  =======  =========
rule       frames F for an HxW clip                    512x512  768x768  1024x1024
=========  ==========================================  =======  =======  =========
article    largest 4k+1 with H*W*F <= 512*512*49       49       21       9
reference  floor(min(49*512^2/(H*W), 49)/4)*4 + 1      49       21       13
tokens     largest 4k+1 with num_tokens <= 13312       49       17       9
=========  ==========================================  =======  =======  =========

The reference formula rounds the frame count *up* to the next 4k+1 after flooring to a multiple
of 4, so it may exceed the pixel volume (13 x 1024^2 > 49 x 512^2); the article's rule never does.
Neither counts tokens exactly (the causal first frame makes tokens grow as (F-1)/4+1, not F/4),
which is what the ``tokens`` rule adds.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

from torch.utils.data import Sampler

__all__ = [
    "BASE_NUM_FRAMES",
    "BUDGET_RULES",
    "REFERENCE_SCHEDULE",
    "STAGE_BUDGETS",
    "Bucket",
    "BucketBatchSampler",
    "BucketPlan",
    "CropBox",
    "StageSchedule",
    "aspect_ratio_buckets",
    "bucket_for",
    "budget_side",
    "frames_for_budget",
    "latent_frames",
    "nearest_bucket",
    "nearest_ratio",
    "num_tokens",
    "plan_buckets",
    "plan_table",
    "resize_crop_box",
    "sampler_statistics",
]

# ---------------------------------------------------------------------------------------------
# Token arithmetic
# ---------------------------------------------------------------------------------------------

#: Frame count a budget is defined at: 49 frames = 13 latent frames (the 2B sample grid).
BASE_NUM_FRAMES = 49
#: The reference's three training stages: 512x512x49, 768x768x49 and 1024x1024x49 in tokens.
STAGE_BUDGETS = (13312, 29952, 53248)
#: Names accepted by ``frames_for_budget(rule=...)``.
BUDGET_RULES = ("article", "reference", "tokens")


def latent_frames(num_frames: int, temporal_compression: int = 4) -> int:
    """Number of latent frames the causal 3D VAE makes of ``num_frames`` pixel frames.

    The first frame is encoded alone, then every ``temporal_compression`` frames make one latent
    frame, so only ``k * temporal_compression + 1`` frame counts are valid.

    Args:
        num_frames: pixel frames F, must be ``4k + 1`` (1, 5, 9, ..., 49).
        temporal_compression: frames per latent frame after the first (4 for CogVideoX).

    Returns:
        ``(F - 1) // temporal_compression + 1`` (13 for 49 frames).
    """
    if temporal_compression < 1:
        raise ValueError(f"temporal_compression must be >= 1 (got {temporal_compression})")
    if num_frames < 1 or (num_frames - 1) % temporal_compression != 0:
        k = max(0, round((num_frames - 1) / temporal_compression))
        hint = k * temporal_compression + 1
        raise ValueError(
            f"num_frames must be {temporal_compression}k+1 (got {num_frames}); try {hint}"
        )
    return (num_frames - 1) // temporal_compression + 1


def num_tokens(
    height: int,
    width: int,
    num_frames: int,
    spatial_compression: int = 8,
    patch_size: int = 2,
    patch_size_t: int | None = None,
    temporal_compression: int = 4,
) -> int:
    """Video tokens the transformer sees for an ``(F, H, W)`` clip (text tokens not included).

    Args:
        height: pixel height H, a multiple of ``spatial_compression * patch_size`` (16).
        width: pixel width W, a multiple of 16.
        num_frames: pixel frames F, ``4k + 1``.
        spatial_compression: VAE downsampling per side (8).
        patch_size: spatial patch side of the transformer (2).
        patch_size_t: temporal patch size (None for CogVideoX 1.0; 2 for V1.5, where the latent
            frames are padded up to a multiple of it, as the diffusers pipeline does).
        temporal_compression: VAE frames per latent frame (4).

    Returns:
        ``latent_frames x (H / 16) x (W / 16)``: 13312 for 512x512x49, 29952 for 768x768x49,
        53248 for 1024x1024x49.
    """
    step = spatial_compression * patch_size
    if height <= 0 or width <= 0 or height % step or width % step:
        raise ValueError(
            f"height and width must be positive multiples of {step} (got {height}x{width}); "
            f"try {max(step, round(height / step) * step)}x{max(step, round(width / step) * step)}"
        )
    frames = latent_frames(num_frames, temporal_compression)
    if patch_size_t is not None:
        if patch_size_t < 1:
            raise ValueError(f"patch_size_t must be >= 1 or None (got {patch_size_t})")
        frames = -(-frames // patch_size_t)  # ceil: the pipeline pads latent frames
    return frames * (height // step) * (width // step)


# ---------------------------------------------------------------------------------------------
# Budget rules
# ---------------------------------------------------------------------------------------------


def _budget_area(budget: int) -> Fraction:
    """Exact pixel area S^2 of the square 49-frame clip worth ``budget`` tokens."""
    if budget <= 0:
        raise ValueError(f"budget must be a positive token count (got {budget}); try 13312")
    base_latent = latent_frames(BASE_NUM_FRAMES)  # 13
    return Fraction(budget * 16 * 16, base_latent)


def budget_side(budget: int) -> float:
    """Side S of the square ``S x S x 49`` clip whose tokens equal ``budget``.

    ``S = 16 * sqrt(budget / 13)``: 512 for 13312, 768 for 29952, 1024 for 53248. Returned as an
    ``int`` when exact, else as a float (a budget need not be a square's).

    Args:
        budget: token budget (positive).
    """
    area = _budget_area(budget)
    if area.denominator == 1:
        root = math.isqrt(area.numerator)
        if root * root == area.numerator:
            return root
    return math.sqrt(area)


def _largest_4k1_at_most(x: Fraction | float, cap: int) -> int:
    """Largest ``4k + 1 <= min(x, cap)``, or 0 when ``x < 1``."""
    if x < 1:
        return 0
    return min((math.floor(x) - 1) // 4 * 4 + 1, cap)


def frames_for_budget(
    height: int,
    width: int,
    budget: int,
    rule: str = "article",
    max_frames: int = BASE_NUM_FRAMES,
) -> int:
    """Frames an ``H x W`` clip gets inside a token budget, by one of three rules.

    With S^2 the area of the budget's square base (``budget_side(budget) ** 2``, 512^2 for 13312):

    - ``"article"``: the largest ``4k + 1 <= max_frames`` with ``H*W*F <= S^2 * 49`` (the pixel
      volume of the base clip). The CogVideoX-Fun article's table: at 13312, 512x512 -> 49,
      768x768 -> 21, 1024x1024 -> 9.
    - ``"reference"``: VideoX-Fun's training code, ``floor(min(F * S^2 / (H*W), F) / 4) * 4 + 1``
      with ``F = max_frames``; gives 13 at 1024x1024 (it can exceed the volume by < 4 frames).
    - ``"tokens"``: the largest ``4k + 1 <= max_frames`` whose ``num_tokens`` fit the budget
      exactly (counts the causal first latent frame; 17 at 768x768 for 13312).

    Args:
        height: pixel height, a multiple of 16.
        width: pixel width, a multiple of 16.
        budget: token budget, e.g. one of ``STAGE_BUDGETS``.
        rule: ``"article"`` (default), ``"reference"`` or ``"tokens"``.
        max_frames: frame cap, ``4k + 1`` (49).

    Returns:
        The frame count, ``4k + 1``, at least 1.
    """
    if rule not in BUDGET_RULES:
        raise ValueError(f"unknown budget rule {rule!r}; use one of {', '.join(BUDGET_RULES)}")
    latent_frames(max_frames)  # validates 4k+1
    num_tokens(height, width, 1)  # validates the multiple of 16
    area = _budget_area(budget)
    pixels = height * width
    if rule == "article":
        frames = _largest_4k1_at_most(area * BASE_NUM_FRAMES / pixels, max_frames)
    elif rule == "reference":
        ratio = area * max_frames / pixels
        frames = math.floor(min(ratio, max_frames) / 4) * 4 + 1 if ratio >= 1 else 0
    else:  # tokens
        max_latent = budget // num_tokens(height, width, 1)  # tokens of one latent frame
        frames = min(4 * max_latent - 3, max_frames) if max_latent >= 1 else 0
    if frames < 1:
        raise ValueError(
            f"rule {rule!r}: budget too small for {height}x{width} (budget {budget} tokens fits "
            f"less than 1 frame); lower the resolution or raise the budget"
        )
    return frames


@dataclass(frozen=True)
class StageSchedule:
    """Token budget by training step: ``stages[i] = (first_step, budget)``.

    The reference (2B) trains 7k steps at 13312, 6.5k at 29952 and 5k at 53248:
    ``StageSchedule(((0, 13312), (7000, 29952), (13500, 53248)))``.

    Args:
        stages: ``(first_step, budget)`` pairs; the first step must be 0 and steps strictly
            increasing; budgets positive.
    """

    stages: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        stages = tuple((int(s), int(b)) for s, b in self.stages)
        if not stages:
            raise ValueError(
                "StageSchedule needs at least one (step, budget) stage; try [(0, 13312)]"
            )
        if stages[0][0] != 0:
            raise ValueError(
                f"StageSchedule must start at step 0 (got {stages[0][0]}); add a (0, budget) stage"
            )
        steps = [s for s, _ in stages]
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"StageSchedule steps must be strictly increasing (got {steps})")
        bad = [b for _, b in stages if b <= 0]
        if bad:
            raise ValueError(f"StageSchedule budgets must be positive token counts (got {bad})")
        object.__setattr__(self, "stages", stages)

    def stage_at(self, step: int) -> int:
        """Index of the stage that ``step`` belongs to.

        Args:
            step: global training step (>= 0).
        """
        if step < 0:
            raise ValueError(f"step must be >= 0 (got {step})")
        return bisect.bisect_right([s for s, _ in self.stages], step) - 1

    def budget_at(self, step: int) -> int:
        """Token budget in force at ``step``.

        Args:
            step: global training step (>= 0).
        """
        return self.stages[self.stage_at(step)][1]

    @property
    def budgets(self) -> tuple[int, ...]:
        """The budgets in stage order."""
        return tuple(b for _, b in self.stages)


#: The reference 2B schedule (batch 128 x 7k steps, 256 x 6.5k, 128 x 5k).
REFERENCE_SCHEDULE = StageSchedule(((0, 13312), (7000, 29952), (13500, 53248)))


# ---------------------------------------------------------------------------------------------
# Aspect-ratio buckets (ratio = height / width, as in VideoX-Fun's ASPECT_RATIO_512)
# ---------------------------------------------------------------------------------------------


def _snap(x: float, multiple: int) -> int:
    return max(multiple, int(round(x / multiple)) * multiple)


def aspect_ratio_buckets(
    base_size: int = 512,
    num_ratios: int = 40,
    min_ratio: float = 0.25,
    max_ratio: float = 4.0,
    multiple: int = 16,
) -> dict[float, tuple[int, int]]:
    """Bucket shapes of about ``base_size ** 2`` pixels for ``num_ratios`` aspect ratios.

    Ratios are ``height / width`` (the reference's convention: < 1 is landscape, > 1 portrait),
    spaced geometrically, with 1.0 always included so there is a square bucket: the log range is
    split at 1.0 and each side gets a share of the ``num_ratios - 1`` non-square ratios in
    proportion to its log length (for 0.25..4: 20 landscape, 1 square, 19 portrait, log steps
    ln(4)/20 and ln(4)/19; the spare one goes to landscape, the more common video shape).
    A ratio r gets ``h = base*sqrt(r)``, ``w = base/sqrt(r)``, each rounded to ``multiple``.

    Args:
        base_size: side of the square bucket (512 -> 512x512).
        num_ratios: number of ratios (40).
        min_ratio: smallest h/w (0.25 -> 256x1024 at base 512); must be <= 1.
        max_ratio: largest h/w (4.0 -> 1024x256); must be >= 1.
        multiple: sides are multiples of this (16 = VAE 8 x patch 2).

    Returns:
        ``{ratio: (height, width)}`` sorted by ratio; keys rounded to 4 decimals, 1.0 exact.
    """
    if not 0 < min_ratio <= 1.0 <= max_ratio:
        raise ValueError(
            f"need 0 < min_ratio <= 1 <= max_ratio so a square bucket exists "
            f"(got {min_ratio}, {max_ratio}); try 0.25 and 4.0"
        )
    if base_size <= 0 or base_size % multiple:
        raise ValueError(f"base_size must be a positive multiple of {multiple} (got {base_size})")
    if num_ratios < 1 or (num_ratios > 1 and min_ratio == max_ratio):
        raise ValueError(
            f"num_ratios must be >= 1, and 1 when min_ratio == max_ratio (got {num_ratios})"
        )
    lo, hi = math.log(min_ratio), math.log(max_ratio)
    others = num_ratios - 1
    if hi == 0.0:
        n_low = others
    elif lo == 0.0:
        n_low = 0
    else:  # share by log length; an exact half rounds towards the landscape side
        n_low = min(others, int(math.floor(others * -lo / (hi - lo) + 0.5)))
    n_high = others - n_low
    logs = [lo * (n_low - i) / n_low for i in range(n_low)] + [0.0]
    logs += [hi * j / n_high for j in range(1, n_high + 1)]
    buckets: dict[float, tuple[int, int]] = {}
    for i, lr in enumerate(logs):
        if i == 0 and n_low:
            ratio = float(min_ratio)
        elif i == len(logs) - 1 and n_high:
            ratio = float(max_ratio)
        else:
            ratio = round(math.exp(lr), 4)
        root = math.sqrt(ratio)
        buckets[ratio] = (_snap(base_size * root, multiple), _snap(base_size / root, multiple))
    if len(buckets) != num_ratios:
        raise ValueError(
            f"{num_ratios} ratios between {min_ratio} and {max_ratio} collide at 4 decimals; "
            "use fewer ratios"
        )
    return buckets


def nearest_ratio(height: int, width: int, ratios: Sequence[float]) -> float:
    """The ratio (``h / w``) nearest to ``height / width``, compared in log space.

    Log distance treats 2:1 and 1:2 as equally far from 1:1 (in linear space a portrait clip
    would look farther from square than a landscape one). Ties go to the smaller ratio.

    Args:
        height: source height in pixels.
        width: source width in pixels.
        ratios: candidate ratios (e.g. the keys of ``aspect_ratio_buckets()``).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive (got {height}x{width})")
    if not ratios:
        raise ValueError("no ratios to choose from; pass aspect_ratio_buckets()")
    target = math.log(height / width)
    return min(sorted(ratios), key=lambda r: abs(math.log(r) - target))


def nearest_bucket(
    height: int, width: int, buckets: Mapping[float, tuple[int, int]] | None = None
) -> tuple[int, int]:
    """Shape ``(h, w)`` of the bucket whose ratio key is nearest to ``height / width`` (log space).

    Args:
        height: source height in pixels.
        width: source width in pixels.
        buckets: ``{ratio: (h, w)}``; default ``aspect_ratio_buckets()`` (512 base, 40 ratios).
    """
    buckets = aspect_ratio_buckets() if buckets is None else buckets
    return tuple(buckets[nearest_ratio(height, width, list(buckets))])


class CropBox(NamedTuple):
    """Resize a frame to ``(resize_h, resize_w)`` then crop ``[top:top+h, left:left+w]``."""

    resize_h: int
    resize_w: int
    top: int
    left: int


def resize_crop_box(src_h: int, src_w: int, dst_h: int, dst_w: int) -> CropBox:
    """Resize-to-cover then centre-crop geometry taking ``src_h x src_w`` to ``dst_h x dst_w``.

    The scale is the larger of ``dst_h / src_h`` and ``dst_w / src_w`` so the resized frame covers
    the target in both sides (no padding, no distortion); the excess is cut evenly (odd pixel on
    the bottom/right).

    Args:
        src_h: source height.
        src_w: source width.
        dst_h: bucket height.
        dst_w: bucket width.

    Returns:
        ``CropBox(resize_h, resize_w, top, left)``; e.g. 720x1280 -> 288x512 gives
        ``CropBox(288, 512, 0, 0)``.
    """
    if min(src_h, src_w, dst_h, dst_w) <= 0:
        raise ValueError(f"sizes must be positive (got {src_h}x{src_w} -> {dst_h}x{dst_w})")
    scale = max(dst_h / src_h, dst_w / src_w)
    resize_h = max(dst_h, round(src_h * scale))
    resize_w = max(dst_w, round(src_w * scale))
    return CropBox(resize_h, resize_w, (resize_h - dst_h) // 2, (resize_w - dst_w) // 2)


# ---------------------------------------------------------------------------------------------
# Bucket plans
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """One training shape: clips of ``num_frames x height x width`` in batches of ``batch_size``.

    Attributes:
        height: pixel height (multiple of 16).
        width: pixel width (multiple of 16).
        num_frames: pixel frames (4k+1).
        batch_size: samples per batch for this shape.
        tokens: video tokens of one sample (``num_tokens(height, width, num_frames)``).
    """

    height: int
    width: int
    num_frames: int
    batch_size: int
    tokens: int

    @property
    def key(self) -> tuple[int, int, int]:
        """``(height, width, num_frames)``: the key ``BucketBatchSampler`` groups by."""
        return (self.height, self.width, self.num_frames)

    @property
    def ratio(self) -> float:
        """``height / width`` of the actual shape."""
        return self.height / self.width


#: A plan is the list of buckets of one budget.
BucketPlan = list[Bucket]


def plan_buckets(
    budget: int,
    base_size: int | Sequence[int] | None = None,
    rule: str = "article",
    max_frames: int = BASE_NUM_FRAMES,
    batch_size: int | None = None,
    constant_tokens: bool = False,
    num_ratios: int = 40,
    min_ratio: float = 0.25,
    max_ratio: float = 4.0,
    multiple: int = 16,
) -> BucketPlan:
    """All bucket shapes of one budget, with their frame counts and batch sizes.

    Args:
        budget: token budget, e.g. 13312.
        base_size: square side(s) the aspect-ratio buckets are built around; several sides mix
            resolutions inside the budget (e.g. ``(512, 768, 1024)`` at 13312 gives the
            article's table on the squares). Default: ``budget_side(budget)`` rounded to
            ``multiple`` (512 for 13312).
        rule: frame rule of ``frames_for_budget``.
        max_frames: frame cap (4k+1).
        batch_size: samples per batch (default 1).
        constant_tokens: scale batch sizes so tokens per step stay about ``batch_size * budget``:
            ``batch = max(1, floor(batch_size * budget / tokens))``.
        num_ratios: ratios per base size (40).
        min_ratio: smallest h/w (0.25).
        max_ratio: largest h/w (4.0).
        multiple: side multiple (16).

    Returns:
        Buckets sorted by (base size, ratio); a shape shared by two base sizes appears once.
    """
    if batch_size is None:
        batch_size = 1
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    if base_size is None:
        bases: tuple[int, ...] = (_snap(float(budget_side(budget)), multiple),)
    elif isinstance(base_size, int):
        bases = (base_size,)
    else:
        bases = tuple(base_size)
    plan: BucketPlan = []
    seen: set[tuple[int, int]] = set()
    for base in bases:
        shapes = aspect_ratio_buckets(base, num_ratios, min_ratio, max_ratio, multiple)
        for height, width in shapes.values():
            if (height, width) in seen:
                continue
            seen.add((height, width))
            frames = frames_for_budget(height, width, budget, rule, max_frames)
            tokens = num_tokens(height, width, frames)
            batch = max(1, batch_size * budget // tokens) if constant_tokens else batch_size
            plan.append(Bucket(height, width, frames, batch, tokens))
    return plan


def bucket_for(height: int, width: int, plan: Sequence[Bucket]) -> Bucket:
    """The plan's bucket for a source clip: nearest ratio (log space), then nearest area.

    Args:
        height: source height in pixels.
        width: source width in pixels.
        plan: buckets from ``plan_buckets``.
    """
    if not plan:
        raise ValueError("empty plan; build one with plan_buckets(budget)")
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive (got {height}x{width})")
    log_ratio, log_area = math.log(height / width), math.log(height * width)

    def distance(b: Bucket) -> tuple[float, float]:
        return (
            round(abs(math.log(b.ratio) - log_ratio), 9),
            abs(math.log(b.height * b.width) - log_area),
        )

    return min(plan, key=distance)


def plan_table(plan: Sequence[Bucket]) -> str:
    """Render a plan as a markdown table (one row per bucket).

    Args:
        plan: buckets from ``plan_buckets``.

    Returns:
        A markdown string with columns height, width, h/w, frames, latent frames, tokens, batch
        and tokens per step.
    """
    head = "| height | width | h/w | frames | latent frames | tokens | batch | tokens/step |"
    rows = [head, "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for b in plan:
        rows.append(
            f"| {b.height} | {b.width} | {b.ratio:.3f} | {b.num_frames} | "
            f"{latent_frames(b.num_frames)} | {b.tokens} | {b.batch_size} | "
            f"{b.tokens * b.batch_size} |"
        )
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------
# Batch sampler
# ---------------------------------------------------------------------------------------------


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices that never mix bucket keys; seeded, distributed, resumable.

    Each epoch (seed ``seed + epoch``): shuffle the indices inside every bucket, cut them into
    batches of that bucket's size, shuffle the order of all batches, then deal the global list to
    ranks round-robin (rank r takes batches r, r + world_size, ...). Every rank gets the same
    count: with ``drop_last=True`` partial batches are dropped and the global list truncated to a
    multiple of ``world_size``; with ``drop_last=False`` partial batches are kept and the list is
    padded by repeating its first batches (as ``DistributedSampler`` pads), so with one rank every
    index appears exactly once per epoch.

    Epochs: after the last batch of an epoch the sampler moves to the next epoch by itself, so a
    plain ``for batch in sampler`` twice gives two different epochs. ``set_epoch(e)`` jumps to the
    start of epoch ``e`` (it keeps the position when ``e`` is already the current epoch, so a
    loop that calls ``set_epoch`` after ``load_state_dict`` still resumes mid-epoch). With
    ``infinite=True`` one iterator runs through the epochs without end (``len`` stays the number
    of batches per epoch).

    Resume: ``state_dict()`` is ``{"epoch", "batches_yielded", "seed"}`` for this rank;
    ``load_state_dict`` makes the next iteration yield exactly the remaining batches of that
    epoch, then go on with the next epochs. A ``DataLoader`` with workers prefetches batches, so
    the sampler's count runs ahead of the training step; a loop that wants an exact resume can
    save its own ``{"epoch": e, "batches_yielded": steps_done_in_epoch, "seed": seed}`` instead.

    Args:
        bucket_of: one hashable bucket key per dataset index, e.g. ``Bucket.key`` = (h, w, f).
        batch_size: one batch size for all buckets or ``{key: batch size}`` covering every key.
        seed: base seed; epoch e shuffles with ``seed + e``.
        rank: this process's rank in ``[0, world_size)``.
        world_size: number of processes.
        drop_last: drop partial batches and truncate (True) or keep and pad (False).
        shuffle: shuffle inside buckets and the batch order (False: dataset order, buckets in
            order of first appearance).
        infinite: iterate through epochs forever.
    """

    def __init__(
        self,
        bucket_of: Sequence[Hashable],
        batch_size: int | Mapping[Hashable, int],
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
        shuffle: bool = True,
        infinite: bool = False,
    ) -> None:
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need 0 <= rank < world_size (got rank {rank}, world_size {world_size})"
            )
        # Buckets in order of first appearance: deterministic without sorting arbitrary keys.
        self.bucket_of = list(bucket_of)
        groups: dict[Hashable, list[int]] = {}
        for index, key in enumerate(self.bucket_of):
            groups.setdefault(key, []).append(index)
        sizes: dict[Hashable, int] = {}
        for key in groups:
            size = batch_size.get(key) if isinstance(batch_size, Mapping) else batch_size
            if size is None:
                raise ValueError(f"batch_size mapping has no entry for bucket {key!r}; add it")
            if int(size) < 1:
                raise ValueError(f"batch size for bucket {key!r} must be >= 1 (got {size})")
            sizes[key] = int(size)
        self.groups = groups
        self.batch_sizes = sizes
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.infinite = infinite
        self.epoch = 0
        self.batches_yielded = 0

    # -- the epoch's batches (pure functions of the epoch) ------------------------------------

    def _num_global_batches(self) -> int:
        total = 0
        for key, indices in self.groups.items():
            full, rest = divmod(len(indices), self.batch_sizes[key])
            total += full + (1 if rest and not self.drop_last else 0)
        return total

    def __len__(self) -> int:
        """Batches this rank yields per epoch."""
        total = self._num_global_batches()
        if self.drop_last:
            return total // self.world_size
        return -(-total // self.world_size)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The batches this rank gets in ``epoch``, in order (does not move the sampler).

        Args:
            epoch: epoch number (>= 0).
        """
        rng = random.Random(self.seed + epoch)
        batches: list[list[int]] = []
        for key, indices in self.groups.items():
            order = list(indices)
            if self.shuffle:
                rng.shuffle(order)
            size = self.batch_sizes[key]
            for start in range(0, len(order), size):
                batch = order[start : start + size]
                if len(batch) == size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        per_rank = len(self)
        needed = per_rank * self.world_size
        if needed > len(batches):  # drop_last=False: pad by repeating from the start
            batches = batches + [batches[i % len(batches)] for i in range(needed - len(batches))]
        return batches[:needed][self.rank :: self.world_size]

    # -- iteration and state -----------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Go to the start of ``epoch`` (no-op on the position if it is the current epoch).

        Args:
            epoch: epoch number (>= 0).
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0 (got {epoch})")
        if epoch != self.epoch:
            self.epoch = epoch
            self.batches_yielded = 0

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch = len(self)
        if per_epoch == 0 and not self.infinite:
            return
        if per_epoch == 0:
            raise ValueError(
                "infinite sampler has no batch to yield (every bucket smaller than its batch "
                "size, or fewer batches than ranks); lower batch_size or use drop_last=False"
            )
        while True:
            if self.batches_yielded >= per_epoch:  # a finished epoch: start the next one
                self.epoch += 1
                self.batches_yielded = 0
            batches = self.epoch_batches(self.epoch)
            while self.batches_yielded < per_epoch:
                batch = batches[self.batches_yielded]
                self.batches_yielded += 1
                yield batch
            if not self.infinite:
                self.epoch += 1
                self.batches_yielded = 0
                return

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "batches_yielded", "seed"}``: where the next batch comes from."""
        return {"epoch": self.epoch, "batches_yielded": self.batches_yielded, "seed": self.seed}

    def load_state_dict(self, state_dict: Mapping[str, int]) -> None:
        """Resume from ``state_dict()``: the next iteration yields the rest of that epoch.

        Args:
            state_dict: ``{"epoch": int >= 0, "batches_yielded": 0..len(self), "seed": int}``;
                the seed must equal this sampler's.
        """
        if not isinstance(state_dict, Mapping):
            raise ValueError(
                "sampler state must be a mapping from state_dict() "
                f"(got {type(state_dict).__name__})"
            )
        expected = {"epoch", "batches_yielded", "seed"}
        if set(state_dict) != expected:
            raise ValueError(
                f"sampler state needs exactly the keys {sorted(expected)} "
                f"(got {sorted(state_dict)}); pass the dict from BucketBatchSampler.state_dict()"
            )
        values = {k: state_dict[k] for k in expected}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"sampler state {key!r} must be an int (got {value!r})")
        if values["seed"] != self.seed:
            raise ValueError(
                f"sampler state was saved with seed {values['seed']} but this sampler has seed "
                f"{self.seed}; build the sampler with seed={values['seed']}"
            )
        if values["epoch"] < 0 or not 0 <= values["batches_yielded"] <= len(self):
            raise ValueError(
                f"sampler state out of range (epoch {values['epoch']}, batches_yielded "
                f"{values['batches_yielded']} of {len(self)} per epoch); was it saved with "
                "another dataset, batch size or world size?"
            )
        self.epoch = values["epoch"]
        self.batches_yielded = values["batches_yielded"]


def sampler_statistics(
    sampler: BucketBatchSampler, num_batches: int | None = None
) -> dict[Hashable, dict[str, int]]:
    """Batches and samples per bucket key the sampler will yield next (state untouched).

    Args:
        sampler: a ``BucketBatchSampler``.
        num_batches: how many upcoming batches to count, across epochs if needed (default: one
            epoch's worth, ``len(sampler)``).

    Returns:
        ``{key: {"batches": n, "samples": m}}`` in order of first appearance.
    """
    per_epoch = len(sampler)
    num_batches = per_epoch if num_batches is None else num_batches
    if num_batches < 0:
        raise ValueError(f"num_batches must be >= 0 (got {num_batches})")
    if num_batches and not per_epoch:
        raise ValueError("the sampler yields no batch per epoch; lower batch_size or drop_last")
    keys = [k for k in sampler.groups]
    stats: dict[Hashable, dict[str, int]] = {k: {"batches": 0, "samples": 0} for k in keys}
    epoch, position, counted = sampler.epoch, sampler.batches_yielded, 0
    while counted < num_batches:
        if position >= per_epoch:
            epoch, position = epoch + 1, 0
        batches = sampler.epoch_batches(epoch)
        for batch in batches[position : position + num_batches - counted]:
            key = sampler.bucket_of[batch[0]]
            stats[key]["batches"] += 1
            stats[key]["samples"] += len(batch)
            counted += 1
        position = per_epoch
    return stats

