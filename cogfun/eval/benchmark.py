"""The toy-world benchmark: every mode of a pipeline measured on held-out prompts, seeds and photos.

``evaluate(pipe, EvalConfig(...))`` runs the subsets below and returns flat metrics (``"t2v/colour_acc"``)
plus one record per generated item, ready for ``metrics.json`` (issue 5, item 3). Subsets:

=============  ====================================================================================
``vae``        encode -> decode of held-out toy clips with the pipeline's VAE: ``vae/psnr``, over the
               object's pixels ``vae/object_psnr``, and the detector's scores on the reconstructions
               (``vae/shape_acc``...: the ceiling of a generator's).
``i2v``        image-to-video; start image = frame 0 of a held-out clip, prompt = its caption:
               ``i2v/first_frame_psnr`` and temporal smoothness against that clip.
``start_end``  start + end image (frames 0 and F-1 of the clip): ``start_end/last_frame_psnr`` too.
``t2v``        text-to-video on held-out shape prompts (plain backgrounds); object present, colour /
               shape / motion direction accuracy by :func:`cogfun.eval.toy_detector.score_against_caption`.
``inpaint``    a box around the object's whole track regenerated from the caption: ``kept_psnr`` outside
               the box, ``object_in_hole_acc`` (the named colour found, centred inside the box).
``long``       ``pipe.long_video`` with small segments: seam continuity (:mod:`.metrics`).
``unseen``     ``i2v`` and ``t2v`` at ``unseen_size`` (a resolution never trained on) for every
               positional-embedding mode (``pipe.transformer.set_pos_embed_mode``), each also as a
               ratio to the same prompts at the trained size (``..._vs_trained``).
``photos``     image-to-video pans over :data:`cogfun.data.toy.HELD_OUT_PHOTOS` (never in training).
=============  ====================================================================================

The clips of ``vae``, ``i2v``, ``start_end`` and ``inpaint`` come from the config's ``world``: ``"plain"``
(default; shapes over plain backgrounds, the default model's world, balanced by :func:`held_out_shape_specs`
with seed ``prompt_seed``) or ``"mixed"`` (``sample_specs``: pans and photo backgrounds too). On shape clips
``i2v`` and ``start_end`` also read the generated object: ``last_present_acc`` (the object, in its colour,
still in the last frame) and ``direction_acc`` (moving the caption's way). Every record that reads an object
also says what the detector saw (``detected_colour``, ``detected_shape``, ``detected_direction``, ``colour_error``,
``seen_frames``, ``area_ratio``, ``displacement``: :func:`~cogfun.eval.toy_detector.describe_object`), so a failure
can be told apart: no object, a faint one, a flood, a speck, an object that fades, a wrong word, a shared drift.

Held out, and how:
- **Prompts.** Training draws specs with ``sample_specs(n, seed)`` and small seeds (0, 1, ...). The
  benchmark draws with ``prompt_seed >= 10_000`` (enforced): ``i2v``/``start_end``/``vae`` use
  ``sample_specs(num_prompts, prompt_seed)`` (shapes and pans over training photos: new instances,
  i.e. new sizes, speeds, positions and crops); ``t2v`` uses :func:`held_out_shape_specs`, an explicit
  list balanced over colours, shapes and directions (seed ``prompt_seed + 1``). With 360 captionable
  shape combinations every caption may also occur in training: held out are the *instances*, not
  the words. Clips are rendered with ``clip_seed(prompt_seed + k, index)``.
- **Seeds.** Generation noise comes from a generator on the pipeline's device seeded with ``s`` for
  ``s`` in ``seeds`` (default 10_000, 10_001), one per item: a run is deterministic for its config
  and device (CPU and CUDA streams differ).
- **Photos.** ``photos`` pans over ``coffee`` and ``rocket``, which ``sample_specs`` never uses by
  default (``TRAIN_PHOTOS``).

Reading the numbers: kept frames pass through the VAE, so ``vae/first_frame_psnr`` bounds what
``i2v/first_frame_psnr`` can reach. ``long`` uses the first ``t2v`` prompts.

Aggregation: PSNRs and accuracies are means over items; smoothness ratios are *ratios of means*
(sum over items of the generated value over the sum of the reference's), because a still reference
has zero change and a per-item ratio would be infinite.

Suites (:data:`EVAL_SUITES`): ``"full"`` (the published benchmark), ``"quick"`` (a few prompts, for a
test against committed results of the trained checkpoint: :func:`evaluate_suite`), ``"smoke"`` (tiny
sizes, any random pipeline). Overrides are ``key=value`` strings checked against the field types.
"""

from __future__ import annotations

import dataclasses
import math
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from ..data.toy import (
    COLOURS,
    DIRECTIONS,
    HELD_OUT_PHOTOS,
    PHOTO_PREFIX,
    PHOTOS,
    PLAIN_BACKGROUNDS,
    SHAPES,
    ToyClipSpec,
    caption,
    clip_seed,
    render_clip,
    sample_specs,
)
from ..models.positional_embeddings import POS_EMBED_MODES
from . import metrics as M
from .toy_detector import describe_object, detect_toy_object, score_against_caption

EVAL_SUBSETS = ("vae", "i2v", "start_end", "t2v", "inpaint", "long", "unseen", "photos")
EVAL_WORLDS = ("plain", "mixed")
#: Lowest prompt seed of the benchmark: training data uses seeds below it.
MIN_EVAL_SEED = 10_000
#: Targets of issues 5 and 11 (benchmarks, not tests): metric -> lowest acceptable value.
TARGETS: dict[str, float] = {
    "vae/psnr": 30.0,
    "i2v/first_frame_psnr": 28.0,
    "i2v/last_present_acc": 0.9,
    "i2v/direction_acc": 0.8,
    "start_end/last_frame_psnr": 25.0,
    "t2v/present_acc": 0.95,
    "t2v/colour_acc": 0.9,
    "t2v/shape_acc": 0.8,
    "t2v/direction_acc": 0.8,
    "inpaint/kept_psnr": 28.0,
    "inpaint/object_in_hole_acc": 0.8,
    # "interpolate" within 10 % of the trained resolution's scores
    "unseen/interpolate/i2v/first_frame_psnr_vs_trained": 0.9,
    "unseen/interpolate/t2v/colour_acc_vs_trained": 0.9,
    "unseen/interpolate/t2v/direction_acc_vs_trained": 0.9,
}


# ================================================================================================
#                                             Config
# ================================================================================================


def _check_subset(key: str, values: tuple, allowed: tuple) -> None:
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"{key} must be a non-empty list from {list(allowed)} (got {list(values)})")


@dataclass(frozen=True)
class EvalConfig:
    """Everything a benchmark run depends on (saved with its results).

    Args:
        name: suite name, recorded in the run folder's name.
        subsets: which of :data:`EVAL_SUBSETS` to run.
        prompt_seed: seed of the held-out prompts and clips (>= 10_000; training uses smaller).
        num_prompts: held-out prompts of ``vae``, ``i2v``, ``start_end`` and ``t2v``.
        seeds: generation seeds; every prompt is generated once per seed.
        height, width: eval size (multiples of 16); None = the transformer's sample size.
        num_frames: frames per clip (4k+1).
        steps, guidance, sampler: denoising steps, classifier-free guidance, sampler name.
        guidance_rescale: the pipeline's ``guidance_rescale`` in [0, 1] (0: plain guidance).
        unseen_size: ``(height, width)`` never trained on, for the ``unseen`` subset.
        unseen_num_prompts: the first this many prompts of ``i2v`` and ``t2v`` are rerun there.
        pos_embed_modes: sincos modes compared at ``unseen_size`` (RoPE models have one: "rope").
        long_num_prompts: the first this many ``t2v`` prompts make long videos.
        long_num_frames, long_segment_frames, long_overlap: the long videos' plan (any length;
            segments 4k+1, see ``cogfun.pipelines.plan_segments``).
        world: clips of ``vae`` / ``i2v`` / ``start_end`` / ``inpaint``: ``"plain"`` (shapes over plain
            backgrounds) or ``"mixed"`` (also pans and photo backgrounds).
        photos: held-out photos of the ``photos`` subset.
        photo_directions: pan directions over each photo; photo_speed: pan speed.
    """

    name: str = "full"
    subsets: tuple[str, ...] = EVAL_SUBSETS
    prompt_seed: int = MIN_EVAL_SEED
    num_prompts: int = 48
    seeds: tuple[int, ...] = (10_000, 10_001)
    height: int | None = None
    width: int | None = None
    num_frames: int = 17
    steps: int = 25
    guidance: float = 6.0
    guidance_rescale: float = 0.0
    sampler: str = "ddim"
    unseen_size: tuple[int, int] = (144, 144)
    unseen_num_prompts: int = 8
    pos_embed_modes: tuple[str, ...] = POS_EMBED_MODES
    long_num_prompts: int = 2
    long_num_frames: int = 41
    long_segment_frames: int = 17
    long_overlap: int = 4
    world: str = "plain"
    photos: tuple[str, ...] = HELD_OUT_PHOTOS
    photo_directions: tuple[str, ...] = ("left", "right", "up", "down")
    photo_speed: float = 0.5

    def __post_init__(self) -> None:
        _check_subset("subsets", self.subsets, EVAL_SUBSETS)
        _check_subset("pos_embed_modes", self.pos_embed_modes, POS_EMBED_MODES)
        _check_subset("photos", self.photos, tuple(PHOTOS))
        _check_subset("photo_directions", self.photo_directions, DIRECTIONS)
        if self.world not in EVAL_WORLDS:
            raise ValueError(f"world must be one of {list(EVAL_WORLDS)} (got {self.world!r})")
        if self.prompt_seed < MIN_EVAL_SEED:
            raise ValueError(f"prompt_seed must be >= {MIN_EVAL_SEED} so that held-out prompts never match "
                             f"training data (got {self.prompt_seed}); try {MIN_EVAL_SEED}")
        if not self.seeds:
            raise ValueError("seeds must name at least one generation seed, e.g. seeds=[10000]")
        for key in ("num_prompts", "steps", "unseen_num_prompts", "long_num_prompts"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1 (got {getattr(self, key)})")
        for key in ("num_frames", "long_segment_frames"):
            value = getattr(self, key)
            if value < 5 or (value - 1) % 4:
                raise ValueError(f"{key} must be 4k+1 and >= 5 (got {value}); try {max(5, (value - 1) // 4 * 4 + 1)}")
        from ..pipelines.long_video import plan_segments
        from ..pipelines.samplers import SAMPLERS

        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)} (got {self.sampler!r})")
        plan_segments(self.long_num_frames, self.long_segment_frames, self.long_overlap)  # raises early
        sizes = {"height": self.height, "width": self.width, "unseen_size": self.unseen_size}
        for key, value in sizes.items():
            for side in (value if isinstance(value, tuple) else (value,)):
                if side is not None and (side < 16 or side % 16):
                    fix = max(16, round(side / 16) * 16)
                    raise ValueError(f"{key} must be multiples of 16 (got {value}); try {fix}")
        if (self.height is None) != (self.width is None):
            raise ValueError("give both height and width, or neither (the transformer's sample size)")
        if (self.height, self.width) == tuple(self.unseen_size):
            raise ValueError(f"unseen_size {self.unseen_size} equals the eval size; pick a resolution the model "
                             "was never trained on")
        if not 0 <= self.guidance_rescale <= 1:
            raise ValueError(f"guidance_rescale must be in [0, 1] (got {self.guidance_rescale}); 0 is plain guidance")
        if not 0 < self.photo_speed <= 1:
            raise ValueError(f"photo_speed must be in (0, 1] (got {self.photo_speed})")


#: Named suites. "full" is the published benchmark (24 prompts x 2 seeds = 48 items per subset, about 15 minutes
#: on a 2-core CPU; its unseen 96x96 is none of the toy recipe's sizes, which tests/test_toy_model.py checks);
#: "quick" is the subset a test compares against committed results of the trained toy checkpoint (generations at
#: 64x96x17, 10 steps; the unseen size is the cheap 48x48, also not trained); "smoke" runs in seconds with any
#: random pipeline at 32x32.
EVAL_SUITES: dict[str, EvalConfig] = {
    "full": EvalConfig(num_prompts=24, unseen_size=(96, 96)),
    "quick": EvalConfig(
        name="quick", num_prompts=2, seeds=(10_000,), num_frames=17, steps=10, unseen_size=(48, 48),
        unseen_num_prompts=1, pos_embed_modes=("interpolate", "extrapolate"), long_num_prompts=1,
        long_num_frames=14, long_segment_frames=9, long_overlap=4, photo_directions=("left",),
    ),
    "smoke": EvalConfig(
        name="smoke", num_prompts=2, seeds=(10_000,), height=32, width=32, num_frames=5, steps=1,
        unseen_size=(48, 48), unseen_num_prompts=1, long_num_prompts=1, long_num_frames=9,
        long_segment_frames=5, long_overlap=2, photo_directions=("left",),
    ),
}


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the type ``hint`` (lists become tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), key)
    if origin is tuple:
        if isinstance(value, (str, int, float)) and len(args) == 2 and args[1] is Ellipsis:
            value = [value]  # subsets=vae means subsets=[vae]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list (got {value!r})")
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            raise ValueError(f"{key} must have {len(items)} items (got {value!r})")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, items)))
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is str and not isinstance(value, (list, dict, bool)) and value is not None:
        return str(value)
    raise ValueError(f"{key} must be {getattr(hint, '__name__', hint)} (got {value!r})")


def config_from_dict(values: dict[str, Any], base: EvalConfig | None = None) -> EvalConfig:
    """An :class:`EvalConfig` from field values (type-checked; unknown keys raise), over ``base``."""
    hints = typing.get_type_hints(EvalConfig)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(f"unknown eval config keys {unknown}; valid keys: {', '.join(hints)}")
    typed = {k: _coerce(v, hints[k], k) for k, v in values.items()}
    return dataclasses.replace(base or EvalConfig(), **typed)


def config_to_dict(config: EvalConfig) -> dict[str, Any]:
    """Plain JSON-ready dict of a config (tuples as lists)."""
    return {f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v
            for f in dataclasses.fields(config)}


def apply_overrides(config: EvalConfig, overrides: list[str] | tuple[str, ...]) -> EvalConfig:
    """A copy of ``config`` with ``key=value`` overrides (values parsed as YAML: ``seeds=[1, 2]``,
    ``subsets=[vae, t2v]``, ``height=null``), each checked against its field's type."""
    values = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value, e.g. num_prompts=4")
        key, text = item.split("=", 1)
        values[key.strip()] = yaml.safe_load(text) if text.strip() else ""
    return config_from_dict(values, base=config)


def resolve_config(suite: str | Path | EvalConfig = "full", overrides: list[str] | tuple[str, ...] = ()) -> EvalConfig:
    """A suite name from :data:`EVAL_SUITES`, a YAML/JSON file of fields, or a config, plus overrides."""
    if isinstance(suite, EvalConfig):
        config = suite
    elif str(suite) in EVAL_SUITES:
        config = EVAL_SUITES[str(suite)]
    elif Path(suite).is_file():
        values = yaml.safe_load(Path(suite).read_text()) or {}
        values.setdefault("name", Path(suite).stem)
        config = config_from_dict(values)
    else:
        raise ValueError(f"unknown eval suite {suite!r}; use one of {list(EVAL_SUITES)} or a YAML file of "
                         "EvalConfig fields")
    return apply_overrides(config, overrides)


# ================================================================================================
#                                      Held-out prompts and clips
# ================================================================================================


@dataclass(frozen=True)
class HeldOutClip:
    """One held-out item: what it shows (``spec``) and its rendering seed (``render_seed``)."""

    spec: ToyClipSpec
    render_seed: int

    @property
    def caption(self) -> str:
        return caption(self.spec)

    def render(self, height: int, width: int, num_frames: int) -> np.ndarray:
        """The ground-truth clip, float32 ``(F, H, W, 3)`` in [0, 1]."""
        return render_clip(self.spec, height, width, num_frames, self.render_seed)


def held_out_clips(n: int, seed: int = MIN_EVAL_SEED) -> list[HeldOutClip]:
    """``n`` held-out clips of every kind: ``sample_specs(n, seed)`` with ``clip_seed(seed, i)``."""
    return [HeldOutClip(s, clip_seed(seed, i)) for i, s in enumerate(sample_specs(n, seed))]


def held_out_shape_specs(n: int, seed: int = MIN_EVAL_SEED + 1) -> list[HeldOutClip]:
    """``n`` shape clips on plain backgrounds, balanced over colours, shapes and directions.

    Each factor cycles through its own seeded shuffle, so with ``n = 60`` every colour appears 10
    times, every shape 15 and every direction 12 (accuracies are then not skewed by one easy
    colour). Sizes in [0.25, 0.4] and speeds in [0.6, 1.0], inside the training ranges, so that
    the object and its motion are visible at small sizes.
    """
    rng = np.random.default_rng(seed)
    factors = [rng.permutation(len(values)) for values in (COLOURS, SHAPES, DIRECTIONS, PLAIN_BACKGROUNDS)]
    backgrounds = tuple(PLAIN_BACKGROUNDS)
    clips = []
    for i in range(n):
        colour, shape, direction, background = (int(f[i % len(f)]) for f in factors)
        spec = ToyClipSpec("shape", DIRECTIONS[direction], backgrounds[background], SHAPES[shape],
                           COLOURS[colour], size=float(rng.uniform(0.25, 0.4)), speed=float(rng.uniform(0.6, 1.0)))
        clips.append(HeldOutClip(spec, clip_seed(seed, i)))
    return clips


def held_out_photo_clips(photos=HELD_OUT_PHOTOS, directions=("left", "right", "up", "down"),
                         speed: float = 0.5, seed: int = MIN_EVAL_SEED + 2) -> list[HeldOutClip]:
    """Camera pans over photos never seen in training, one per ``(photo, direction)``."""
    specs = [ToyClipSpec("pan", d, PHOTO_PREFIX + p, speed=speed) for p in photos for d in directions]
    return [HeldOutClip(s, clip_seed(seed, i)) for i, s in enumerate(specs)]


# ================================================================================================
#                                            Running
# ================================================================================================


def eval_size(pipe: Any, config: EvalConfig) -> tuple[int, int]:
    """``(height, width)`` of the config, or the transformer's sample size in pixels."""
    if config.height is not None:
        return config.height, config.width
    tc, scale = pipe.transformer.config, pipe.vae_scale_factor_spatial
    return tc.sample_height * scale, tc.sample_width * scale


def _generator(pipe: Any, seed: int) -> torch.Generator:
    """A generator on the pipeline's device (the noise augmentation of kept frames draws there)."""
    return torch.Generator(device=pipe._execution_device).manual_seed(int(seed))


def _to_unit(pixels: torch.Tensor) -> np.ndarray:
    """``(1, 3, F, H, W)`` in [-1, 1] -> ``(F, H, W, 3)`` float32 in [0, 1]."""
    return ((pixels[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 3, 0).cpu().numpy()


class _Runner:
    """Generation calls with the config's settings; one generator per item (deterministic)."""

    def __init__(self, pipe: Any, config: EvalConfig):
        self.pipe, self.config = pipe, config
        self.common = dict(num_inference_steps=config.steps, guidance_scale=config.guidance,
                           guidance_rescale=config.guidance_rescale, output_type="np")

    def image_to_video(self, clip_frames: np.ndarray, prompt: str, seed: int, end: bool) -> np.ndarray:
        num_frames, height, width = clip_frames.shape[:3]
        out = self.pipe.image_to_video(
            prompt, clip_frames[0], end_image=clip_frames[-1] if end else None, num_frames=num_frames,
            height=height, width=width, generator=_generator(self.pipe, seed), **self.common,
        )
        return out.frames[0]  # (F, H, W, 3)

    def text_to_video(self, prompt: str, height: int, width: int, num_frames: int, seed: int) -> np.ndarray:
        out = self.pipe.text_to_video(prompt, height=height, width=width, num_frames=num_frames,
                                      generator=_generator(self.pipe, seed), **self.common)
        return out.frames[0]


def _record(subset: str, index: int, clip: HeldOutClip, seed: int | None, frames_shape, **values) -> dict:
    num_frames, height, width = (int(v) for v in frames_shape[:3])
    return dict(subset=subset, index=index, seed=seed, caption=clip.caption, spec=clip.spec.to_dict(),
                render_seed=clip.render_seed, height=height, width=width, num_frames=num_frames, **values)


def _items(clips: list[HeldOutClip], seeds: tuple[int, ...]) -> list[tuple[int, HeldOutClip, int]]:
    return [(i, clip, seed) for i, clip in enumerate(clips) for seed in seeds]


#: Pixels farther than this (RGB distance) from a plain background are the object's (``vae/object_psnr``).
OBJECT_PIXEL_CONTRAST = 0.3


def object_pixels(frames: np.ndarray, spec: ToyClipSpec) -> np.ndarray | None:
    """``(F, H, W)`` bool: the pixels of a rendered shape clip that differ from its plain background by more than
    :data:`OBJECT_PIXEL_CONTRAST` (the object, its anti-aliased rim left out); None for pans and photo backgrounds."""
    if spec.kind != "shape" or spec.photo:
        return None
    background = np.asarray(PLAIN_BACKGROUNDS[spec.background], np.float32)
    return np.linalg.norm(frames - background, axis=-1) > OBJECT_PIXEL_CONTRAST


def _run_vae(pipe, config, clips, size, bar) -> list[dict]:
    """Encode-decode round trips: PSNR of the clip, of its first frame and of its object's pixels, and the detector's
    scores on the reconstruction (what the VAE leaves a generator to reach: its shape accuracy is the ceiling of
    every generated clip's)."""
    records = []
    for index, clip in enumerate(clips):
        frames = clip.render(*size, config.num_frames)  # (F, H, W, 3)
        pixels = torch.from_numpy(frames).permute(3, 0, 1, 2)[None] * 2 - 1  # (1, 3, F, H, W)
        with torch.no_grad():
            recon = _to_unit(pipe.decode_latents(pipe.encode_video(pixels)))
        values = dict(psnr=M.psnr(recon, frames), first_frame_psnr=M.first_frame_psnr(recon, frames[0]))
        mask = object_pixels(frames, clip.spec)
        values["object_psnr"] = M.psnr(recon[mask], frames[mask]) if mask is not None and mask.any() else float("nan")
        values.update(_object_scores(recon, clip.spec, VAE_DETECTOR_KEYS))
        records.append(_record("vae", index, clip, None, frames.shape, **values))
        bar.update()
    return records


def _run_i2v(runner, config, clips, size, subset, end, bar, **extra) -> list[dict]:
    records = []
    for index, clip, seed in _items(clips, config.seeds):
        reference = clip.render(*size, config.num_frames)
        frames = runner.image_to_video(reference, clip.caption, seed, end)
        values = dict(first_frame_psnr=M.first_frame_psnr(frames, reference[0]))
        if end:
            values["last_frame_psnr"] = M.last_frame_psnr(frames, reference[-1])
        values.update(M.temporal_smoothness(frames, reference))
        values.update(_object_scores(frames, clip.spec))
        records.append(_record(subset, index, clip, seed, frames.shape, **extra, **values))
        bar.update()
    return records


def _object_scores(frames: np.ndarray, spec: ToyClipSpec, names: tuple[str, ...] | None = None) -> dict:
    """Detector scores of a generated clip (NaN for clips the detector cannot read: pans, photos), and what the
    detector read (:func:`~cogfun.eval.toy_detector.describe_object`: colour, shape, direction, area) to tell the
    failures apart. ``names``: the ``*_acc`` scores to keep (default all but ``all_acc``)."""
    names = names or ("present_acc", "last_present_acc", "colour_acc", "shape_acc", "direction_acc")
    if spec.kind != "shape" or spec.photo:
        return {k: float("nan") for k in names}
    found = detect_toy_object(frames)
    score = score_against_caption(frames, spec, found=found)
    return {**{k: float(score[k.replace("_acc", "_correct")]) for k in names},
            **describe_object(found, frames.shape[1:3], spec.size)}


def inpaint_box(clip: HeldOutClip, height: int, width: int, num_frames: int, pad: int = 2) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the box that covers the object over the whole clip (plus ``pad`` px)."""
    from ..data.toy import object_track_box

    return object_track_box(clip.spec, height, width, num_frames, clip.render_seed, pad)


def read_hole(frames: np.ndarray, box: tuple[int, int, int, int], colour: str) -> dict:
    """What the detector sees of an inpainted clip ``(F, H, W, 3)`` against its hole ``(top, bottom, left, right)``
    and the caption's colour: ``found``, ``colour``, ``right_colour``, ``seen`` (share of frames the object is
    seen in), ``inside`` (share of those with its centre in the box) and ``passed``, the benchmark's rule for
    ``object_in_hole_acc``: the right colour, seen in >= 75% of the frames, inside the box in >= 75% of those."""
    top, bottom, left, right = box
    found = detect_toy_object(frames)
    if not found["found"]:
        return dict(found=False, colour=None, right_colour=False, seen=0.0, inside=0.0, passed=False)
    cx, cy = found["centroids"][:, 0], found["centroids"][:, 1]
    seen = ~np.isnan(cx)
    within = (cx >= left) & (cx <= right) & (cy >= top) & (cy <= bottom)
    inside = float(within[seen].mean()) if seen.any() else 0.0
    right_colour = found["colour"] == colour
    return dict(found=True, colour=found["colour"], right_colour=bool(right_colour), seen=float(seen.mean()),
                inside=inside, passed=bool(right_colour and seen.mean() >= 0.75 and inside >= 0.75))


def _run_inpaint(runner, config, clips, size, bar) -> list[dict]:
    records = []
    for index, clip, seed in _items(clips, config.seeds):
        reference = clip.render(*size, config.num_frames)  # (F, H, W, 3)
        top, bottom, left, right = inpaint_box(clip, *size, config.num_frames)
        mask = np.zeros(size, np.float32)
        mask[top:bottom, left:right] = 1.0  # 1 = regenerate
        out = runner.pipe.inpaint(clip.caption, reference, mask, num_frames=config.num_frames, height=size[0],
                                  width=size[1], generator=_generator(runner.pipe, seed), **runner.common)
        frames = out.frames[0]
        keep = mask < 0.5
        kept_psnr = M.psnr(frames[:, keep], reference[:, keep]) if keep.any() else float("nan")
        hole = read_hole(frames, (top, bottom, left, right), clip.spec.colour)
        records.append(_record("inpaint", index, clip, seed, frames.shape, kept_psnr=kept_psnr,
                               object_in_hole_acc=float(hole["passed"]), box=[top, bottom, left, right]))
        bar.update()
    return records


def _run_t2v(runner, config, clips, size, subset, bar, **extra) -> list[dict]:
    records = []
    for index, clip, seed in _items(clips, config.seeds):
        frames = runner.text_to_video(clip.caption, *size, config.num_frames, seed)
        reference = clip.render(*size, config.num_frames)
        values = _object_scores(frames, clip.spec, T2V_KEYS + ("last_present_acc",))
        values.update(M.temporal_smoothness(frames, reference))
        records.append(_record(subset, index, clip, seed, frames.shape, **extra, **values))
        bar.update()
    return records


def _run_long(pipe, config, clips, size, bar) -> list[dict]:
    seams = M.long_video_seams(config.long_num_frames, config.long_segment_frames, config.long_overlap)
    records = []
    for index, clip, seed in _items(clips, config.seeds):
        frames = pipe.long_video(
            clip.caption, config.long_num_frames, segment_frames=config.long_segment_frames,
            overlap=config.long_overlap, height=size[0], width=size[1], generator=_generator(pipe, seed),
            num_inference_steps=config.steps, guidance_scale=config.guidance,
            guidance_rescale=config.guidance_rescale,
        )  # (F, H, W, 3)
        seam = M.seam_continuity(frames, seams)
        records.append(_record("long", index, clip, seed, frames.shape, seam_across=seam["across"],
                               seam_within=seam["within"], seam_ratio=seam["ratio"],
                               seams=[list(s) for s in seams]))
        bar.update()
    return records


# ------------------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------------------


def _defined(records: list[dict], key: str) -> list[float]:
    """The values of ``key`` over ``records``, leaving out missing and NaN ones."""
    return [r[key] for r in records if r.get(key) is not None and not math.isnan(r[key])]


def _mean(records: list[dict], key: str) -> float:
    values = _defined(records, key)
    return float(np.mean(values)) if values else float("nan")


def _standard_error(records: list[dict], key: str) -> float:
    """Standard error of the mean of ``key`` (sample std / sqrt(n)); NaN with fewer than two values. For a 0/1
    accuracy it is the binomial ``sqrt(p (1 - p) / (n - 1))``."""
    values = _defined(records, key)
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")


def _ratio_of_means(records: list[dict], key: str) -> float:
    generated, reference = _mean(records, key), _mean(records, f"{key}_ref")
    return generated / reference if reference > M.STATIC_EPS else float("nan")


def summarise(records: list[dict], prefix: str, keys: tuple[str, ...]) -> dict[str, float]:
    """Means of ``keys`` over ``records`` as ``{prefix/key: value}`` with their standard errors
    (``prefix/key_se``), plus smoothness ratios and ``n``.

    Args:
        records: per-item records of one subset (and mode).
        prefix: e.g. ``"i2v"`` or ``"unseen/interpolate/t2v"``.
        keys: per-item values to average (PSNRs, accuracies, seam values).
    """
    out = {}
    for k in keys:
        out[f"{prefix}/{k}"] = _mean(records, k)
        out[f"{prefix}/{k}_se"] = _standard_error(records, k)
    if records and "temporal_diff_ref" in records[0]:
        out[f"{prefix}/temporal_diff"] = _mean(records, "temporal_diff")
        out[f"{prefix}/temporal_diff_ratio"] = _ratio_of_means(records, "temporal_diff")
        out[f"{prefix}/jitter_ratio"] = _ratio_of_means(records, "jitter")
    out[f"{prefix}/n"] = len(records)
    return out


VAE_DETECTOR_KEYS = ("present_acc", "colour_acc", "shape_acc", "direction_acc")
VAE_KEYS = ("psnr", "first_frame_psnr", "object_psnr") + VAE_DETECTOR_KEYS
I2V_KEYS = ("first_frame_psnr", "last_present_acc", "direction_acc")
START_END_KEYS = ("first_frame_psnr", "last_frame_psnr", "last_present_acc")
T2V_KEYS = ("present_acc", "colour_acc", "shape_acc", "direction_acc", "all_acc")
INPAINT_KEYS = ("kept_psnr", "object_in_hole_acc")
COMPARED_TO_TRAINED = {"i2v": ("first_frame_psnr",), "t2v": ("colour_acc", "direction_acc", "all_acc")}


def _vs_trained(unseen: list[dict], trained: list[dict], task: str, prefix: str) -> dict[str, float]:
    """Unseen-size scores over trained-size scores of the very same prompts and seeds."""
    done = {(r["index"], r["seed"]) for r in unseen}
    same = [r for r in trained if (r["index"], r["seed"]) in done]
    out = {}
    for key in COMPARED_TO_TRAINED[task]:
        base = _mean(same, key)
        out[f"{prefix}/{key}_vs_trained"] = _mean(unseen, key) / base if base > 0 else float("nan")
    return out


# ------------------------------------------------------------------------------------------------
# The benchmark
# ------------------------------------------------------------------------------------------------


def evaluate(pipe: Any, config: EvalConfig = EvalConfig(), progress: bool = True) -> dict[str, Any]:
    """Run the benchmark subsets of ``config`` on ``pipe``; deterministic for a given config.

    The pipeline's sampler, positional-embedding mode and progress-bar setting are restored
    afterwards.

    Args:
        pipe: a :class:`~cogfun.pipelines.CogVideoXFunPipeline` (its modules in ``.eval()`` mode).
        config: what to run (:class:`EvalConfig`; default the ``"full"`` suite).
        progress: show one progress bar per subset.

    Returns:
        ``{"metrics": {"subset/metric": float, ...}, "errors": {"subset/mode": why}, "records": [per-item
        dicts], "config": dict, "seconds": {subset: float}, "size": [H, W]}``. ``errors`` names what could
        not be measured (a positional-embedding mode that cannot serve ``unseen_size``) instead of failing.
    """
    size = eval_size(pipe, config)
    if tuple(config.unseen_size) == size and "unseen" in config.subsets:
        raise ValueError(f"unseen_size {config.unseen_size} equals the eval size {size}; pick a resolution the "
                         "model was never trained on (unseen_size=[h, w])")
    transformer = pipe.transformer
    rope = bool(transformer.config.use_rotary_positional_embeddings)
    saved = (pipe.scheduler, transformer.config.pos_embed_mode, dict(getattr(pipe, "_progress_bar_config", {})))
    pipe.set_sampler(config.sampler)
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.text_encoder, pipe.vae, transformer):
        module.eval()

    if config.world == "plain":
        shared = held_out_shape_specs(config.num_prompts, config.prompt_seed)
    else:
        shared = held_out_clips(config.num_prompts, config.prompt_seed)
    shapes = held_out_shape_specs(config.num_prompts, config.prompt_seed + 1)
    photos = held_out_photo_clips(config.photos, config.photo_directions, config.photo_speed, config.prompt_seed + 2)
    runner = _Runner(pipe, config)
    num_seeds = len(config.seeds)
    modes = ("rope",) if rope else config.pos_embed_modes
    unseen_shared, unseen_shapes = shared[: config.unseen_num_prompts], shapes[: config.unseen_num_prompts]
    totals = {
        "vae": len(shared), "i2v": len(shared) * num_seeds, "start_end": len(shared) * num_seeds,
        "t2v": len(shapes) * num_seeds, "inpaint": len(shared) * num_seeds, "long": min(config.long_num_prompts, len(shapes)) * num_seeds,
        "unseen": len(modes) * (len(unseen_shared) + len(unseen_shapes)) * num_seeds,
        "photos": len(photos) * num_seeds,
    }

    metrics: dict[str, float] = {}
    errors: dict[str, str] = {}  # what could not be measured, and why (kept out of the numeric metrics)
    records: list[dict] = []
    seconds: dict[str, float] = {}
    by_subset: dict[str, list[dict]] = {}
    try:
        for subset in (s for s in EVAL_SUBSETS if s in config.subsets):
            start = time.perf_counter()
            with tqdm(total=totals[subset], desc=f"eval {subset}", disable=not progress) as bar:
                if subset == "vae":
                    new = _run_vae(pipe, config, shared, size, bar)
                    metrics.update(summarise(new, "vae", VAE_KEYS))
                    metrics["vae/psnr_min"] = float(min(r["psnr"] for r in new))
                elif subset == "i2v":
                    new = _run_i2v(runner, config, shared, size, "i2v", False, bar)
                    metrics.update(summarise(new, "i2v", I2V_KEYS))
                elif subset == "start_end":
                    new = _run_i2v(runner, config, shared, size, "start_end", True, bar)
                    metrics.update(summarise(new, "start_end", START_END_KEYS))
                elif subset == "t2v":
                    new = _run_t2v(runner, config, shapes, size, "t2v", bar)
                    metrics.update(summarise(new, "t2v", T2V_KEYS))
                elif subset == "inpaint":
                    shape_clips = [c for c in shared if c.spec.kind == "shape" and not c.spec.photo]
                    new = _run_inpaint(runner, config, shape_clips, size, bar)
                    metrics.update(summarise(new, "inpaint", INPAINT_KEYS))
                elif subset == "long":
                    new = _run_long(pipe, config, shapes[: config.long_num_prompts], size, bar)
                    metrics.update(summarise(new, "long", ("seam_ratio", "seam_across", "seam_within")))
                elif subset == "photos":
                    new = _run_i2v(runner, config, photos, size, "photos", False, bar)
                    metrics.update(summarise(new, "photos", ("first_frame_psnr",)))  # pans: no object to read
                else:  # unseen
                    new = []
                    for mode in modes:
                        if not rope:
                            transformer.set_pos_embed_mode(mode)
                        extra = dict(pos_embed_mode=mode)
                        try:
                            i2v = _run_i2v(runner, config, unseen_shared, config.unseen_size, "unseen", False,
                                           bar, task="i2v", **extra)
                            t2v = _run_t2v(runner, config, unseen_shapes, config.unseen_size, "unseen", bar,
                                           task="t2v", **extra)
                        except ValueError as error:  # e.g. "truncate" cannot serve a grid larger than its table
                            errors[f"unseen/{mode}"] = str(error)
                            continue
                        metrics.update(summarise(i2v, f"unseen/{mode}/i2v", I2V_KEYS))
                        metrics.update(summarise(t2v, f"unseen/{mode}/t2v", T2V_KEYS))
                        for task, items in (("i2v", i2v), ("t2v", t2v)):
                            if task in by_subset:
                                metrics.update(_vs_trained(items, by_subset[task], task, f"unseen/{mode}/{task}"))
                        new += i2v + t2v
            by_subset[subset] = new
            records += new
            seconds[subset] = round(time.perf_counter() - start, 2)
    finally:
        pipe.scheduler = saved[0]
        if not rope:
            transformer.set_pos_embed_mode(saved[1])
        pipe._progress_bar_config = saved[2]
    return dict(metrics=metrics, errors=errors, records=records, config=config_to_dict(config), seconds=seconds,
                size=list(size))


def evaluate_suite(pipe: Any, suite: str | Path | EvalConfig = "quick", overrides: list[str] | tuple[str, ...] = (),
                   progress: bool = False) -> dict[str, Any]:
    """Run a named suite (plus ``key=value`` overrides) deterministically; see :func:`evaluate`.

    The hook for a regression test of a trained checkpoint: run ``evaluate_suite(pipe, "quick")``
    and compare ``["metrics"]`` with committed numbers by :func:`compare_metrics`.
    """
    return evaluate(pipe, resolve_config(suite, overrides), progress=progress)


# ================================================================================================
#                                       Targets and comparisons
# ================================================================================================


def check_targets(metrics: dict[str, float], targets: dict[str, float] = TARGETS) -> dict[str, dict]:
    """Which targets the metrics meet: ``{metric: {"value", "target", "met", "gap"}}`` for measured ones.

    ``gap`` is ``value - target`` (negative = missed by that much).
    """
    out = {}
    for key, target in targets.items():
        value = metrics.get(key)
        if value is None or math.isnan(value):
            continue
        out[key] = dict(value=value, target=target, met=bool(value >= target), gap=value - target)
    return out


def compare_metrics(measured: dict[str, float], expected: dict[str, float | None], rtol: float = 0.02,
                    atol: float = 0.05) -> list[str]:
    """Differences between measured and expected metrics beyond ``atol + rtol * |expected|``.

    Args:
        measured: ``evaluate(...)["metrics"]``.
        expected: committed values (``None`` stands for ``nan``, as metrics JSON writes it).
        rtol, atol: tolerance; PSNRs in dB and accuracies in [0, 1] share it, so pass per-metric
            subsets when they need different ones.

    Returns:
        one message per mismatch (empty when everything agrees).
    """
    problems = []
    for key, want in expected.items():
        got = measured.get(key)
        if got is None and key not in measured:
            problems.append(f"{key}: missing (expected {want})")
            continue
        want_nan = want is None or (isinstance(want, float) and math.isnan(want))
        got_nan = got is None or (isinstance(got, float) and math.isnan(got))
        if want_nan or got_nan:
            if want_nan != got_nan:
                problems.append(f"{key}: got {got}, expected {want}")
        elif abs(got - want) > atol + rtol * abs(want):
            problems.append(f"{key}: got {got:.4g}, expected {want:.4g} (tolerance {atol} + {rtol} x |expected|)")
    return problems


_HEADLINE_ENDINGS = ("vae/psnr", "first_frame_psnr", "last_frame_psnr", "colour_acc", "shape_acc",
                     "direction_acc", "seam_ratio", "temporal_diff_ratio")


def headline(metrics: dict[str, float], targets: dict[str, float] = TARGETS) -> dict[str, float]:
    """The metrics a results table shows: those with targets, PSNRs, accuracies, seam and smoothness
    ratios (at the unseen size: first-frame PSNR and colour/direction accuracy per mode)."""
    out = {}
    for key, value in metrics.items():
        if key.startswith("unseen/"):
            keep = key.endswith(("i2v/first_frame_psnr", "t2v/colour_acc", "t2v/direction_acc"))
        else:
            keep = key.endswith(_HEADLINE_ENDINGS)
        if keep or key in targets:
            out[key] = value
            if f"{key}_se" in metrics:
                out[f"{key}_se"] = metrics[f"{key}_se"]
    return out


def format_table(metrics: dict[str, float], targets: dict[str, float] = TARGETS) -> str:
    """A markdown table of the metrics (counts left out) with their standard errors (a ``key_se`` metric is the
    ``s.e.`` column of ``key``'s row), targets and whether they are met."""

    def shown(value: float | None) -> str:
        return "nan" if value is None or math.isnan(value) else f"{value:.4g}"

    lines = ["| metric | value | s.e. | target | met |", "|---|---:|---:|---:|:---:|"]
    for key, value in metrics.items():
        if key.endswith("/n") or (key.endswith("_se") and key[:-3] in metrics):
            continue
        target = targets.get(key)
        se = shown(metrics[f"{key}_se"]) if f"{key}_se" in metrics else ""
        met = "" if target is None or shown(value) == "nan" else ("yes" if value >= target else "no")
        lines.append(f"| {key} | {shown(value)} | {se} | {'' if target is None else f'>= {target:g}'} | {met} |")
    return "\n".join(lines)
