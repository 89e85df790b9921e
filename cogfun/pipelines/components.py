"""The five components of a CogVideoX-Fun pipeline built from presets, with random weights.

A real checkpoint brings tokenizer, text encoder, VAE, transformer and scheduler in a folder; on a CPU
laptop (and in tests) the same classes are built tiny in code, with a tokenizer whose vocabulary is the
toy world's words, so nothing is downloaded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ..models.presets import build_scheduler, build_transformer, build_vae
from ..models.text_encoder import build_tiny_t5_encoder, build_toy_tokenizer

# transformer preset -> (VAE preset, T5 width)
COMPONENT_PRESETS: dict[str, tuple[str, int]] = {"tiny": ("tiny", 32), "toy": ("toy", 128), "toy-p1": ("toy", 128)}


def toy_vocabulary() -> list[str]:
    """The words of every toy-world caption (the offline tokenizer's vocabulary)."""
    from ..data.toy import TOY_VOCABULARY

    return list(TOY_VOCABULARY)


def build_components(preset: str = "tiny", seed: int = 0, **transformer_overrides: Any) -> dict[str, Any]:
    """Tokenizer, text encoder, VAE, transformer and scheduler of one preset (random weights, eval mode).

    Args:
        preset: ``"tiny"`` (unit tests), ``"toy"`` (patch 2) or ``"toy-p1"`` (patch 1, the default toy model's
            architecture) before training.
        seed: seed of every random initialisation.
        **transformer_overrides: transformer config keys, e.g. ``pos_embed_mode="scaled"``.
    """
    if preset not in COMPONENT_PRESETS:
        raise ValueError(f"unknown component preset {preset!r}; choose one of {sorted(COMPONENT_PRESETS)}")
    vae_preset, text_width = COMPONENT_PRESETS[preset]
    transformer = build_transformer(preset, meta=False, seed=seed, **transformer_overrides)
    tokenizer = build_toy_tokenizer(toy_vocabulary(), model_max_length=transformer.config.max_text_seq_length)
    text_encoder = build_tiny_t5_encoder(len(tokenizer), d_model=text_width, seed=seed)
    return dict(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=build_vae(vae_preset, seed=seed),
        transformer=transformer,
        scheduler=build_scheduler("ddim"),
    )


def write_initial_model(
    out: str | os.PathLike, preset: str = "toy-p1", vae_path: str | os.PathLike | None = None, seed: int = 0,
    **transformer_overrides: Any,
) -> Path:
    """A model folder in the released layout before transformer training: the preset's components (random
    transformer, the toy T5 and tokenizer, seeded) with a trained VAE (``vae_path``: a ``save_pretrained``
    folder, or a folder holding ``vae/``).

    The toy recipe encodes its latent cache with this folder's VAE and T5 and trains the transformer from it
    (``pretrained:``), so cache and training share the very same frozen parts. Refuses an existing folder.
    """
    from diffusers import AutoencoderKLCogVideoX

    from .pipeline import CogVideoXFunPipeline

    out = Path(out)
    if (out / "model_index.json").exists():
        raise ValueError(f"{out} already holds a model; write the initial model to a new folder")
    parts = build_components(preset, seed=seed, **transformer_overrides)
    if vae_path is not None:
        vae_path = Path(vae_path)
        if (vae_path / "vae" / "config.json").is_file():
            vae_path = vae_path / "vae"
        if not (vae_path / "config.json").is_file():
            raise ValueError(f"no VAE at {vae_path}; point vae_path at a VAE run's model folder (RUN/model)")
        parts["vae"] = AutoencoderKLCogVideoX.from_pretrained(vae_path).eval()
    CogVideoXFunPipeline(**parts).save_pretrained(out)
    return out


# ------------------------------------------------------------------------------------------------
# The default model
# ------------------------------------------------------------------------------------------------

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "toy-model"


def load_pipeline(model: str | os.PathLike | None = None, seed: int = 0, quiet: bool = False):
    """The pipeline of a model folder, a component preset name, or (``None``) the default model.

    The default is the toy-world checkpoint shipped in ``cogfun/assets/toy-model``; where it is absent
    (a fresh clone before training) the ``tiny`` preset with random weights stands in, with a notice.
    """
    from .pipeline import CogVideoXFunPipeline

    if model is None:
        if (DEFAULT_MODEL_DIR / "model_index.json").exists():
            model = DEFAULT_MODEL_DIR
        else:
            if not quiet:
                warnings.warn("no trained default model in cogfun/assets/toy-model: using the random 'tiny' preset",
                              stacklevel=2)
            model = "tiny"
    if isinstance(model, str) and model in COMPONENT_PRESETS:
        return CogVideoXFunPipeline(**build_components(model, seed=seed))
    # no "Loading pipeline components" / "Loading weights" bars: for five small folders they are noise, and in a
    # notebook they are saved as frozen widgets
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    if os.path.isdir(model):
        from .validation import check_model_folder

        check_model_folder(model)  # a truncated safetensors or a bad config.json is named before loading
    try:
        return CogVideoXFunPipeline.from_pretrained(model)
    finally:
        diffusers_logging.enable_progress_bar()
        transformers_logging.enable_progress_bar()
