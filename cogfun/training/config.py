"""Training configs: frozen dataclasses with typed ``key=value`` overrides and a YAML round trip.

One config holds every knob of a run, one greppable line each (nanoGPT style), and is saved
resolved into the run folder and into every checkpoint so a run can be rebuilt and resumed.
Defaults follow the reference recipe, VideoX-Fun ``scripts/cogvideox_fun/train.py`` (AdamW
lr 2e-5, weight decay 3e-2, grad-norm clip 0.05, text dropout 0.1, zeroed inpaint latents for
90% of the fully masked samples, LoRA rank 64 / alpha 32; docs/design.md 1.5); model sizes default
to the tiny CPU presets, so a YAML only states what differs.

Two configs, chosen by the YAML's ``kind``:

- ``TransformerTrainConfig`` (``kind: transformer``): the inpaint DiT on bucketed video.
- ``VAETrainConfig`` (``kind: vae``): the small CogVideoX VAE on random crops.

Overrides (``--set key=value``) are parsed as YAML scalars/lists and checked against the field's
type; unknown keys raise and name the valid ones::

    cfg = load_config("toy.yaml", ["max_steps=20", "stages=[[0, 320], [10, 640]]"])
    save_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..buckets import BUDGET_RULES, StageSchedule
from .random_masks import MASK_PROBABILITIES
from .loss import LOSS_WEIGHTINGS

__all__ = [
    "KINDS",
    "LORA_TARGET_MODULES",
    "LORA_TARGET_PRESETS",
    "LR_SCHEDULERS",
    "TrainConfig",
    "TransformerTrainConfig",
    "VAETrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "resolve_lora_targets",
    "load_config",
    "save_config",
]

#: LR schedules accepted (diffusers.optimization.get_scheduler names).
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
MIXED_PRECISION = ("no", "fp16", "bf16")
#: LoRA target presets: peft ``target_modules`` names (module path suffixes) of diffusers' CogVideoXBlock.
#:
#: - ``"qkv"``: what VideoX-Fun's recipe actually adapts. Its LoRA guide trains with
#:   ``--target_name "to_q,to_k,to_v,ff.0,ff.2" --use_peft_lora``; peft matches module paths by suffix and skips
#:   names that match nothing, and ``ff.0`` / ``ff.2`` name no module (the feed-forward's linears are
#:   ``ff.net.0.proj`` and ``ff.net.2``; ``ff.net.1`` is a Dropout), so only the attention projections train.
#: - ``"qkv-ff"``: the set that recipe names, spelled as the modules: attention projections and both
#:   feed-forward linears.
LORA_TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "qkv": ("to_q", "to_k", "to_v"),
    "qkv-ff": ("to_q", "to_k", "to_v", "ff.net.0.proj", "ff.net.2"),
}
#: The default preset: the reference's (``"qkv"``).
LORA_TARGET_MODULES = "qkv"


def resolve_lora_targets(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The module names of a ``lora_target_modules`` value: a ``LORA_TARGET_PRESETS`` name or a list of names.

    Raises:
        ValueError: an unknown preset name or an empty list.
    """
    if isinstance(value, str):
        if value not in LORA_TARGET_PRESETS:
            raise ValueError(
                f"lora_target_modules {value!r} is no preset; use one of {list(LORA_TARGET_PRESETS)} or a list "
                f"of module names, e.g. [to_q, to_k, to_v, ff.net.0.proj, ff.net.2]"
            )
        return LORA_TARGET_PRESETS[value]
    if not value:
        raise ValueError(f"lora_target_modules is empty; use one of {list(LORA_TARGET_PRESETS)} or module names")
    return tuple(value)


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Fields shared by every training run (run folder, data, optimiser, checkpoints).

    Args:
        kind: ``"transformer"`` or ``"vae"`` (set by the subclass).
        name: experiment name; runs go to ``output_dir/name/run_name``.
        output_dir: root folder of runs.
        run_name: folder of this run; None = a timestamp. An existing folder is only reused
            with ``--resume``.
        seed: seeds the model init (presets), the sampler and the training generator.
        metadata: metadata JSON list (``{"file_path", "text", "type", ...}``) of the data.
        data_root: folder ``file_path`` is relative to; None = the metadata file's folder.
        num_workers: DataLoader worker processes (0 = load in the training process).
        max_steps: optimiser steps of the run.
        batch_size: samples per rank per micro-batch (per bucket with ``constant_tokens``).
        gradient_accumulation_steps: micro-batches per optimiser step.
        learning_rate, adam_beta1, adam_beta2, adam_epsilon, weight_decay: AdamW.
        max_grad_norm: gradient-norm clip (the reference clips at 0.05).
        lr_scheduler: one of ``LR_SCHEDULERS``; ``lr_warmup_steps`` warm-up steps.
        mixed_precision: ``"no"``, ``"fp16"`` or ``"bf16"`` (accelerate autocast).
        cpu: force the CPU (``Accelerator(cpu=True)``).
        num_threads: torch intra-op threads during the run (None = torch's default). On a busy
            or small CPU, 1 is often much faster for toy sizes (threads spin against each other).
        gradient_checkpointing: recompute activations in the backward pass.
        use_ema: keep an exponential moving average of the trained weights; ``ema_decay``.
        checkpointing_steps: save a checkpoint every this many steps (and at the end).
        checkpoints_total_limit: keep at most this many checkpoints (None = all).
        record_batches: write the dataset indices of every batch per rank
            (``batches_rank{r}.jsonl``), to audit data order and sharding.
    """

    kind: str = "transformer"
    name: str = "toy"
    output_dir: str = "experiments/runs"
    run_name: str | None = None
    seed: int = 0
    # data
    metadata: str = ""
    data_root: str | None = None
    num_workers: int = 0
    # optimisation
    max_steps: int = 100
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 3e-2
    max_grad_norm: float = 0.05
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    mixed_precision: str = "no"
    cpu: bool = False
    num_threads: int | None = None
    gradient_checkpointing: bool = False
    use_ema: bool = False
    ema_decay: float = 0.9999
    # bookkeeping
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 3
    record_batches: bool = False

    def __post_init__(self) -> None:
        _check_choice("kind", self.kind, KINDS)
        _check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _check_choice("lr_scheduler", self.lr_scheduler, LR_SCHEDULERS)
        for key in ("max_steps", "batch_size", "gradient_accumulation_steps", "checkpointing_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1 (got {getattr(self, key)})")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ValueError(
                f"checkpoints_total_limit must be >= 1 or null (got {self.checkpoints_total_limit})"
            )
        if self.learning_rate <= 0 or self.max_grad_norm <= 0:
            raise ValueError("learning_rate and max_grad_norm must be > 0")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (got {self.ema_decay}); try 0.9999")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or null (got {self.num_threads})")
        if self.num_workers < 0 or self.lr_warmup_steps < 0:
            raise ValueError("num_workers and lr_warmup_steps must be >= 0")


@dataclass(frozen=True)
class TransformerTrainConfig(TrainConfig):
    """The inpaint DiT recipe (docs/design.md 1.5) on token-budget buckets (docs/design.md 1.4).

    Model sources (the first that is set wins):
        pretrained: a folder in the released layout (``transformer/ vae/ text_encoder/
            tokenizer/ scheduler/``); the transformer and every frozen part come from it.
        otherwise presets: ``transformer_preset`` (+ ``transformer_overrides``, init
            ``transformer_seed``), the VAE from ``vae_path`` (a ``save_pretrained`` folder, e.g.
            a VAE run's ``model/vae``) or ``vae_preset`` (init ``vae_seed``), and a toy T5: the
            tokenizer of the toy world's vocabulary and a tiny encoder of width
            ``text_encoder_width`` (None = the transformer's ``text_embed_dim``),
            ``text_encoder_layers`` layers, init ``text_encoder_seed``. All are saved into the
            run folder (``components/``) so a resume uses the very same frozen parts.

    Buckets:
        stages: ``((first_step, token_budget), ...)``, a ``StageSchedule``; each stage has its
            own bucket plan. Reference: ``((0, 13312), (7000, 29952), (13500, 53248))``.
        base_sizes: square sides the aspect-ratio buckets are built around (empty = the
            budget's own side, 512 for 13312).
        budget_rule: ``"article"``, ``"reference"`` or ``"tokens"`` (``frames_for_budget``).
        max_frames: frame cap (4k+1); num_ratios, min_ratio, max_ratio: aspect-ratio buckets.
        constant_tokens: batch size per bucket keeping tokens per step about constant.
        frame_stride: pixel frames between sampled frames (lowered for short clips).
        random_clip_start: random start of the clip inside the video (else the start).

    Recipe:
        text_dropout: probability of the empty prompt (0.1).
        t2v_zero_prob: probability that a fully masked sample gets zero inpaint latents (0.9).
        mask_probabilities: probabilities of the ten ``MASK_KINDS``.
        latent_sampling: clean latents from ``latent_dist.sample()`` (the reference) or
            ``.mode()``.
        loss_weighting, snr_gamma: per-timestep weights of the v-MSE: ``"uniform"`` (the reference) or
            ``"capped-snr"`` (Min-SNR-gamma with the v-loss's +1 kept; ``cogfun.training.loss.timestep_loss_weights``).
        object_weight, object_threshold: per-cell weights of the v-MSE: cells of the clean latents farther
            than ``object_threshold`` (RMS over channels) from their frame's spatial median weigh
            ``object_weight``, the rest 1, normalised per sample (``cogfun.training.loss.object_cell_weights``).
            1 (the default) is the reference: every cell alike.
        noise_aug: noise-augment the reference video; None = the transformer config's
            ``add_noise_in_inpaint_model``.
        lora, lora_rank, lora_alpha, lora_target_modules: train peft LoRA adapters only (rank 64 / alpha 32:
            the update is scaled by alpha / rank = 0.5). ``lora_target_modules``: a ``LORA_TARGET_PRESETS``
            name (``"qkv"``, the reference's, or ``"qkv-ff"``) or a list of module names (peft's suffix
            match, e.g. ``[to_q, ff.net.0.proj]``; each must match a module of the transformer). The export
            ``lora/pytorch_lora_weights.safetensors`` stores rank and alpha in its metadata.
        cache_text_embeddings: keep one embedding per unique prompt in memory.

    Latent cache (``latent_cache``: a ``cogfun cache ... --inpaint-masks K`` folder made with this
    run's VAE and text encoder, e.g. ``pretrained``'s): batches come from the cache, bucketed by its
    shapes, and the step runs no VAE and no T5 (``cogfun.training.loss.cached_training_loss``);
    ``metadata`` and the bucket keys are then unused. ``mask_probabilities`` were fixed when the
    cache was made; ``t2v_prob`` is the share of steps trained as text-to-video (zero inpaint latents).

    Validation (needs ``cogfun.pipelines.CogVideoXFunPipeline``; skipped with a note without):
        validation_steps: every this many steps (0 = never); validation_prompts, and
        validation_num_frames / height / width / inference_steps / guidance_scale.
    """

    kind: str = "transformer"
    # model sources
    pretrained: str | None = None
    transformer_preset: str = "tiny"
    transformer_overrides: dict[str, Any] = field(default_factory=dict)
    transformer_seed: int = 0
    vae_path: str | None = None
    vae_preset: str = "tiny"
    vae_seed: int = 0
    text_encoder_width: int | None = None
    text_encoder_layers: int = 2
    text_encoder_seed: int = 0
    # buckets
    stages: tuple[tuple[int, int], ...] = ((0, 13312),)
    base_sizes: tuple[int, ...] = ()
    budget_rule: str = "article"
    max_frames: int = 49
    num_ratios: int = 40
    min_ratio: float = 0.25
    max_ratio: float = 4.0
    constant_tokens: bool = False
    frame_stride: int = 1
    random_clip_start: bool = True
    # recipe
    text_dropout: float = 0.1
    t2v_zero_prob: float = 0.9
    mask_probabilities: tuple[float, ...] = MASK_PROBABILITIES
    latent_sampling: str = "sample"
    loss_weighting: str = "uniform"
    snr_gamma: float = 5.0
    object_weight: float = 1.0
    object_threshold: float = 0.5
    noise_aug: bool | None = None
    lora: bool = False
    lora_rank: int = 64
    lora_alpha: int = 32
    lora_target_modules: str | tuple[str, ...] = LORA_TARGET_MODULES
    cache_text_embeddings: bool = True
    # latent cache
    latent_cache: str | None = None
    t2v_prob: float = 0.0
    # validation
    validation_steps: int = 0
    validation_prompts: tuple[str, ...] = ("a red circle moving right on a black background",)
    validation_num_frames: int = 9
    validation_height: int = 64
    validation_width: int = 64
    validation_inference_steps: int = 10
    validation_guidance_scale: float = 6.0

    def __post_init__(self) -> None:
        super().__post_init__()
        StageSchedule(self.stages)  # validates steps and budgets
        _check_choice("budget_rule", self.budget_rule, BUDGET_RULES)
        _check_choice("latent_sampling", self.latent_sampling, ("sample", "mode"))
        _check_choice("loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        if self.snr_gamma <= 0:
            raise ValueError(f"snr_gamma must be > 0 (got {self.snr_gamma}); the Min-SNR paper uses 5")
        if self.object_weight < 1:
            raise ValueError(f"object_weight must be >= 1 (got {self.object_weight}); 1 turns the weighting off")
        if self.object_threshold <= 0:
            raise ValueError(f"object_threshold must be > 0 (got {self.object_threshold})")
        if (self.max_frames - 1) % 4:
            raise ValueError(
                f"max_frames must be 4k+1 (got {self.max_frames}); try {(self.max_frames - 1) // 4 * 4 + 1}"
            )
        if len(self.mask_probabilities) != len(MASK_PROBABILITIES):
            raise ValueError(
                f"mask_probabilities needs {len(MASK_PROBABILITIES)} values, one per MASK_KINDS "
                f"entry (got {len(self.mask_probabilities)}); reference: {list(MASK_PROBABILITIES)}"
            )
        if min(self.mask_probabilities) < 0 or abs(sum(self.mask_probabilities) - 1) > 1e-6:
            raise ValueError(
                f"mask_probabilities must be >= 0 and sum to 1 (got {list(self.mask_probabilities)})"
            )
        for key in ("text_dropout", "t2v_zero_prob", "t2v_prob"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"{key} must be in [0, 1] (got {getattr(self, key)})")
        resolve_lora_targets(self.lora_target_modules)  # validates the preset name / list
        if self.frame_stride < 1 or self.validation_steps < 0:
            raise ValueError("frame_stride must be >= 1 and validation_steps >= 0")


@dataclass(frozen=True)
class VAETrainConfig(TrainConfig):
    """Training the small CogVideoX VAE: reconstruction (L1 + MSE) + a small KL term.

    Args:
        vae_preset: ``build_vae`` preset of a new VAE (init ``vae_seed``), unless ``vae_path``
            (a ``save_pretrained`` folder) is given to fine-tune.
        crop_frames, crop_height, crop_width: random crops of the clips (frames 4k+1, sides
            multiples of 8). The CogVideoX VAE is costly on a CPU: keep crops small (9x32x32).
        crop_candidates: crop positions drawn per clip; the one whose pixels vary most is kept
            (1 = a plain random crop).
        l1_weight, mse_weight: reconstruction terms (means over pixel values).
        foreground_weight: extra loss weight of pixels far from their frame's median colour
            (``cogfun.training.vae_trainer.foreground_map``; 0 = plain means).
        kl_weight: weight of the KL divergence in nats per pixel value (1e-6 = the LDM
            autoencoders' weight on their summed losses).
        cache_clips: decode every clip once and keep it in memory.
        calibrate_scaling_factor: at the end, set ``scaling_factor = 1 / std(latents)`` (the
            LDM convention) measured on ``calibration_samples`` crops.
    """

    kind: str = "vae"
    vae_preset: str = "tiny"
    vae_path: str | None = None
    vae_seed: int = 0
    crop_frames: int = 9
    crop_height: int = 32
    crop_width: int = 32
    crop_candidates: int = 1
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    kl_weight: float = 1e-6
    foreground_weight: float = 0.0
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    cache_clips: bool = True
    calibrate_scaling_factor: bool = True
    calibration_samples: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.crop_frames < 1 or (self.crop_frames - 1) % 4:
            raise ValueError(
                f"crop_frames must be 4k+1 (got {self.crop_frames}); try {max(1, (self.crop_frames - 1) // 4 * 4 + 1)}"
            )
        if self.crop_height % 8 or self.crop_width % 8 or min(self.crop_height, self.crop_width) < 8:
            raise ValueError(
                f"crop sides must be positive multiples of 8 (got {self.crop_height}x{self.crop_width}); try 32x32"
            )
        if min(self.l1_weight, self.mse_weight, self.kl_weight) < 0:
            raise ValueError("loss weights must be >= 0")


KINDS = ("transformer", "vae")
_CLASSES: dict[str, type[TrainConfig]] = {"transformer": TransformerTrainConfig, "vae": VAETrainConfig}


# ---------------------------------------------------------------------------------------------
# Typed values
# ---------------------------------------------------------------------------------------------


def _check_choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {list(choices)} (got {value!r})")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the type ``hint`` and convert lists to tuples."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0] if errors else f"{key} got {value!r}")
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be true or false (got {value!r})")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{key} must be an int (got {value!r})")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{key} must be a number (got {value!r})")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{key} must be a string (got {value!r})")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list (got {value!r})")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{key} must have {len(args)} items (got {value!r})")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping (got {value!r})")
        return dict(value)
    raise ValueError(f"{key}: unsupported field type {hint!r}")  # pragma: no cover


def _hints(cls: type[TrainConfig]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build the config of ``values["kind"]`` (default ``"transformer"``), every value type-checked.

    Args:
        values: field values; unknown keys raise a ``ValueError`` naming the valid ones.
    """
    if not isinstance(values, dict):
        raise ValueError(f"a config must be a mapping of field: value (got {type(values).__name__})")
    kind = values.get("kind", "transformer")
    if kind not in _CLASSES:
        raise ValueError(f"kind must be one of {list(_CLASSES)} (got {kind!r})")
    cls = _CLASSES[kind]
    hints = _hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(
            f"unknown {kind} config keys {unknown}; valid keys: {', '.join(sorted(hints))}"
        )
    return cls(**{k: _coerce(v, hints[k], k) for k, v in values.items()})


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain dict of a config (tuples as lists), ready for YAML or JSON."""

    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def apply_overrides(config: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    """A copy of ``config`` with ``key=value`` overrides applied, each checked against its type.

    Values are parsed as YAML (``max_steps=20``, ``lora=true``, ``stages=[[0, 80], [4, 160]]``,
    ``run_name=null``); for a string field the raw text is kept (``name=007`` stays "007").

    Args:
        config: the config to start from.
        overrides: ``"key=value"`` strings.
    """
    hints = _hints(type(config))
    values = config_to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value, e.g. max_steps=20")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in hints:
            close = difflib.get_close_matches(key, list(hints), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown {config.kind} config key {key!r}{hint}; valid keys: {', '.join(sorted(hints))}"
            )
        if key == "kind" and text.strip() != config.kind:
            raise ValueError("kind cannot be overridden; write a config of the other kind")
        hint = hints[key]
        parsed = yaml.safe_load(text) if text.strip() else ""
        if str in (hint, *typing.get_args(hint)) and parsed is not None and not isinstance(parsed, (list, dict)):
            parsed = text  # keep strings verbatim
        values[key] = _coerce(parsed, hint, key)
    return config_from_dict(values)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config (``kind: transformer|vae`` plus fields) and apply overrides.

    Args:
        path: the YAML file.
        overrides: ``"key=value"`` strings (see ``apply_overrides``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}; pass a YAML file with kind: transformer|vae")
    values = yaml.safe_load(path.read_text()) or {}
    return apply_overrides(config_from_dict(values), list(overrides))


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (``load_config`` reads it back equal).

    Args:
        config: the config.
        path: the file to write (its folder is created).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path
