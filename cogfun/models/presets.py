"""Named transformer presets: tiny CPU configs and the published CogVideoX-Fun sizes.

``build_transformer("cogvideox-fun-2b-inp")`` builds a model like ``DiT-XL/2`` builds one in DiT: by name.
Real sizes are built on the meta device (no memory, no weights) unless asked otherwise; load weights with
``CogVideoXFunTransformer3DModel.from_pretrained`` or ``to_empty`` + random init for benchmarks.

Sizes follow the released configs (docs/design.md 1.7): 2B = 30 heads x 64, 30 layers, sincos PE;
5B = 48 heads x 64, 42 layers, 3D RoPE; V1.5 adds ``patch_size_t=2`` and ``patch_bias=False``. The V1.5
sample grid is CogVideoX1.5's (300 x 300 latents, 81 frames, RoPE "slice" grid); a real checkpoint's
``config.json`` always wins over a preset. The V1.1 Control and Pose checkpoints are the 2B and 5B models with
32 input channels (noisy + control-video latents, no mask channel; the pipeline's ``control_video``); Control and
Pose share one architecture and differ only in their weights.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from accelerate import init_empty_weights

from .initialisation import initialise
from .transformer import CogVideoXFunTransformer3DModel

# The toy-world model trained on a CPU (the "toy" preset below; "toy-p1" is it with patch size 1).
_TOY = dict(
    num_attention_heads=5,
    attention_head_dim=64,
    in_channels=33,
    out_channels=16,
    time_embed_dim=128,
    text_embed_dim=128,
    num_layers=4,
    sample_width=12,
    sample_height=8,
    sample_frames=49,
    max_text_seq_length=16,
)

TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    # Unit tests: ~60k parameters, base grid 8 x 8 latents (64 x 64 px) x 13 latent frames (49 px frames).
    "tiny": dict(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=33,
        out_channels=16,
        time_embed_dim=32,
        text_embed_dim=32,
        num_layers=2,
        sample_width=8,
        sample_height=8,
        sample_frames=49,
        max_text_seq_length=16,
    ),
    # The toy-world model trained on a CPU: 7.16M parameters (14.3 MB in fp16), base grid 64 x 96 px (8 x 12 latents).
    "toy": _TOY,
    # The default toy model: "toy" with patch size 1 on the 8x VAE's latents: 8 pixels a token (a 20-px object
    # spans 2-3 tokens; with patch 2 it spanned 1-1.6). Sample grid 64x96 pixels = 8x12 latents = 8x12 patches.
    "toy-p1": {**_TOY, "patch_size": 1},
    # ~20M parameters, the CPU benchmark size.
    "bench-20m": dict(
        num_attention_heads=8,
        attention_head_dim=64,
        in_channels=33,
        out_channels=16,
        time_embed_dim=256,
        text_embed_dim=128,
        num_layers=4,
        sample_width=16,
        sample_height=16,
        sample_frames=49,
        max_text_seq_length=16,
    ),
    "cogvideox-fun-2b-inp": dict(
        num_attention_heads=30,
        attention_head_dim=64,
        in_channels=33,
        out_channels=16,
        num_layers=30,
        sample_width=90,
        sample_height=60,
        sample_frames=49,
        use_rotary_positional_embeddings=False,
        add_noise_in_inpaint_model=True,
    ),
    "cogvideox-fun-5b-inp": dict(
        num_attention_heads=48,
        attention_head_dim=64,
        in_channels=33,
        out_channels=16,
        num_layers=42,
        sample_width=90,
        sample_height=60,
        sample_frames=49,
        use_rotary_positional_embeddings=True,
        add_noise_in_inpaint_model=True,
    ),
    "cogvideox-fun-v1.5-5b-inp": dict(
        num_attention_heads=48,
        attention_head_dim=64,
        in_channels=33,
        out_channels=16,
        num_layers=42,
        sample_width=300,
        sample_height=300,
        sample_frames=81,
        patch_size_t=2,
        patch_bias=False,
        use_rotary_positional_embeddings=True,
        add_noise_in_inpaint_model=True,
    ),
}

# V1.1 Control and Pose (2B and 5B): the InP model of that size with 32 input channels (noisy + control-video
# latents, no mask channel) and no noise augmentation of an inpaint reference (they have none).
for _size in ("2b", "5b"):
    TRANSFORMER_PRESETS[f"cogvideox-fun-v1.1-{_size}-control"] = {
        **TRANSFORMER_PRESETS[f"cogvideox-fun-{_size}-inp"], "in_channels": 32, "add_noise_in_inpaint_model": False}

REAL_PRESETS = (
    "cogvideox-fun-2b-inp",
    "cogvideox-fun-5b-inp",
    "cogvideox-fun-v1.5-5b-inp",
    "cogvideox-fun-v1.1-2b-control",
    "cogvideox-fun-v1.1-5b-control",
)


def transformer_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The config dict of a preset, with ``overrides`` checked against the model's arguments."""
    if name not in TRANSFORMER_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(TRANSFORMER_PRESETS)}")
    known = set(inspect.signature(CogVideoXFunTransformer3DModel.__init__).parameters) - {"self"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown transformer config keys {unknown}; see CogVideoXFunTransformer3DModel's arguments")
    return {**TRANSFORMER_PRESETS[name], **overrides}


def build_transformer(
    name: str, meta: bool | None = None, seed: int | None = 0, init: str = "default", **overrides: Any
) -> CogVideoXFunTransformer3DModel:
    """Build a transformer by preset name.

    Args:
        name: a key of ``TRANSFORMER_PRESETS``.
        meta: build parameters on the meta device (default: True for the real-size presets).
        seed: seed for the random initialisation (ignored on meta).
        init: ``"default"`` (PyTorch's, as diffusers builds it) or ``"adaln-zero"`` (DiT's: every block starts as
            the identity, the output at zero; ``cogfun.models.initialisation``). Ignored on meta.
        **overrides: config keys to change, e.g. ``pos_embed_mode="scaled"``.

    Returns:
        The model in eval mode.
    """
    config = transformer_config(name, **overrides)
    if meta is None:
        meta = name in REAL_PRESETS
    if meta:
        with init_empty_weights():
            model = CogVideoXFunTransformer3DModel(**config)
    else:
        if seed is not None:
            torch.manual_seed(seed)
        model = initialise(CogVideoXFunTransformer3DModel(**config), init)
    return model.eval()


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters (works on the meta device)."""
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------
# VAE and scheduler presets
# ------------------------------------------------------------------------------------------------

# AutoencoderKLCogVideoX configs: 8x spatial, 4x temporal compression (causal first frame), 16 latent
# channels as the real VAE so the inpaint layout stays 16 + 1 + 16. Real checkpoints bring their own.
VAE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(block_out_channels=(8, 8, 8, 8), latent_channels=16, layers_per_block=1, norm_num_groups=4),
    # 0.87M parameters: a training step on 4 crops of 9x32x32 takes ~0.6 s on one CPU thread
    "toy": dict(block_out_channels=(16, 32, 32, 32), latent_channels=16, layers_per_block=1, norm_num_groups=8),
}

# The CogVideoX-2B sampler config (docs/design.md 1.5/1.7): v-prediction, scaled_linear 0.00085..0.012,
# zero-terminal-SNR rescale, trailing spacing, snr_shift 3.0 (5B: 1.0).
SCHEDULER_CONFIG: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    timestep_spacing="trailing",
    clip_sample=False,
    set_alpha_to_one=True,
    steps_offset=0,
    snr_shift_scale=3.0,
)


def build_vae(name: str, seed: int | None = 0, **overrides: Any):
    """Build an ``AutoencoderKLCogVideoX`` by preset name (random weights, eval mode)."""
    from diffusers import AutoencoderKLCogVideoX

    if name not in VAE_PRESETS:
        raise ValueError(f"unknown VAE preset {name!r}; choose one of {sorted(VAE_PRESETS)}")
    if seed is not None:
        torch.manual_seed(seed)
    return AutoencoderKLCogVideoX(**{**VAE_PRESETS[name], **overrides}).eval()


def build_scheduler(name: str = "ddim", **overrides: Any):
    """A sampler by name (``cogfun.pipelines.samplers.SAMPLERS``) with the CogVideoX-2B schedule.

    The default ``"ddim"`` is diffusers' ``DDIMScheduler`` (the reference's default sampler; like the
    reference's training ``DDPMScheduler`` it ignores ``snr_shift_scale``, which only the CogVideoX*
    schedulers apply).
    """
    from ..pipelines.samplers import make_scheduler

    return make_scheduler(name, {**SCHEDULER_CONFIG, **overrides})
