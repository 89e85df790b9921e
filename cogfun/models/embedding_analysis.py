"""Looking at positional embeddings: tables per resize mode, similarity maps of positions, distance to base.

CogVideoX-2B's 3D sincos table was built for one sample grid (13 x 30 x 45 latent patches); at another grid
the kit offers four ways to change it (``truncate``, ``extrapolate``, ``interpolate``, ``scaled``, see
``positional_embeddings`` and docs/design.md 1.3), and the 5B models use 3D RoPE instead. Two pictures tell the
modes apart, and both are computed here so notebooks (03) and the embedding explorer panel share them:

* **Similarity map of one position** -- cosine similarity of the embedding at a query position
  ``(t, y, x)`` with every position of the grid. A healthy table gives a blob centred on the query that
  falls off smoothly in every direction; ``truncate`` at a new width shows the 2D layout breaking (rows of
  the new grid read positions of other base rows). For RoPE the "embedding" is the row ``[cos | sin]`` of
  the rotation angles, whose cosine similarity is the mean ``cos`` of the angle differences: the kernel a
  query and a key at those positions see.
* **Distance to the base table** -- how far each position's vector is from the vectors the model was
  trained on. ``how="aligned"``: from the base row at the same *relative* place (the base cell containing
  the target cell's centre; time is not rescaled, frames past the base clip to its last frame).
  ``how="nearest"``: from the nearest base row anywhere (is this a vector the model has ever seen?).
  Sincos rows have norm ``sqrt(D / 2)``, RoPE rows ``sqrt(head_dim)``; distances are plain L2.

Grids are in latent frames x patches (the transformer's token grid); tables have rows in ``(t, h, w)``
order, as the transformer flattens tokens.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Sequence

import torch

from .positional_embeddings import POS_EMBED_MODES, rotary_embeddings, sincos_table

ROPE_MODES = ("rope", "rope_diffusers")  # 3D RoPE with the reference's numpy spacing / diffusers' spacing
EMBEDDING_MODES = POS_EMBED_MODES + ROPE_MODES
DISTANCE_KINDS = ("aligned", "nearest")


# ------------------------------------------------------------------------------------------------
# What a model's positions look like
# ------------------------------------------------------------------------------------------------


def embedding_config(source: Any) -> dict[str, Any]:
    """The transformer config keys that decide its positional embedding.

    Args:
        source: a ``CogVideoXFunTransformer3DModel`` (or anything with a diffusers ``.config``), a preset
            name of ``cogfun.models.presets.TRANSFORMER_PRESETS``, or a config dict (missing keys take the
            model's defaults).

    Returns:
        the full config dict (the model's defaults filled in).
    """
    from .presets import transformer_config
    from .transformer import CogVideoXFunTransformer3DModel

    defaults = {
        name: p.default
        for name, p in inspect.signature(CogVideoXFunTransformer3DModel.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    if isinstance(source, str):
        given = transformer_config(source)
    elif hasattr(source, "config"):
        given = dict(source.config)
    elif isinstance(source, dict):
        given = dict(source)
    else:
        raise ValueError(
            f"cannot read a transformer config from {type(source).__name__}; pass a transformer, a preset "
            "name (e.g. 'tiny') or a config dict"
        )
    return {**defaults, **given}


def base_grid(source: Any) -> tuple[int, int, int]:
    """The sample grid ``(latent frames, patch rows, patch columns)`` the table was built for (2B: 13, 30, 45).

    Args:
        source: see :func:`embedding_config`.
    """
    cfg = embedding_config(source)
    frames = (cfg["sample_frames"] - 1) // cfg["temporal_compression_ratio"] + 1
    if cfg.get("patch_size_t"):
        frames = (frames + cfg["patch_size_t"] - 1) // cfg["patch_size_t"]
    return frames, cfg["sample_height"] // cfg["patch_size"], cfg["sample_width"] // cfg["patch_size"]


def default_mode(source: Any) -> str:
    """The mode the model itself uses: its ``pos_embed_mode``, or a RoPE mode for rotary models."""
    cfg = embedding_config(source)
    if cfg["use_rotary_positional_embeddings"]:
        return "rope" if cfg.get("rope_spacing", "numpy") == "numpy" else "rope_diffusers"
    return cfg["pos_embed_mode"]


def position_table(source: Any, mode: str, frames: int, height: int, width: int) -> torch.Tensor:
    """The positional vectors of a ``frames x height x width`` token grid under one mode.

    Args:
        source: see :func:`embedding_config`; only its config is read (no weights are needed).
        mode: a sincos mode of ``POS_EMBED_MODES`` or a RoPE mode of ``ROPE_MODES``. Any mode can be asked
            of any model (the 2B table of a 5B config is computed as if it had one).
        frames: latent frames (temporal patches for ``patch_size_t`` models).
        height, width: patch rows and columns (pixels / 16 for CogVideoX).

    Returns:
        ``(frames * height * width, D)`` float64, rows in ``(t, h, w)`` order; ``D`` is the model width for
        sincos and ``2 * attention_head_dim`` (``[cos | sin]``) for RoPE.
    """
    if mode not in EMBEDDING_MODES:
        raise ValueError(f"mode must be one of {EMBEDDING_MODES} (got {mode!r})")
    if min(frames, height, width) < 1:
        raise ValueError(f"the grid needs at least one position per axis (got {frames}x{height}x{width})")
    cfg = embedding_config(source)
    t0, h0, w0 = base_grid(cfg)
    if mode in ROPE_MODES:
        spacing = "numpy" if mode == "rope" else "diffusers"
        cos, sin = rotary_embeddings(
            cfg["attention_head_dim"], height, width, frames, h0, w0, patch_size_t=cfg.get("patch_size_t"),
            spacing=spacing,
        )  # (F*h*w, head_dim) each
        return torch.cat([cos, sin], dim=-1).to(torch.float64)  # (F*h*w, 2 * head_dim)
    embed_dim = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    return sincos_table(
        mode, embed_dim, frames, height, width, t0, h0, w0,
        cfg["spatial_interpolation_scale"], cfg["temporal_interpolation_scale"],
    )  # (F*h*w, D)


def base_table(source: Any, mode: str | None = None) -> torch.Tensor:
    """The table at the sample grid (every sincos mode gives the same one there), ``(T0*H0*W0, D)``.

    Args:
        source: see :func:`embedding_config`.
        mode: ``None`` picks a RoPE mode for rotary models and ``"extrapolate"`` (the plain table) otherwise.
    """
    if mode is None:
        mode = default_mode(source) if default_mode(source) in ROPE_MODES else "extrapolate"
    return position_table(source, mode, *base_grid(source))


# ------------------------------------------------------------------------------------------------
# Similarity and distance maps
# ------------------------------------------------------------------------------------------------


def _check_table(table: torch.Tensor, frames: int, height: int, width: int, name: str = "table") -> None:
    if table.ndim != 2 or table.shape[0] != frames * height * width:
        raise ValueError(
            f"{name} must be (frames * height * width, D) = ({frames * height * width}, D) for a "
            f"{frames}x{height}x{width} grid (got {tuple(table.shape)}); build it with position_table"
        )


def position_similarity_map(
    table: torch.Tensor, frames: int, height: int, width: int, query: Sequence[int] = (0, 0, 0)
) -> torch.Tensor:
    """Cosine similarity of the position ``query`` with every position of the grid.

    Args:
        table: ``(frames * height * width, D)``, rows in ``(t, h, w)`` order (:func:`position_table`).
        frames, height, width: the grid.
        query: ``(t, y, x)`` of the position compared with all others.

    Returns:
        ``(frames, height, width)`` float64 in [-1, 1]; 1 at the query.
    """
    _check_table(table, frames, height, width)
    t, y, x = (int(v) for v in query)
    if not (0 <= t < frames and 0 <= y < height and 0 <= x < width):
        raise ValueError(
            f"query (t, y, x) = {(t, y, x)} is outside the {frames}x{height}x{width} grid; use indices "
            f"below ({frames}, {height}, {width})"
        )
    table = table.to(torch.float64)
    unit = table / table.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # (N, D)
    row = unit[(t * height + y) * width + x]  # (D,)
    return (unit @ row).reshape(frames, height, width)  # (F, h, w)


def aligned_base_index(
    frames: int, height: int, width: int, base: Sequence[int]
) -> torch.Tensor:
    """For each position of a grid, the row of the base table at the same relative place.

    Spatially the base cell containing the target cell's centre, ``floor((y + 0.5) * H0 / h)``; time is
    not rescaled (every resize mode keeps latent frame ``t`` at ``t``), frames past the base clip to its last.

    Args:
        frames, height, width: the target grid.
        base: ``(T0, H0, W0)``, the sample grid (:func:`base_grid`).

    Returns:
        ``(frames * height * width,)`` long indices into the base table's rows.
    """
    t0, h0, w0 = (int(v) for v in base)
    ts = torch.arange(frames).clamp_max(t0 - 1)  # (F,)
    ys = ((torch.arange(height) + 0.5) * h0 / height).floor().long().clamp(0, h0 - 1)  # (h,)
    xs = ((torch.arange(width) + 0.5) * w0 / width).floor().long().clamp(0, w0 - 1)  # (w,)
    index = (ts[:, None, None] * h0 + ys[None, :, None]) * w0 + xs[None, None, :]  # (F, h, w)
    return index.flatten()


def distance_to_base(
    table: torch.Tensor,
    base_table: torch.Tensor,
    frames: int,
    height: int,
    width: int,
    base: Sequence[int],
    how: str = "aligned",
    chunk: int = 2048,
) -> torch.Tensor:
    """L2 distance of each position's vector to the base table (see the module docstring).

    Args:
        table: ``(frames * height * width, D)`` of the target grid.
        base_table: ``(T0 * H0 * W0, D)`` of the sample grid (:func:`base_table`).
        frames, height, width: the target grid.
        base: ``(T0, H0, W0)``.
        how: ``"aligned"`` (the base row at the same relative place) or ``"nearest"`` (the closest base row
            anywhere; costs ``N * N0 * D``, chunked over ``chunk`` target rows: seconds at the 2B grid).
        chunk: target rows per block for ``"nearest"``.

    Returns:
        ``(frames, height, width)`` float64, >= 0.
    """
    _check_table(table, frames, height, width)
    _check_table(base_table, *base, name="base_table")
    if table.shape[1] != base_table.shape[1]:
        raise ValueError(
            f"table width {table.shape[1]} and base_table width {base_table.shape[1]} differ; build both "
            "from the same model and mode family"
        )
    if how not in DISTANCE_KINDS:
        raise ValueError(f"how must be one of {DISTANCE_KINDS} (got {how!r})")
    table, base_table = table.to(torch.float64), base_table.to(torch.float64)
    if how == "aligned":
        aligned = base_table[aligned_base_index(frames, height, width, base)]  # (N, D)
        dist = (table - aligned).norm(dim=-1)
    else:
        dist = torch.cat([torch.cdist(block, base_table).amin(dim=1) for block in table.split(chunk)])  # (N,)
    return dist.reshape(frames, height, width)


def compare_modes(
    source: Any,
    frames: int,
    height: int,
    width: int,
    query: Sequence[int] = (0, 0, 0),
    modes: Sequence[str] = POS_EMBED_MODES,
    how: Sequence[str] = ("aligned",),
) -> list[dict[str, Any]]:
    """Similarity map and distance to the base table of several modes at one grid (one row per mode).

    Args:
        source: see :func:`embedding_config`.
        frames, height, width: the target grid (latent frames x patches).
        query: ``(t, y, x)`` for the similarity maps.
        modes: modes to compare; a mode that cannot serve the grid (e.g. ``truncate`` past the base table)
            gets ``error`` set instead of maps.
        how: distance kinds to compute (``"aligned"``, ``"nearest"``).

    Returns:
        dicts with ``mode``, ``similarity`` ``(F, h, w)``, ``distance_<how>`` ``(F, h, w)``,
        ``mean_distance_<how>`` (float) and ``error`` (``None`` or the message).
    """
    base = base_grid(source)
    rows = []
    for mode in modes:
        row: dict[str, Any] = {"mode": mode, "error": None}
        try:
            table = position_table(source, mode, frames, height, width)
        except ValueError as err:
            row["error"] = str(err)
            rows.append(row)
            continue
        reference = base_table(source, mode if mode in ROPE_MODES else "extrapolate")
        row["similarity"] = position_similarity_map(table, frames, height, width, query)
        for kind in how:
            dist = distance_to_base(table, reference, frames, height, width, base, how=kind)
            row[f"distance_{kind}"] = dist
            row[f"mean_distance_{kind}"] = float(dist.mean())
        rows.append(row)
    return rows


def sincos_row_norm(embed_dim: int) -> float:
    """Norm of every sincos row, ``sqrt(D / 2)`` (each sin/cos pair has norm 1): a scale for distances."""
    return math.sqrt(embed_dim / 2)
