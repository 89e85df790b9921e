"""The samplers CogVideoX-Fun offers, picked by name (DESIGN.md 1.7).

Every sampler is a diffusers scheduler built from the checkpoint's scheduler config (v-prediction,
scaled_linear betas, zero-terminal-SNR rescale, trailing spacing), so switching sampler never changes the
noise schedule the model was trained with, only the integrator. The reference's UI offers the same seven.
"""

from __future__ import annotations

import inspect
from typing import Any

from diffusers import (
    CogVideoXDDIMScheduler,
    CogVideoXDPMScheduler,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
)

SAMPLERS: dict[str, type] = {
    "ddim": DDIMScheduler,  # the reference default
    "cogvideox_ddim": CogVideoXDDIMScheduler,
    "cogvideox_dpm": CogVideoXDPMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "dpm++": DPMSolverMultistepScheduler,
    "pndm": PNDMScheduler,
}


def make_scheduler(name: str, config: Any):
    """Build sampler ``name`` from a scheduler config (a scheduler's ``.config`` or a dict).

    Args:
        name: one of ``SAMPLERS``.
        config: the checkpoint's scheduler config; keys a sampler does not know are ignored by diffusers.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    accepted = set(inspect.signature(SAMPLERS[name].__init__).parameters)
    config = {k: v for k, v in dict(config).items() if k in accepted or k.startswith("_")}  # e.g. drop snr_shift_scale
    if name == "pndm":
        config.setdefault("skip_prk_steps", True)  # PRK warm-up steps break short schedules
    if name == "dpm++":
        # zero-terminal SNR makes the last sigma infinite; DPM++ then needs a finite final step
        config.setdefault("final_sigmas_type", "zero")
    return SAMPLERS[name].from_config(config)


def sampler_name(scheduler: Any) -> str:
    """The name of a scheduler instance's sampler (for logs and saved configs)."""
    for name, cls in SAMPLERS.items():
        if type(scheduler) is cls:
            return name
    return type(scheduler).__name__
