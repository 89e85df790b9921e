"""Run folders, training checkpoints that resume exactly, and the released model-folder layout.

What the reference's ``accelerator.save_state`` hooks in VideoX-Fun
``scripts/cogvideox_fun/train.py`` keep (model, optimizer, LR schedule, EMA, sampler position,
RNG), written by the kit itself so that a resume needs no pickle from elsewhere:

``RUN/checkpoints/checkpoint-000040/``::

    transformer/                 save_pretrained (safetensors, config.json)      full weights
    transformer_lora.safetensors peft adapter weights (instead, with LoRA)
    ema.safetensors              EMA shadow weights (with EMA)
    optimizer.pt, lr_scheduler.pt  torch.save of state dicts (tensors, numbers, lists)
    accelerate_state/            instead of the weights and optimizer under DeepSpeed / FSDP
                                 (``accelerator.save_state``: sharded states; accelerate's
                                 loader unpickles these files, which this run wrote)
    rng_rank{r}.pt               python / numpy / torch (/ cuda) RNG states + the training
                                 generator, one file per rank (tensors and lists)
    training_state.json          global step, stage, sampler position, EMA counters
    config.yaml                  the resolved run config
    COMPLETE                     written last: a checkpoint without it is ignored

A checkpoint is written into ``checkpoint-N.tmp`` and renamed when complete, so a run killed
mid-save resumes from the previous one. Every ``.pt`` file is loaded with
``torch.load(weights_only=True)``. Run folders (``output_dir/name/run_name``) are never reused
except to resume. ``save_model_folder`` writes the released diffusers layout (``transformer/
vae/ text_encoder/ tokenizer/ scheduler/ model_index.json``).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .config import TrainConfig, save_config

__all__ = [
    "CHECKPOINT_PATTERN",
    "capture_rng_state",
    "checkpoint_path",
    "create_run_dir",
    "finalize_checkpoint",
    "latest_checkpoint",
    "latest_run",
    "list_checkpoints",
    "load_checkpoint",
    "load_module_weights",
    "load_rng_state",
    "restore_rng_state",
    "save_checkpoint",
    "save_model_folder",
    "save_module_weights",
    "save_rng_state",
]

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
COMPLETE = "COMPLETE"


# ---------------------------------------------------------------------------------------------
# Run folders
# ---------------------------------------------------------------------------------------------


def create_run_dir(output_dir: str | Path, name: str, run_name: str | None = None) -> Path:
    """Create a new run folder ``output_dir/name/run_name`` (default a timestamp), never reusing one.

    Args:
        output_dir: root of runs.
        name: experiment name.
        run_name: folder name; an existing folder raises (resume it with ``--resume``).
    """
    parent = Path(output_dir) / name
    parent.mkdir(parents=True, exist_ok=True)
    if run_name is not None:
        run_dir = parent / run_name
        if run_dir.exists():
            raise ValueError(
                f"run folder {run_dir} already exists; resume it with --resume, or pick another run_name"
            )
        run_dir.mkdir()
        return run_dir
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        run_dir = parent / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise ValueError(f"could not create a run folder under {parent}")  # pragma: no cover


def latest_run(output_dir: str | Path, name: str) -> Path | None:
    """The most recently modified run folder of ``output_dir/name`` that holds a checkpoint."""
    parent = Path(output_dir) / name
    if not parent.is_dir():
        return None
    runs = [p for p in parent.iterdir() if p.is_dir() and latest_checkpoint(p) is not None]
    return max(runs, key=lambda p: latest_checkpoint(p).stat().st_mtime, default=None)


# ---------------------------------------------------------------------------------------------
# Finding checkpoints
# ---------------------------------------------------------------------------------------------


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """``run_dir/checkpoints/checkpoint-{step:06d}``."""
    return Path(run_dir) / "checkpoints" / f"checkpoint-{step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest step first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        match = CHECKPOINT_PATTERN.match(p.name)
        if match and (p / COMPLETE).is_file():
            found.append((int(match.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step of a run, or None.

    Args:
        run_dir: a run folder.
    """
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


# ---------------------------------------------------------------------------------------------
# RNG states (tensors and lists only, so weights_only loading works)
# ---------------------------------------------------------------------------------------------


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) global RNG states, plus ``generator``'s, as plain data."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng_state(state: Mapping[str, Any], generator: torch.Generator | None = None) -> None:
    """Inverse of ``capture_rng_state``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None:
        if "generator" not in state:
            raise ValueError("the checkpoint holds no training-generator state; it was not saved by this trainer")
        generator.set_state(state["generator"])


def save_rng_state(folder: str | Path, rank: int, generator: torch.Generator | None = None) -> Path:
    """Write this rank's RNG states to ``folder/rng_rank{rank}.pt``."""
    path = Path(folder) / f"rng_rank{rank}.pt"
    torch.save(capture_rng_state(generator), path)
    return path


def load_rng_state(folder: str | Path, rank: int, generator: torch.Generator | None = None) -> None:
    """Restore this rank's RNG states from ``folder/rng_rank{rank}.pt``."""
    path = Path(folder) / f"rng_rank{rank}.pt"
    if not path.is_file():
        raise ValueError(
            f"{path} not found: the checkpoint was written by fewer processes; resume with the "
            "same number of processes"
        )
    restore_rng_state(torch.load(path, weights_only=True), generator)


# ---------------------------------------------------------------------------------------------
# Module weights
# ---------------------------------------------------------------------------------------------


def _is_lora(module: torch.nn.Module) -> bool:
    return bool(getattr(module, "peft_config", None))


def save_module_weights(module: torch.nn.Module, folder: str | Path, name: str) -> None:
    """Save a model's trained weights: ``name/`` by ``save_pretrained``, or adapter weights with LoRA.

    Args:
        module: a diffusers model (unwrapped).
        folder: the checkpoint folder.
        name: sub-folder / file stem (``"transformer"``, ``"vae"``).
    """
    folder = Path(folder)
    if _is_lora(module):
        from peft.utils import get_peft_model_state_dict

        state = {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(module).items()}
        save_file(state, folder / f"{name}_lora.safetensors")
    else:
        module.save_pretrained(folder / name, safe_serialization=True)


def load_module_weights(module: torch.nn.Module, folder: str | Path, name: str) -> None:
    """Load weights written by ``save_module_weights`` into ``module`` in place (strict).

    In place keeps the parameter objects an optimizer already holds.
    """
    folder = Path(folder)
    lora_file = folder / f"{name}_lora.safetensors"
    if _is_lora(module):
        from peft.utils import set_peft_model_state_dict

        if not lora_file.is_file():
            raise ValueError(f"{lora_file} not found; the checkpoint was not saved from a LoRA run")
        result = set_peft_model_state_dict(module, load_file(lora_file))
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"unexpected LoRA keys in {lora_file}: {result.unexpected_keys[:5]}")
        return
    files = sorted((folder / name).glob("*.safetensors"))
    if not files:
        raise ValueError(f"no safetensors weights in {folder / name}; is it a checkpoint of this run?")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(file))
    module.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def save_checkpoint(
    folder: str | Path,
    config: TrainConfig,
    modules: Mapping[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer | None,
    lr_scheduler: Any,
    state: Mapping[str, Any],
    ema: Any | None = None,
) -> Path:
    """Write everything but the per-rank RNG states into ``folder`` (call on the main process).

    Args:
        folder: the (temporary) checkpoint folder, created.
        config: the resolved run config (saved as ``config.yaml``).
        modules: ``{name: unwrapped model}`` whose trainable weights to save.
        optimizer: its ``state_dict()`` goes to ``optimizer.pt`` (None: saved elsewhere, e.g. by
            ``accelerator.save_state`` under DeepSpeed / FSDP).
        lr_scheduler: its ``state_dict()`` goes to ``lr_scheduler.pt``.
        state: JSON-able training state (global step, stage, sampler position, ...).
        ema: diffusers ``EMAModel`` or None.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        save_module_weights(module, folder, name)
    if optimizer is not None:
        torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(lr_scheduler.state_dict(), folder / "lr_scheduler.pt")
    state = dict(state)
    if ema is not None:
        ema_state = ema.state_dict()
        shadow = ema_state.pop("shadow_params")
        save_file({str(i): p.detach().contiguous().cpu() for i, p in enumerate(shadow)}, folder / "ema.safetensors")
        state["ema"] = ema_state
    (folder / "training_state.json").write_text(json.dumps(state, indent=1))
    save_config(config, folder / "config.yaml")
    return folder


def finalize_checkpoint(tmp: str | Path, final: str | Path, keep_last: int | None = None) -> Path:
    """Rename a fully written checkpoint into place, mark it complete and prune old ones.

    Args:
        tmp: the folder written by ``save_checkpoint`` and every rank's ``save_rng_state``.
        final: its name, ``checkpoint_path(run_dir, step)``.
        keep_last: keep only the newest this many complete checkpoints (None = all).
    """
    tmp, final = Path(tmp), Path(final)
    if final.exists():  # a previous attempt at the same step that did not complete
        shutil.rmtree(final)
    tmp.rename(final)
    (final / COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
    if keep_last is not None:
        for old in list_checkpoints(final.parent.parent)[:-keep_last]:
            shutil.rmtree(old)
    for stale in final.parent.glob("*.tmp"):
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(
    folder: str | Path,
    modules: Mapping[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer | None,
    lr_scheduler: Any,
    ema: Any | None = None,
) -> dict[str, Any]:
    """Restore modules, optimizer, LR schedule and EMA from a checkpoint; return its training state.

    RNG states are restored separately per rank (``load_rng_state``).
    """
    folder = Path(folder)
    if not (folder / COMPLETE).is_file():
        raise ValueError(f"{folder} is not a complete checkpoint; use latest_checkpoint(run_dir)")
    for name, module in modules.items():
        load_module_weights(module, folder, name)
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    lr_scheduler.load_state_dict(torch.load(folder / "lr_scheduler.pt", weights_only=True))
    state = json.loads((folder / "training_state.json").read_text())
    if ema is not None:
        if "ema" not in state:
            raise ValueError(f"{folder} holds no EMA state; resume with use_ema=false or start a new run")
        shadow = load_file(folder / "ema.safetensors")
        ema.load_state_dict({**state["ema"], "shadow_params": [shadow[str(i)] for i in range(len(shadow))]})
    return state


# ---------------------------------------------------------------------------------------------
# Released layout
# ---------------------------------------------------------------------------------------------


def save_model_folder(
    folder: str | Path,
    transformer,
    vae,
    text_encoder,
    tokenizer,
    scheduler,
) -> Path:
    """Write a model folder in the released diffusers layout.

    ``transformer/ vae/ text_encoder/ tokenizer/ scheduler/ model_index.json``. Uses
    ``cogfun.pipelines.CogVideoXFunPipeline.save_pretrained`` when the pipeline exists,
    otherwise saves each component and writes ``model_index.json`` by hand (``_class_name``
    ``CogVideoXFunPipeline``; the transformer's library is ``cogfun``).

    Args:
        folder: output folder; must not exist yet.
        transformer, vae, text_encoder, tokenizer, scheduler: the components (unwrapped, no LoRA
            layers: fuse adapters first).
    """
    import diffusers

    folder = Path(folder)
    if folder.exists():
        raise ValueError(f"{folder} already exists; a model folder is never overwritten")
    try:
        from ..pipelines import CogVideoXFunPipeline  # written by the pipeline issue
    except ImportError:
        CogVideoXFunPipeline = None
    if CogVideoXFunPipeline is not None:
        pipe = CogVideoXFunPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
        )
        pipe.save_pretrained(folder, safe_serialization=True)
        return folder
    folder.mkdir(parents=True)
    transformer.save_pretrained(folder / "transformer", safe_serialization=True)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(folder / "tokenizer")
    scheduler.save_pretrained(folder / "scheduler")
    index = {
        "_class_name": "CogVideoXFunPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", type(scheduler).__name__],
        "text_encoder": ["transformers", type(text_encoder).__name__],
        "tokenizer": ["transformers", type(tokenizer).__name__],
        "transformer": ["cogfun", type(transformer).__name__],
        "vae": ["diffusers", type(vae).__name__],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder
