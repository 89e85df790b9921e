"""The five components of a CogVideoX-Fun pipeline built from presets, with random weights.

A real checkpoint brings tokenizer, text encoder, VAE, transformer and scheduler in a folder; on a CPU
laptop (and in tests) the same classes are built tiny in code, with a tokenizer whose vocabulary is the
toy world's words, so nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

from ..models.presets import build_scheduler, build_transformer, build_vae
from ..models.text_encoder import build_tiny_t5_encoder, build_toy_tokenizer

# transformer preset -> (VAE preset, T5 width)
COMPONENT_PRESETS: dict[str, tuple[str, int]] = {"tiny": ("tiny", 32), "toy": ("toy", 128)}


def toy_vocabulary() -> list[str]:
    """The words of every toy-world caption (the offline tokenizer's vocabulary)."""
    from ..data.toy import TOY_VOCABULARY

    return list(TOY_VOCABULARY)


def build_components(preset: str = "tiny", seed: int = 0, **transformer_overrides: Any) -> dict[str, Any]:
    """Tokenizer, text encoder, VAE, transformer and scheduler of one preset (random weights, eval mode).

    Args:
        preset: ``"tiny"`` (unit tests) or ``"toy"`` (the toy-world model before training).
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
