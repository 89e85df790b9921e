"""The samplers CogVideoX-Fun offers, picked by name (docs/design.md 1.7).

Every sampler is a diffusers scheduler built from the checkpoint's scheduler config (v-prediction,
scaled_linear betas, zero-terminal-SNR rescale, trailing spacing), so switching sampler never changes the
noise schedule the model was trained with, only the integrator (PNDM, which cannot rescale, is given the
rescaled betas). The reference's UI offers the same seven.

Exception, by design: ``cogvideox_ddim`` and ``cogvideox_dpm`` shift the SNR by ``snr_shift_scale`` (3.0 for
CogVideoX-2B, diffusers' default), the schedule CogVideoX itself was trained with in its original code. Models
trained by a DDPM loop without that shift (the reference's fine-tuning loop, cogfun's toy model) see noise
levels there they were not trained at; use ``ddim`` (the default) for them.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

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
    source = config
    config = {k: v for k, v in dict(config).items() if k in accepted or k.startswith("_")}  # e.g. drop snr_shift_scale
    if name == "pndm":
        config.setdefault("skip_prk_steps", True)  # PRK warm-up steps break short schedules
    if dict(source).get("rescale_betas_zero_snr") and "rescale_betas_zero_snr" not in accepted:
        # diffusers' PNDM has no zero-terminal-SNR rescale: without this it would sample another schedule than
        # the one the model was trained on (alphas_cumprod off by up to 0.035). Give it the rescaled betas.
        from diffusers import DDPMScheduler

        known = set(inspect.signature(DDPMScheduler.__init__).parameters)
        alphas_cumprod = DDPMScheduler(**{k: v for k, v in dict(source).items() if k in known}).alphas_cumprod.double()
        # PNDM divides by sqrt(alphas_cumprod): like diffusers' Euler under the rescale, keep the last one at 2**-24
        # instead of 0 (a change of 6e-8)
        alphas_cumprod[-1] = 2.0**-24
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        config["trained_betas"] = (1 - alphas_cumprod / previous).tolist()
        # diffusers resets the keys listed in _use_default_values to their defaults: keep ours
        config["_use_default_values"] = [k for k in config.get("_use_default_values", []) if k != "trained_betas"]
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
