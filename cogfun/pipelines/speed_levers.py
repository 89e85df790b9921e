"""diffusers' speed levers through the one pipeline: step caches, group offload, ``torch.compile``.

Each lever is diffusers' own; this module only names them, gives each the pipeline's timestep, and undoes them:

============================  ==================================================================================
lever                         what it does (diffusers)
============================  ==================================================================================
``first-block-cache``         FirstBlockCache: when the first block's output changed less than ``threshold``
                              (relative L1) since the last full step, reuse the cached residual of the others
``faster-cache``              FasterCache: reuse spatial-attention outputs every ``spatial_attention_block_skip_
                              range`` steps and the unconditional half of CFG in a timestep window
``pab``                       Pyramid Attention Broadcast: reuse spatial-attention outputs in a timestep window
``group-offload``             keep blocks on the CPU and move groups onto the accelerator as they run (CUDA only)
``compile``                   ``torch.compile`` of the transformer (the first call compiles: time it apart)
============================  ==================================================================================

The caches and group offload need the pipeline's ``current_timestep`` and the cache context the denoising loop
sets (``CogVideoXFunPipeline.__call__``). Their cost in quality and their speed are measured in
``benchmarks/bench_speed_levers.py`` (results in benchmarks/RESULTS.md). Usage::

    enable_speed_lever(pipe, "first-block-cache", threshold=0.1)
    video = pipe.text_to_video("a red circle moving right on a grey background").frames[0]
    disable_speed_levers(pipe)
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["SPEED_LEVERS", "disable_speed_levers", "enable_speed_lever"]

SPEED_LEVERS = ("first-block-cache", "faster-cache", "pab", "group-offload", "compile")


def _cache_config(pipe, lever: str, options: dict[str, Any]):
    from diffusers import FasterCacheConfig, FirstBlockCacheConfig, PyramidAttentionBroadcastConfig

    timestep = dict(current_timestep_callback=lambda: pipe.current_timestep)
    if lever == "first-block-cache":
        return FirstBlockCacheConfig(**{"threshold": 0.05, **options})
    if lever == "pab":
        return PyramidAttentionBroadcastConfig(
            **{"spatial_attention_block_skip_range": 2, "spatial_attention_timestep_skip_range": (100, 800),
               **timestep, **options})
    return FasterCacheConfig(
        **{"spatial_attention_block_skip_range": 2, "spatial_attention_timestep_skip_range": (-1, 681),
           "unconditional_batch_skip_range": 5, "unconditional_batch_timestep_skip_range": (-1, 781),
           "tensor_format": "BFCHW", **timestep,
           # the inputs that hold both CFG halves, split by FasterCache: diffusers' names and the inpaint latents
           "_unconditional_conditional_input_kwargs_identifiers": (
               "hidden_states", "encoder_hidden_states", "timestep", "inpaint_latents"),
           **options})


def enable_speed_lever(pipe, lever: str, **options: Any):
    """Turn one of ``SPEED_LEVERS`` on for ``pipe`` (options go to diffusers' config or call); returns ``pipe``.

    Caches replace each other (one at a time); ``compile`` wraps the transformer's forward in place.
    """
    if lever not in SPEED_LEVERS:
        raise ValueError(f"unknown speed lever {lever!r}; choose one of {', '.join(SPEED_LEVERS)}")
    transformer = pipe.transformer
    if lever in ("first-block-cache", "faster-cache", "pab"):
        if getattr(transformer, "is_cache_enabled", False):
            transformer.disable_cache()
        try:
            transformer.enable_cache(_cache_config(pipe, lever, options))
        except TypeError as err:
            raise ValueError(f"{lever}: {err}; see diffusers' {lever} config for the accepted options") from err
    elif lever == "group-offload":
        if not torch.cuda.is_available():
            raise ValueError("group-offload moves blocks between the CPU and an accelerator; it needs CUDA "
                             "(on a CPU-only machine everything already lives on the CPU)")
        transformer.enable_group_offload(
            onload_device=torch.device("cuda"), offload_device=torch.device("cpu"),
            **{"offload_type": "block_level", "num_blocks_per_group": 1, **options})
    else:
        transformer.compile(**options)
    return pipe


def disable_speed_levers(pipe):
    """Undo the caches (``compile`` and group offload stay: reload the transformer to drop them); returns ``pipe``."""
    if getattr(pipe.transformer, "is_cache_enabled", False):
        pipe.transformer.disable_cache()
    return pipe
