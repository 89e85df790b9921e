"""Positional embeddings of CogVideoX-Fun at any resolution: four sincos strategies and 3D RoPE.

CogVideoX-2B adds a fixed 3D sincos table built for its sample grid (13 latent frames x 30 x 45 patches,
i.e. 49 x 480 x 720 pixels; spatial interpolation scale 1.875). Channels are laid out
``[temporal D/4 | spatial 3D/4]`` and tokens are flattened in ``(t, h, w)`` order. At another grid the
table must change, and there are several defensible ways to change it (docs/design.md 1.3):

================ ==========================================================================================
``truncate``     Original CogVideoX code: the first ``F*h*w`` rows of the flattened base table. Cheap, but
                 the 2D layout breaks as soon as the width differs from the base width (row ``r`` of the new
                 grid reads positions from rows ``r*w/45`` ...).
``extrapolate``  diffusers: recompute sincos on the new grid at the same scale; a larger grid sees
                 positions the model never saw.
``interpolate``  CogVideoX-Fun (its checkpoints expect this): trilinear resize of the base table to
                 ``(13, h, w)`` (``align_corners=False``), then keep the first ``F`` latent frames. Time is
                 truncated, not resized.
``scaled``       PixArt-Sigma style analytic version of ``interpolate``: recompute sincos with the spatial
                 positions rescaled into the base range, ``arange(n) * base / n / scale``.
================ ==========================================================================================

The 5B models use 3D rotary embeddings instead (:func:`rotary_embeddings`): a new grid is fitted and
centred into the base 45x30 box (``get_resize_crop_region_for_grid`` of the reference) and its positions
are spaced as numpy ``linspace(start, stop, n, endpoint=False)``. diffusers' torch port spaces them as
``linspace(start, stop * (n - 1) / n, n)``, which differs when the crop does not start at 0; both are
offered (``spacing="numpy"`` for checkpoint fidelity, ``spacing="diffusers"``). CogVideoX 1.5
(``patch_size_t=2``) uses plain ``arange`` positions ("slice" grid).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.embeddings import (
    get_1d_rotary_pos_embed,
    get_1d_sincos_pos_embed_from_grid,
    get_2d_sincos_pos_embed_from_grid,
    get_3d_sincos_pos_embed,
)

POS_EMBED_MODES = ("interpolate", "extrapolate", "truncate", "scaled")
ROPE_SPACINGS = ("numpy", "diffusers")


# ------------------------------------------------------------------------------------------------
# Sincos tables
# ------------------------------------------------------------------------------------------------


def base_sincos_table(
    embed_dim: int,
    base_frames: int,
    base_height: int,
    base_width: int,
    spatial_interpolation_scale: float = 1.875,
    temporal_interpolation_scale: float = 1.0,
) -> torch.Tensor:
    """The 3D sincos table of the sample grid, exactly as diffusers builds it.

    Args:
        embed_dim: transformer width ``D`` (divisible by 16).
        base_frames, base_height, base_width: the sample grid in latent patches (2B: 13, 30, 45).
        spatial_interpolation_scale, temporal_interpolation_scale: position divisors (2B: 1.875, 1.0).

    Returns:
        ``(base_frames * base_height * base_width, D)`` float64, rows in ``(t, h, w)`` order.
    """
    table = get_3d_sincos_pos_embed(  # width first: diffusers' convention
        embed_dim,
        (base_width, base_height),
        base_frames,
        spatial_interpolation_scale,
        temporal_interpolation_scale,
        output_type="pt",
    )  # (T, H*W, D)
    return table.flatten(0, 1).to(torch.float64)


def _sincos_from_positions(
    embed_dim: int, pos_t: torch.Tensor, pos_h: torch.Tensor, pos_w: torch.Tensor
) -> torch.Tensor:
    """Sincos table from explicit 1D positions, channel layout ``[t D/4 | (w, h) 3D/4]`` as diffusers."""
    dim_spatial, dim_temporal = 3 * embed_dim // 4, embed_dim // 4
    grid_w, grid_h = torch.meshgrid(pos_w, pos_h, indexing="xy")  # (h, w) each, w first like diffusers
    grid = torch.stack([grid_w, grid_h], dim=0).reshape(2, 1, len(pos_h), len(pos_w))
    spatial = get_2d_sincos_pos_embed_from_grid(dim_spatial, grid, output_type="pt")  # (h*w, 3D/4)
    temporal = get_1d_sincos_pos_embed_from_grid(dim_temporal, pos_t, output_type="pt")  # (T, D/4)
    num_t, num_s = len(pos_t), spatial.shape[0]
    table = torch.cat(
        [temporal[:, None, :].expand(num_t, num_s, -1), spatial[None].expand(num_t, num_s, -1)], dim=-1
    )  # (T, h*w, D)
    return table.flatten(0, 1).to(torch.float64)


def sincos_table(
    mode: str,
    embed_dim: int,
    frames: int,
    height: int,
    width: int,
    base_frames: int,
    base_height: int,
    base_width: int,
    spatial_interpolation_scale: float = 1.875,
    temporal_interpolation_scale: float = 1.0,
) -> torch.Tensor:
    """The sincos table of a ``frames x height x width`` patch grid under one resize strategy.

    Args:
        mode: one of ``POS_EMBED_MODES`` (see the module docstring).
        embed_dim: transformer width ``D``.
        frames, height, width: the target grid in latent frames and patches.
        base_frames, base_height, base_width: the sample grid the model was trained on.
        spatial_interpolation_scale, temporal_interpolation_scale: as in the model config.

    Returns:
        ``(frames * height * width, D)`` float64, rows in ``(t, h, w)`` order.

    Raises:
        ValueError: unknown mode; ``interpolate``/``truncate`` asked for more positions than the base
            table holds.
    """
    if mode not in POS_EMBED_MODES:
        raise ValueError(f"pos_embed_mode must be one of {POS_EMBED_MODES} (got {mode!r})")
    if mode == "extrapolate":
        return base_sincos_table(
            embed_dim, frames, height, width, spatial_interpolation_scale, temporal_interpolation_scale
        )
    if mode == "scaled":
        pos_t = torch.arange(frames, dtype=torch.float64) / temporal_interpolation_scale
        pos_h = torch.arange(height, dtype=torch.float64) * base_height / height / spatial_interpolation_scale
        pos_w = torch.arange(width, dtype=torch.float64) * base_width / width / spatial_interpolation_scale
        return _sincos_from_positions(embed_dim, pos_t, pos_h, pos_w)

    base = base_sincos_table(
        embed_dim, base_frames, base_height, base_width, spatial_interpolation_scale, temporal_interpolation_scale
    )  # (T0*H0*W0, D)
    if mode == "truncate":
        needed = frames * height * width
        if needed > base.shape[0]:
            raise ValueError(
                f"pos_embed_mode='truncate' needs {needed} positions but the base table holds {base.shape[0]} "
                f"({base_frames}x{base_height}x{base_width}); use pos_embed_mode='interpolate' or a smaller video"
            )
        return base[:needed]

    # interpolate: (1, D, T0, H0, W0) -> trilinear to (T0, h, w) -> first `frames` latent frames.
    if frames > base_frames:
        raise ValueError(
            f"pos_embed_mode='interpolate' keeps the base table's {base_frames} latent frames "
            f"({(base_frames - 1) * 4 + 1} video frames) but got {frames} latent frames; use fewer frames "
            f"(long videos: generate in segments) or pos_embed_mode='extrapolate'"
        )
    grid = base.reshape(base_frames, base_height, base_width, embed_dim).permute(3, 0, 1, 2)[None]
    grid = F.interpolate(grid, size=(base_frames, height, width), mode="trilinear", align_corners=False)
    grid = grid[0, :, :frames]  # (D, frames, h, w): time is truncated, not resized
    return grid.permute(1, 2, 3, 0).reshape(frames * height * width, embed_dim)


# ------------------------------------------------------------------------------------------------
# 3D RoPE (5B models)
# ------------------------------------------------------------------------------------------------


def resize_crop_region_for_grid(
    grid_height: int, grid_width: int, base_height: int, base_width: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Fit a ``grid_height x grid_width`` grid into the base box keeping its aspect, centred.

    Returns ``((top, left), (bottom, right))`` in base-grid units, as the reference's
    ``get_resize_crop_region_for_grid`` (Python's round, i.e. round-half-to-even).
    """
    ratio = grid_height / grid_width
    if ratio > base_height / base_width:
        resize_height, resize_width = base_height, int(round(base_height / grid_height * grid_width))
    else:
        resize_width, resize_height = base_width, int(round(base_width / grid_width * grid_height))
    top = int(round((base_height - resize_height) / 2.0))
    left = int(round((base_width - resize_width) / 2.0))
    return (top, left), (top + resize_height, left + resize_width)


def rope_positions(
    grid_height: int,
    grid_width: int,
    frames: int,
    base_height: int,
    base_width: int,
    patch_size_t: int | None = None,
    spacing: str = "numpy",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1D positions ``(t, h, w)`` that the rotary embedding rotates by.

    Args:
        grid_height, grid_width: the patch grid of the video.
        frames: latent frames (CogVideoX 1.0) or temporal patches (1.5).
        base_height, base_width: the sample grid in patches (5B: 30, 45).
        patch_size_t: ``None`` for CogVideoX 1.0 (fit-and-centre grid); an int for 1.5 (``arange``).
        spacing: ``"numpy"`` (reference, ``endpoint=False``) or ``"diffusers"``.
    """
    if spacing not in ROPE_SPACINGS:
        raise ValueError(f"rope spacing must be one of {ROPE_SPACINGS} (got {spacing!r})")
    # numpy spacing is float64 like the reference's numpy grid; the others float32 like diffusers
    dtype = torch.float64 if (spacing == "numpy" and patch_size_t is None) else torch.float32
    pos_t = torch.arange(frames, dtype=dtype)
    if patch_size_t is not None:  # CogVideoX 1.5: "slice" grid, plain integer positions
        return pos_t, torch.arange(grid_height, dtype=dtype), torch.arange(grid_width, dtype=dtype)
    (top, left), (bottom, right) = resize_crop_region_for_grid(grid_height, grid_width, base_height, base_width)
    if spacing == "numpy":
        pos_h = torch.from_numpy(np.linspace(top, bottom, grid_height, endpoint=False))
        pos_w = torch.from_numpy(np.linspace(left, right, grid_width, endpoint=False))
    else:  # diffusers' torch port: same when the crop starts at 0, shifted otherwise
        # float32 like diffusers, so the two agree bit for bit
        pos_h = torch.linspace(top, bottom * (grid_height - 1) / grid_height, grid_height, dtype=torch.float32)
        pos_w = torch.linspace(left, right * (grid_width - 1) / grid_width, grid_width, dtype=torch.float32)
    return pos_t, pos_h, pos_w


def rotary_embeddings(
    attention_head_dim: int,
    grid_height: int,
    grid_width: int,
    frames: int,
    base_height: int,
    base_width: int,
    patch_size_t: int | None = None,
    spacing: str = "numpy",
    theta: float = 10000.0,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """3D rotary embeddings ``(cos, sin)`` for the video tokens of one grid.

    Head channels are split ``[t D/4 | h 3D/8 | w 3D/8]`` as in CogVideoX.

    Args:
        attention_head_dim: per-head width (64 for every released model).
        grid_height, grid_width, frames, base_height, base_width, patch_size_t, spacing: see
            :func:`rope_positions`.
        theta: RoPE base frequency.
        device: where the result lives.

    Returns:
        ``(cos, sin)``, each ``(frames * grid_height * grid_width, attention_head_dim)`` float32.
    """
    pos_t, pos_h, pos_w = rope_positions(
        grid_height, grid_width, frames, base_height, base_width, patch_size_t, spacing
    )
    dim_t, dim_h, dim_w = attention_head_dim // 4, attention_head_dim // 8 * 3, attention_head_dim // 8 * 3
    t_cos, t_sin = get_1d_rotary_pos_embed(dim_t, pos_t, theta=theta, use_real=True)  # (T, dim_t)
    h_cos, h_sin = get_1d_rotary_pos_embed(dim_h, pos_h, theta=theta, use_real=True)  # (h, dim_h)
    w_cos, w_sin = get_1d_rotary_pos_embed(dim_w, pos_w, theta=theta, use_real=True)  # (w, dim_w)

    def combine(t: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        shape = (frames, grid_height, grid_width)
        parts = [
            t[:, None, None, :].expand(*shape, -1),
            h[None, :, None, :].expand(*shape, -1),
            w[None, None, :, :].expand(*shape, -1),
        ]
        return torch.cat(parts, dim=-1).reshape(frames * grid_height * grid_width, -1)  # (T*h*w, head_dim)

    cos, sin = combine(t_cos, h_cos, w_cos), combine(t_sin, h_sin, w_sin)
    return cos.to(device=device, dtype=torch.float32), sin.to(device=device, dtype=torch.float32)
