"""The training loop of the CogVideoX-Fun inpaint DiT on accelerate: ``train(config) -> run_dir``.

The reference is VideoX-Fun ``scripts/cogvideox_fun/train.py``; this loop keeps its recipe
(``cogfun.training.loss``, docs/design.md 1.5) and its machinery (accelerate, AdamW, grad clip, EMA,
gradient checkpointing, LoRA through peft, checkpoints with the sampler position), and adds
token-budget stages (``StageSchedule``, one bucket plan per stage, docs/design.md 1.4) and a resume
that reproduces the losses of an uninterrupted run exactly.

A run, in numbered steps (``train``):

1. Accelerator (mixed precision, gradient accumulation, ``cpu=True`` option); the run folder
   ``output_dir/name/run_name`` (new, or the one resumed) with the resolved ``config.yaml``.
2. Components: the transformer (preset or ``pretrained``), frozen VAE, T5 and tokenizer (saved
   into ``components/`` so a resume reuses the very same ones), the DDPM training scheduler.
3. Trainable parameters (all, or LoRA adapters only), AdamW, LR schedule, optional EMA.
4. Resume: model, optimizer, LR schedule, EMA, RNG states (per rank), step, stage and sampler
   position from ``latest_checkpoint``.
5. Loop over optimiser steps: the stage's bucketed data (each rank its own batches), the loss,
   backward, clip, step; metrics as JSON lines (``metrics.jsonl``: step, loss, lr, tokens,
   bucket, seconds, ...) and a tqdm bar on the main process; checkpoints every
   ``checkpointing_steps``; validation videos every ``validation_steps`` (a hook).
6. The end: the model folder in the released layout (``model/``; LoRA fused, the adapter also
   in ``lora/pytorch_lora_weights.safetensors`` with rank and alpha in its metadata; EMA weights when
   EMA is on), and per rank a parameter checksum (``final_state_rank{r}.json``).

What makes the resume exact: all training randomness comes from one CPU generator per rank
(saved), the clip starts are seeded by ``(seed, index, epoch)``, every batch carries the
sampler position after it, and checkpoints are taken at optimiser-step boundaries. Runs
launched by ``accelerate launch`` pick the processes up from the environment.

Usage::

    python -m cogfun.training.trainer CONFIG.yaml [--set key=value ...] [--resume]
    accelerate launch --multi_gpu --num_processes 2 -m cogfun.training.trainer CONFIG.yaml
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..buckets import BucketBatchSampler, BucketPlan, StageSchedule, num_tokens, plan_buckets
from .checkpoint import (
    checkpoint_path,
    create_run_dir,
    finalize_checkpoint,
    latest_checkpoint,
    latest_run,
    load_checkpoint,
    load_rng_state,
    save_checkpoint,
    save_model_folder,
    save_rng_state,
)
from .config import TrainConfig, TransformerTrainConfig, config_to_dict, load_config, resolve_lora_targets, save_config
from .dataset import BucketVideoDataset, TaggedBatchSampler, collate, collate_cached, worker_context
from .loss import PromptCache, build_training_scheduler, cached_training_loss, training_loss

__all__ = [
    "Components",
    "MetricsLog",
    "build_components",
    "build_optimizer",
    "parameter_checksum",
    "prepare_run",
    "train",
]

#: ``hook(step, components, run_dir)`` called on the main process every ``validation_steps``.
ValidationHook = Callable[[int, "Components", Path], None]


# ---------------------------------------------------------------------------------------------
# Run folder and metrics (shared with the VAE trainer)
# ---------------------------------------------------------------------------------------------


def _print(accelerator, message: str) -> None:
    if accelerator.is_main_process:
        print(f"[cogfun train] {message}", file=sys.stderr, flush=True)


def _truncate_jsonl(path: Path, step: int) -> int:
    """Drop lines with ``"step" > step`` (steps a killed run logged after its last checkpoint)."""
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept))
    return len(lines) - len(kept)


def prepare_run(accelerator, config: TrainConfig, resume: bool | str | None) -> tuple[Path, Path | None]:
    """Choose the run folder (same on every rank) and the checkpoint to resume from.

    Args:
        accelerator: the run's ``Accelerator``.
        config: resolved config.
        resume: falsy = a new run; ``True``/``"latest"`` = the run named ``run_name`` or else the
            latest run of ``output_dir/name`` that has a checkpoint (a new run if none); a path
            = that run folder.

    Returns:
        ``(run_dir, checkpoint or None)``.
    """
    from accelerate.utils import broadcast_object_list

    choice = [None, None]
    if accelerator.is_main_process:
        run_dir: Path | None = None
        if resume:
            if isinstance(resume, (str, Path)) and str(resume) not in ("latest", "True"):
                run_dir = Path(resume)
                if not run_dir.is_dir():
                    raise ValueError(f"--resume {run_dir}: no such run folder")
            elif config.run_name is not None:
                candidate = Path(config.output_dir) / config.name / config.run_name
                run_dir = candidate if candidate.is_dir() else None
            else:
                run_dir = latest_run(config.output_dir, config.name)
            if run_dir is None:
                _print(accelerator, "nothing to resume: starting a new run")
        if run_dir is None:
            run_dir = create_run_dir(config.output_dir, config.name, config.run_name)
        checkpoint = latest_checkpoint(run_dir)
        choice = [str(run_dir), None if checkpoint is None else str(checkpoint)]
    if accelerator.num_processes > 1:
        broadcast_object_list(choice, from_process=0)
    run_dir, checkpoint = Path(choice[0]), (None if choice[1] is None else Path(choice[1]))

    if accelerator.is_main_process:
        step = 0 if checkpoint is None else json.loads((checkpoint / "training_state.json").read_text())["global_step"]
        saved = run_dir / "config.yaml"
        if saved.is_file() and checkpoint is not None:
            previous = load_config(saved)
            changed = sorted(k for k, v in config_to_dict(config).items() if config_to_dict(previous).get(k) != v)
            if changed:
                _print(accelerator, f"resuming with changed config keys {changed}")
                save_config(config, run_dir / f"config.resumed-at-{step:06d}.yaml")
        else:
            save_config(config, saved)
        for name in ("metrics.jsonl", *(p.name for p in run_dir.glob("batches_rank*.jsonl"))):
            dropped = _truncate_jsonl(run_dir / name, step)
            if dropped:
                _print(accelerator, f"{name}: dropped {dropped} lines logged after checkpoint step {step}")
    accelerator.wait_for_everyone()
    return run_dir, checkpoint


class MetricsLog:
    """Append-only JSON lines (``metrics.jsonl``), written by the main process only.

    Args:
        path: the file.
        enabled: False on the other ranks.
    """

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path, self.enabled = Path(path), enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def parameter_checksum(module: torch.nn.Module) -> dict[str, Any]:
    """SHA-256 of every parameter's bytes (sorted by name) and the plain sum: equal across ranks."""
    digest = hashlib.sha256()
    total = 0.0
    for name, p in sorted(module.state_dict().items()):
        data = p.detach().float().cpu().contiguous()
        digest.update(name.encode())
        digest.update(data.numpy().tobytes())
        total += float(data.double().sum())
    return {"sha256": digest.hexdigest(), "sum": total}


def training_generator(seed: int, rank: int) -> torch.Generator:
    """The CPU generator of a rank's training randomness (independent streams per rank)."""
    state = np.random.SeedSequence([seed, rank]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def build_optimizer(config: TrainConfig, params: list[torch.nn.Parameter]):
    """AdamW and the LR schedule of the config (diffusers ``get_scheduler``)."""
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.AdamW(
        params,
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
        weight_decay=config.weight_decay,
    )
    lr_scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.lr_warmup_steps,
        num_training_steps=config.max_steps,
    )
    return optimizer, lr_scheduler


def save_training_checkpoint(
    accelerator, run_dir: Path, config: TrainConfig, step: int, modules, optimizer, lr_scheduler,
    state: dict[str, Any], generator: torch.Generator, ema=None,
) -> Path:
    """Every rank calls this: main writes weights and states, each rank its RNG, then finalize.

    Under DeepSpeed / FSDP the weights and optimizer are sharded: every rank then writes its
    part through ``accelerator.save_state`` (``accelerate_state/``).
    """
    final = checkpoint_path(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if is_sharded(accelerator):
        if accelerator.is_main_process:
            tmp.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp / "accelerate_state"))
        modules, optimizer = {}, None
    if accelerator.is_main_process:
        save_checkpoint(tmp, config, modules, optimizer, lr_scheduler, state, ema)
    accelerator.wait_for_everyone()
    save_rng_state(tmp, accelerator.process_index, generator)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        finalize_checkpoint(tmp, final, config.checkpoints_total_limit)
    accelerator.wait_for_everyone()
    return final


@contextmanager
def torch_threads(num_threads: int | None):
    """Run with ``num_threads`` intra-op threads (None: leave as is), restored afterwards."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def is_sharded(accelerator) -> bool:
    """True under DeepSpeed or FSDP (weights and optimizer states are split across ranks)."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)


def resume_training_checkpoint(accelerator, checkpoint: Path, modules, optimizer, lr_scheduler, ema,
                               generator: torch.Generator) -> dict[str, Any]:
    """Every rank calls this: restore weights, optimizer, LR schedule, EMA and this rank's RNG."""
    if is_sharded(accelerator):
        accelerator.load_state(str(checkpoint / "accelerate_state"))
        modules, optimizer = {}, None
    state = load_checkpoint(checkpoint, modules, optimizer, lr_scheduler, ema)
    load_rng_state(checkpoint, accelerator.process_index, generator)
    return state


def make_accelerator(config: TrainConfig):
    from accelerate import Accelerator

    return Accelerator(
        cpu=config.cpu,
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )


# ---------------------------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------------------------


@dataclass
class Components:
    """The models of a run.

    Attributes:
        transformer: the trained inpaint transformer (unwrapped).
        vae, text_encoder, tokenizer: frozen.
        scheduler: ``DDPMScheduler`` used for training.
        sampler: the sampling scheduler written into the model folder (CogVideoX DDIM).
    """

    transformer: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    sampler: Any


def _load_vae(path: Path):
    from diffusers import AutoencoderKLCogVideoX

    if (path / "vae" / "config.json").is_file():
        path = path / "vae"
    if not (path / "config.json").is_file():
        raise ValueError(f"no VAE at {path}; point vae_path at a save_pretrained folder (e.g. a VAE run's model/vae)")
    return AutoencoderKLCogVideoX.from_pretrained(path)


def _load_sampler(folder: Path):
    import diffusers

    config = json.loads((folder / "scheduler_config.json").read_text())
    cls = getattr(diffusers, config.get("_class_name", "CogVideoXDDIMScheduler"), diffusers.CogVideoXDDIMScheduler)
    return cls.from_pretrained(folder)


def build_components(
    config: TransformerTrainConfig, components_dir: Path | None = None, save: bool = True
) -> Components:
    """Build (or load) the transformer and the frozen parts of a run.

    Args:
        config: the run config (``pretrained`` or presets).
        components_dir: where the frozen parts of a preset run live; loaded from when present
            (resume), written to when ``save``.
        save: write the frozen parts to ``components_dir`` (main process).
    """
    from transformers import AutoTokenizer, T5EncoderModel

    from ..data.toy import TOY_VOCABULARY
    from ..models.presets import build_scheduler, build_transformer, build_vae
    from ..models.text_encoder import build_tiny_t5_encoder, build_toy_tokenizer
    from ..models.transformer import CogVideoXFunTransformer3DModel

    if config.pretrained:
        root = Path(config.pretrained)
        if not (root / "transformer" / "config.json").is_file():
            raise ValueError(
                f"{root} is not a model folder in the released layout (no transformer/config.json); "
                "point pretrained at a folder with transformer/ vae/ text_encoder/ tokenizer/ scheduler/"
            )
        from ..pipelines.validation import check_model_folder

        check_model_folder(root)  # a truncated weights file or broken config.json: named, before any loading
        transformer = CogVideoXFunTransformer3DModel.from_pretrained(root / "transformer")
        vae = _load_vae(root / "vae")
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
        text_encoder = T5EncoderModel.from_pretrained(root / "text_encoder")
        sampler = _load_sampler(root / "scheduler")
    else:
        transformer = build_transformer(
            config.transformer_preset, meta=False, seed=config.transformer_seed, **config.transformer_overrides
        )
        stored = components_dir is not None and (components_dir / "text_encoder" / "config.json").is_file()
        if stored:
            vae = _load_vae(components_dir / "vae")
            tokenizer = AutoTokenizer.from_pretrained(components_dir / "tokenizer")
            text_encoder = T5EncoderModel.from_pretrained(components_dir / "text_encoder")
            sampler = _load_sampler(components_dir / "scheduler")
        else:
            if config.vae_path:
                vae = _load_vae(Path(config.vae_path))
            else:
                vae = build_vae(config.vae_preset, seed=config.vae_seed)
            max_length = transformer.config.max_text_seq_length
            tokenizer = build_toy_tokenizer(TOY_VOCABULARY, model_max_length=max_length)
            width = config.text_encoder_width or transformer.config.text_embed_dim
            text_encoder = build_tiny_t5_encoder(
                len(tokenizer), d_model=width, num_layers=config.text_encoder_layers, seed=config.text_encoder_seed
            )
            sampler = build_scheduler()
            if save and components_dir is not None:
                vae.save_pretrained(components_dir / "vae", safe_serialization=True)
                tokenizer.save_pretrained(components_dir / "tokenizer")
                text_encoder.save_pretrained(components_dir / "text_encoder", safe_serialization=True)
                sampler.save_pretrained(components_dir / "scheduler")
    if text_encoder.config.d_model != transformer.config.text_embed_dim:
        raise ValueError(
            f"text encoder width {text_encoder.config.d_model} != transformer text_embed_dim "
            f"{transformer.config.text_embed_dim}; set text_encoder_width to {transformer.config.text_embed_dim}"
        )
    for frozen in (vae, text_encoder):
        frozen.requires_grad_(False)
        frozen.eval()
    scheduler = build_training_scheduler(dict(sampler.config))
    return Components(transformer, vae, text_encoder, tokenizer, scheduler, sampler)


def _add_lora(transformer, config: TransformerTrainConfig) -> None:
    from peft import LoraConfig

    from ..models.lora_conversion import check_lora_targets

    targets = resolve_lora_targets(config.lora_target_modules)
    check_lora_targets(transformer, targets)  # peft alone accepts names that match nothing
    transformer.requires_grad_(False)
    transformer.add_adapter(
        LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            init_lora_weights=True,
            target_modules=list(targets),
        )
    )


# ---------------------------------------------------------------------------------------------
# Data of one stage
# ---------------------------------------------------------------------------------------------


def stage_plan(config: TransformerTrainConfig, budget: int) -> BucketPlan:
    """The buckets a config trains at one token budget (``plan_buckets`` with the config's bucket keys)."""
    return plan_buckets(
        budget,
        base_size=tuple(config.base_sizes) or None,
        rule=config.budget_rule,
        max_frames=config.max_frames,
        batch_size=config.batch_size,
        constant_tokens=config.constant_tokens,
        num_ratios=config.num_ratios,
        min_ratio=config.min_ratio,
        max_ratio=config.max_ratio,
    )


def stage_data(config: TransformerTrainConfig, stage: int, budget: int, rank: int, world_size: int):
    """The bucketed dataset and the (infinite, rank-aware) sampler of one stage.

    Returns:
        ``(dataset, sampler)``; the sampler seed is ``seed + stage``.
    """
    if config.latent_cache:
        return cached_stage_data(config, stage, rank, world_size)
    plan = stage_plan(config, budget)
    if not config.metadata:
        raise ValueError("metadata is empty; set metadata: path/to/metadata.json in the config")
    dataset = BucketVideoDataset(
        config.metadata,
        plan,
        data_root=config.data_root,
        frame_stride=config.frame_stride,
        random_start=config.random_clip_start,
        seed=config.seed + stage,
    )
    sampler = BucketBatchSampler(
        dataset.keys, dataset.batch_sizes, seed=config.seed + stage, rank=rank, world_size=world_size,
        drop_last=True, infinite=True,
    )
    if len(sampler) == 0:
        counts = {k: dataset.keys.count(k) for k in dict.fromkeys(dataset.keys)}
        raise ValueError(
            f"stage {stage} (budget {budget}): no bucket holds a full batch for {world_size} process(es) "
            f"(clips per bucket {counts}, batch sizes {dataset.batch_sizes}); lower batch_size or add clips"
        )
    return dataset, sampler


class CachedClips(torch.utils.data.Dataset):
    """A latent cache (``LatentCacheDataset``) addressed as ``TaggedBatchSampler`` addresses clips."""

    def __init__(self, root: str | Path) -> None:
        from ..data.latent_cache import LatentCacheDataset

        self.cache = LatentCacheDataset(root)
        if not self.cache.has_inpaint:
            raise ValueError(f"{root} has no inpaint conditionings; rebuild it with `cogfun cache METADATA "
                             f"{root} --model MODEL --inpaint-masks 3` (a new folder)")
        if self.cache.empty_prompt_embeds is None:
            raise ValueError(f"{root} has no empty_prompt.safetensors; rerun `cogfun cache` on it to finish it")
        self.keys = list(self.cache.bucket_of)

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, item: int | tuple[int, ...]) -> dict[str, Any]:
        index, epoch, position = (item, 0, None) if isinstance(item, int) else (*item, None)[:3]
        sample = self.cache[index]
        if position is not None:
            sample["sampler_state"] = (epoch, position)
        return sample


def cached_stage_data(config: TransformerTrainConfig, stage: int, rank: int, world_size: int):
    """``stage_data`` for a run on a latent cache: the cache's own shapes are its buckets."""
    dataset = CachedClips(config.latent_cache)
    sampler = BucketBatchSampler(
        dataset.keys, config.batch_size, seed=config.seed + stage, rank=rank, world_size=world_size,
        drop_last=True, infinite=True,
    )
    if len(sampler) == 0:
        raise ValueError(f"{config.latent_cache}: no bucket holds a full batch of {config.batch_size} for "
                         f"{world_size} process(es); lower batch_size")
    return dataset, sampler


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def default_validation(config: TransformerTrainConfig) -> ValidationHook:
    """Hook that renders ``validation_prompts`` with ``CogVideoXFunPipeline`` into
    ``run_dir/validation/step-NNNNNN/NN.mp4`` (skipped, with a note, when the pipeline is missing)."""

    def hook(step: int, components: Components, run_dir: Path) -> None:
        try:
            from ..pipelines import CogVideoXFunPipeline
        except ImportError:
            print("[cogfun train] validation skipped: cogfun.pipelines.CogVideoXFunPipeline is not available",
                  file=sys.stderr)
            return
        from ..data.video_io import write_video

        pipe = CogVideoXFunPipeline(
            tokenizer=components.tokenizer, text_encoder=components.text_encoder, vae=components.vae,
            transformer=components.transformer, scheduler=components.sampler,
        )
        folder = run_dir / "validation" / f"step-{step:06d}"
        for i, prompt in enumerate(config.validation_prompts):
            out = pipe(
                prompt=prompt, num_frames=config.validation_num_frames, height=config.validation_height,
                width=config.validation_width, num_inference_steps=config.validation_inference_steps,
                guidance_scale=config.validation_guidance_scale,
                generator=torch.Generator().manual_seed(config.seed + i), output_type="np",
            )
            frames = out.frames if hasattr(out, "frames") else out[0]
            write_video(folder / f"{i:02d}.mp4", np.asarray(frames[0]), pad_to_even=True)
        (folder / "prompts.json").write_text(json.dumps(list(config.validation_prompts), indent=1))

    return hook


@contextmanager
def _validation_mode(transformer, ema, params):
    """Eval mode, EMA weights swapped in, global RNG untouched (training stays reproducible)."""
    was_training = transformer.training
    if ema is not None:
        ema.store(params)
        ema.copy_to(params)
    transformer.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            yield
    finally:
        transformer.train(was_training)
        if ema is not None:
            ema.restore(params)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def train(
    config: TrainConfig | str | Path,
    resume: bool | str | None = None,
    validation_hook: ValidationHook | None = None,
) -> Path:
    """Train from a config and return the run folder.

    Args:
        config: a ``TransformerTrainConfig`` / ``VAETrainConfig`` or a YAML path; ``kind: vae``
            goes to ``cogfun.training.vae_trainer.train_vae``.
        resume: None/False = new run; True or ``"latest"`` = resume the latest checkpoint of
            the run named ``run_name`` (or the latest run of the experiment); a path = that run.
        validation_hook: ``hook(step, components, run_dir)`` on the main process every
            ``validation_steps`` (default: videos through ``CogVideoXFunPipeline``).

    Returns:
        the run folder; the model is in ``run_dir/model``.
    """
    if not isinstance(config, TrainConfig):
        config = load_config(config)
    with torch_threads(config.num_threads):
        if config.kind == "vae":
            from .vae_trainer import train_vae

            return train_vae(config, resume=resume)
        return _train_transformer(config, resume, validation_hook)


def _train_transformer(
    config: TransformerTrainConfig, resume: bool | str | None, validation_hook: ValidationHook | None
) -> Path:
    from accelerate.utils import set_seed
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    # 1. Accelerator and run folder.
    accelerator = make_accelerator(config)
    rank, world = accelerator.process_index, accelerator.num_processes
    run_dir, checkpoint = prepare_run(accelerator, config, resume)
    _print(accelerator, f"run folder {run_dir}" + (f", resuming from {checkpoint.name}" if checkpoint else ""))
    set_seed(config.seed)

    # 2. Components (frozen parts saved into the run, so a resume reuses them).
    components = build_components(config, run_dir / "components", save=accelerator.is_main_process)
    accelerator.wait_for_everyone()
    transformer, vae = components.transformer, components.vae
    vae.to(accelerator.device)
    components.text_encoder.to(accelerator.device)
    prompts = PromptCache(
        components.tokenizer, components.text_encoder, transformer.config.max_text_seq_length,
        enabled=config.cache_text_embeddings,
    )
    noise_aug = config.noise_aug
    if noise_aug is None:  # the reference follows the checkpoint's flag
        noise_aug = bool(transformer.config.add_noise_in_inpaint_model)

    # 3. Trainable parameters, optimizer, LR schedule, EMA.
    if is_sharded(accelerator) and (config.lora or config.use_ema):
        raise ValueError(
            "LoRA and EMA runs need the full weights on every rank; train them with DDP "
            "(accelerate_configs/ddp.yaml), DeepSpeed / FSDP are for full fine-tuning here"
        )
    if config.lora:
        _add_lora(transformer, config)
    else:
        transformer.requires_grad_(True)
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer, lr_scheduler = build_optimizer(config, params)
    ema = EMAModel(params, decay=config.ema_decay) if config.use_ema else None
    model, optimizer = accelerator.prepare(transformer, optimizer)
    _print(
        accelerator,
        f"{sum(p.numel() for p in params) / 1e6:.3f}M trainable of "
        f"{sum(p.numel() for p in transformer.parameters()) / 1e6:.3f}M parameters, {world} process(es)",
    )

    # 4. Resume.
    generator = training_generator(config.seed, rank)
    global_step, resumed_stage, resumed_sampler = 0, None, None
    if checkpoint is not None:
        state = resume_training_checkpoint(
            accelerator, checkpoint, {"transformer": transformer}, optimizer, lr_scheduler, ema, generator
        )
        global_step, resumed_stage, resumed_sampler = state["global_step"], state["stage"], state["sampler"]
        if ema is not None:
            ema.to(accelerator.device)

    # 5. The loop.
    start_step = global_step
    schedule = StageSchedule(config.stages)
    metrics = MetricsLog(run_dir / "metrics.jsonl", accelerator.is_main_process)
    batches_log = MetricsLog(run_dir / f"batches_rank{rank}.jsonl", config.record_batches)
    hook = validation_hook or default_validation(config)
    progress = tqdm(
        total=config.max_steps, initial=global_step, disable=not accelerator.is_main_process,
        desc="train", dynamic_ncols=True,
    )
    stage, batches, sampler, sampler_state = None, None, None, None
    while global_step < config.max_steps:
        # 5a. The stage's data: a new bucket plan when the budget changes.
        if schedule.stage_at(global_step) != stage:
            stage = schedule.stage_at(global_step)
            budget = schedule.budget_at(global_step)
            dataset, sampler = stage_data(config, stage, budget, rank, world)
            if resumed_sampler is not None and resumed_stage == stage:
                sampler.load_state_dict(resumed_sampler)
            sampler_state = sampler.state_dict()
            loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=TaggedBatchSampler(sampler),
                collate_fn=collate_cached if config.latent_cache else collate,
                num_workers=config.num_workers,
                multiprocessing_context=worker_context(config.num_workers),
            )
            batches = iter(loader)
            _print(accelerator, f"stage {stage}: budget {budget} tokens, {len(set(dataset.keys))} buckets, "
                                f"{len(dataset)} clips, {len(sampler)} batches per epoch per rank")

        # 5b. One optimiser step = gradient_accumulation_steps micro-batches.
        start = time.perf_counter()
        losses, tokens, shapes = [], 0, []
        for micro in range(config.gradient_accumulation_steps):
            batch = next(batches)
            with accelerator.accumulate(model):
                if config.latent_cache:
                    out = cached_training_loss(
                        batch, model, components.scheduler, dataset.cache.empty_prompt_embeds, generator,
                        text_dropout=config.text_dropout, t2v_prob=config.t2v_prob,
                        t2v_zero_prob=config.t2v_zero_prob, latent_sampling=config.latent_sampling,
                        device=accelerator.device, weighting=config.loss_weighting, snr_gamma=config.snr_gamma,
                        object_weight=config.object_weight, object_threshold=config.object_threshold,
                    )
                else:
                    out = training_loss(
                        batch, model, vae, components.scheduler, prompts, generator,
                        text_dropout=config.text_dropout, t2v_zero_prob=config.t2v_zero_prob,
                        mask_probabilities=config.mask_probabilities, noise_aug=noise_aug,
                        latent_sampling=config.latent_sampling, device=accelerator.device,
                        weighting=config.loss_weighting, snr_gamma=config.snr_gamma,
                        object_weight=config.object_weight, object_threshold=config.object_threshold,
                    )
                accelerator.backward(out.loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(out.loss.detach().float())
            if config.latent_cache:
                b, f_lat, _, h_lat, w_lat = batch["latents"].shape
                p = transformer.config.patch_size
                tokens += b * f_lat * (h_lat // p) * (w_lat // p)
                h, w, f = batch["bucket"]  # the pixel shape of the cached clips
            else:
                b, f, _, h, w = batch["pixel_values"].shape
                tokens += b * num_tokens(h, w, f)
            shapes.append(f"{h}x{w}x{f}")
            sampler_state = {**batch["sampler_state"], "seed": sampler.seed}
            batches_log.write(dict(step=global_step + 1, micro=micro, rank=rank, index=batch["index"].tolist(),
                                   bucket=[h, w, f], epoch=sampler_state["epoch"]))
        lr = lr_scheduler.get_last_lr()[0]
        lr_scheduler.step()
        if ema is not None:
            ema.step(params)
        global_step += 1

        # 5c. Metrics (loss averaged over micro-batches and ranks, tokens summed).
        loss = accelerator.reduce(torch.stack(losses).mean().to(accelerator.device), reduction="mean")
        total_tokens = accelerator.reduce(torch.tensor(tokens, device=accelerator.device), reduction="sum")
        record = dict(
            step=global_step, loss=float(loss), lr=lr, tokens=int(total_tokens),
            bucket=",".join(dict.fromkeys(shapes)), seconds=round(time.perf_counter() - start, 4),
            stage=stage, budget=schedule.budget_at(global_step - 1), epoch=sampler_state["epoch"],
        )
        if not math.isfinite(record["loss"]):
            raise ValueError(
                f"loss is {record['loss']} at step {global_step}; lower learning_rate or use mixed_precision=no"
            )
        metrics.write(record)
        progress.update(1)
        progress.set_postfix(loss=f"{record['loss']:.4f}", bucket=record["bucket"])

        # 5d. Checkpoint and validation.
        if global_step % config.checkpointing_steps == 0 or global_step == config.max_steps:
            state = dict(global_step=global_step, stage=stage, sampler=sampler_state, world_size=world)
            save_training_checkpoint(
                accelerator, run_dir, config, global_step, {"transformer": transformer}, optimizer,
                lr_scheduler, state, generator, ema,
            )
        if config.validation_steps and global_step % config.validation_steps == 0:
            if accelerator.is_main_process:
                with _validation_mode(transformer, ema, params):
                    hook(global_step, components, run_dir)
            accelerator.wait_for_everyone()
    progress.close()

    # 6. The model folder in the released layout, and per-rank parameter checksums.
    accelerator.wait_for_everyone()
    export = global_step > start_step or not (run_dir / "model").exists()
    if is_sharded(accelerator):  # gather the full weights into a plain model (a collective call)
        full = accelerator.get_state_dict(model)
        if export and accelerator.is_main_process:
            from ..models.transformer import CogVideoXFunTransformer3DModel

            components.transformer = CogVideoXFunTransformer3DModel.from_config(transformer.config)
            components.transformer.load_state_dict(full)
        transformer = components.transformer
    (run_dir / f"final_state_rank{rank}.json").write_text(
        json.dumps(dict(rank=rank, global_step=global_step, **parameter_checksum(transformer)), indent=1)
    )
    if accelerator.is_main_process and export:
        export_model(run_dir, components, ema, params, config, global_step)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return run_dir


def model_folder(run_dir: Path, step: int) -> Path:
    """``run_dir/model``, or ``run_dir/model-{step:06d}`` when a resumed run that had already
    finished trains further (model folders are never overwritten)."""
    folder = run_dir / "model"
    return folder if not folder.exists() else run_dir / f"model-{step:06d}"


def export_model(
    run_dir: Path, components: Components, ema, params, config: TransformerTrainConfig, step: int
) -> Path | None:
    """Write ``model_folder(run_dir, step)`` in the released layout; EMA weights when EMA is on;
    LoRA fused (the adapter also in ``lora/``). Nothing when that folder already exists."""
    import copy

    folder = model_folder(run_dir, step)
    if folder.exists():
        return None

    transformer = components.transformer
    if ema is not None:
        ema.store(params)
        ema.copy_to(params)
    try:
        export = transformer
        if config.lora:
            from ..models.lora_conversion import save_lora_adapter

            # rank and alpha go into the file's metadata: without them diffusers (and every other loader)
            # assumes alpha = rank and applies a rank-64 / alpha-32 LoRA at twice its trained scale
            save_lora_adapter(transformer, folder.parent / folder.name.replace("model", "lora", 1))
            export = copy.deepcopy(transformer)
            export.fuse_lora()
            export.unload_lora()
        export = export.eval()
        save_model_folder(
            folder, export, components.vae, components.text_encoder, components.tokenizer, components.sampler
        )
    finally:
        if ema is not None:
            ema.restore(params)
    return folder


if __name__ == "__main__":
    from .command import main

    sys.exit(main())
