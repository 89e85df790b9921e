"""The inpaint transformer taken apart, for teaching: each function returns the data of one picture.

Notebook 07 draws what these compute; the tests check each against the model's own forward pass, so the
pictures show what the model really does (docs/design.md 1.1 and 1.3):

- :func:`input_stack`: the 33 input channels ``[noisy latents 16 | mask 1 | masked-video latents 16]``;
- :func:`patchify` / :func:`unpatchify`: latent patches as tokens and back, and :func:`patch_tokens` (the
  model's own patch projection);
- :func:`token_layout`: the joint sequence ``[text | video]`` the blocks attend over;
- :func:`attention_maps`: one block's attention probabilities, recorded by a processor that computes them
  explicitly (the same outputs as diffusers' fused attention);
- :func:`timestep_embedding` and :func:`adaptive_norm`: how the timestep conditions every block (adaptive
  layer-norm: a shift, a scale and a gate per channel, for video and text tokens separately);
- :func:`positional_table`: the 3D sincos table, positions x channels, with its temporal/spatial split;
- :func:`parameter_counts`: where the parameters are.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from einops import rearrange

# ---------------------------------------------------------------------------------------------
# Input and tokens
# ---------------------------------------------------------------------------------------------


def input_stack(noisy: torch.Tensor, inpaint: torch.Tensor) -> dict[str, torch.Tensor]:
    """The transformer's input, channel group by channel group.

    Args:
        noisy: ``(B, F, 16, h, w)`` noisy latents.
        inpaint: ``(B, F, 1 + 16, h, w)`` = ``[mask | masked-video latents]``.

    Returns:
        ``{"noisy latents", "mask", "masked-video latents", "input"}``; ``"input"`` is the ``(B, F, 33, h, w)``
        concatenation the transformer's patch projection reads.
    """
    if noisy.shape[:2] != inpaint.shape[:2] or noisy.shape[3:] != inpaint.shape[3:]:
        raise ValueError(f"noisy {tuple(noisy.shape)} and inpaint {tuple(inpaint.shape)} latents must share B, F, h, w")
    return OrderedDict([
        ("noisy latents", noisy),
        ("mask", inpaint[:, :, :1]),
        ("masked-video latents", inpaint[:, :, 1:]),
        ("input", torch.cat([noisy, inpaint], dim=2)),
    ])


def patchify(latents: torch.Tensor, patch_size: int = 2) -> torch.Tensor:
    """``(B, F, C, h, w)`` latents -> ``(B, F * h/p * w/p, C * p * p)`` tokens, frame by frame, row by row."""
    b, f, c, h, w = latents.shape
    if h % patch_size or w % patch_size:
        raise ValueError(f"latent height and width ({h}x{w}) must be multiples of the patch size {patch_size}")
    return rearrange(latents, "b f c (h p) (w q) -> b (f h w) (c p q)", p=patch_size, q=patch_size)


def unpatchify(tokens: torch.Tensor, num_frames: int, height: int, width: int, patch_size: int = 2) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, F * h/p * w/p, C * p * p)`` -> ``(B, F, C, h, w)``."""
    return rearrange(tokens, "b (f h w) (c p q) -> b f c (h p) (w q)", f=num_frames, h=height // patch_size,
                     w=width // patch_size, p=patch_size, q=patch_size)


def patch_tokens(transformer, latents: torch.Tensor) -> torch.Tensor:
    """The model's own patch projection of ``(B, F, C_in, h, w)`` latents: ``(B, F * h/p * w/p, D)`` video tokens
    (without positional embedding): a linear map of each :func:`patchify` patch."""
    b, f, c, h, w = latents.shape
    proj = transformer.patch_embed.proj  # Conv2d(C_in, D, kernel=p, stride=p), applied frame by frame
    x = proj(latents.reshape(b * f, c, h, w))  # (B*F, D, h/p, w/p)
    return rearrange(x, "(b f) d h w -> b (f h w) d", b=b)


@dataclass(frozen=True)
class TokenLayout:
    """The joint sequence of one forward pass: ``text`` tokens first, then ``video`` tokens.

    Attributes:
        text: text tokens (the transformer's ``max_text_seq_length``).
        frames, rows, cols: latent frames and patch rows and columns of the video.
    """

    text: int
    frames: int
    rows: int
    cols: int

    @property
    def video(self) -> int:
        return self.frames * self.rows * self.cols

    @property
    def total(self) -> int:
        return self.text + self.video


def token_layout(transformer, num_frames: int, height: int, width: int, spatial_compression: int = 8,
                 temporal_compression: int = 4) -> TokenLayout:
    """How many tokens of each kind a ``num_frames x height x width`` pixel video makes for ``transformer``."""
    p = transformer.config.patch_size
    frames = (num_frames - 1) // temporal_compression + 1
    pt = transformer.config.patch_size_t or 1
    return TokenLayout(int(transformer.config.max_text_seq_length), -(-frames // pt),
                       height // spatial_compression // p, width // spatial_compression // p)


# ---------------------------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------------------------


class RecordingAttnProcessor:
    """diffusers' CogVideoX attention with the probabilities computed explicitly and kept (mean over heads).

    ``softmax(q k^T / sqrt(d)) v`` instead of the fused kernel: the same outputs to float rounding, plus
    ``self.maps``, one ``(B, L, L)`` tensor per call, rows = queries, columns = keys, in the order
    ``[text | video]``.
    """

    def __init__(self) -> None:
        self.maps: list[torch.Tensor] = []

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None, image_rotary_emb=None):
        text = encoder_hidden_states.size(1)
        x = torch.cat([encoder_hidden_states, hidden_states], dim=1)  # (B, L, D): [text | video]
        q, k, v = (rearrange(proj(x), "b l (h d) -> b h l d", h=attn.heads) for proj in (attn.to_q, attn.to_k, attn.to_v))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if image_rotary_emb is not None:
            from diffusers.models.embeddings import apply_rotary_emb

            q[:, :, text:] = apply_rotary_emb(q[:, :, text:], image_rotary_emb)
            k[:, :, text:] = apply_rotary_emb(k[:, :, text:], image_rotary_emb)
        weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)  # (B, heads, L, L)
        self.maps.append(weights.mean(dim=1).detach())
        out = rearrange(weights @ v, "b h l d -> b l (h d)")
        out = attn.to_out[1](attn.to_out[0](out))
        encoder_out, out = out.split([text, out.shape[1] - text], dim=1)
        return out, encoder_out


@torch.no_grad()
def attention_maps(transformer, hidden_states, encoder_hidden_states, timestep, inpaint_latents,
                   blocks: tuple[int, ...] = (0,)) -> dict[int, torch.Tensor]:
    """Attention probabilities of ``blocks`` in one forward pass (the processors are restored afterwards).

    Returns:
        ``{block: (B, L, L)}``, mean over heads, ``L = text + video`` tokens (see :func:`token_layout`).
    """
    recorders, saved = {}, {}
    for i in blocks:
        attn = transformer.transformer_blocks[i].attn1
        saved[i], recorders[i] = attn.processor, RecordingAttnProcessor()
        attn.set_processor(recorders[i])
    try:
        transformer(hidden_states, encoder_hidden_states, timestep, inpaint_latents=inpaint_latents,
                    image_rotary_emb=transformer.rope_for(hidden_states), return_dict=False)
    finally:
        for i in blocks:
            transformer.transformer_blocks[i].attn1.set_processor(saved[i])
    return {i: r.maps[0] for i, r in recorders.items()}


# ---------------------------------------------------------------------------------------------
# Timestep conditioning
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def timestep_embedding(transformer, timesteps: torch.Tensor) -> torch.Tensor:
    """``(T,)`` timesteps -> ``(T, time_embed_dim)``: sinusoidal features, then the model's MLP (``temb``)."""
    features = transformer.time_proj(timesteps)  # (T, inner_dim) sinusoidal
    return transformer.time_embedding(features.to(transformer.dtype))


@torch.no_grad()
def adaptive_norm(transformer, timesteps: torch.Tensor, block: int = 0) -> dict[str, torch.Tensor]:
    """The first adaptive layer-norm of a block: per timestep, the shift, scale and gate for video and text.

    CogVideoX conditions on time by modulating a LayerNorm (``LayerNormZero``):
    ``norm(x) * (1 + scale) + shift`` before attention, and ``x + gate * attention(...)`` after it, with separate
    parameters for the video and the text tokens.

    Returns:
        ``{"shift", "scale", "gate", "text_shift", "text_scale", "text_gate"}``, each ``(T, D)``.
    """
    temb = timestep_embedding(transformer, timesteps)
    norm = transformer.transformer_blocks[block].norm1
    parts = norm.linear(norm.silu(temb)).chunk(6, dim=1)
    return OrderedDict(zip(("shift", "scale", "gate", "text_shift", "text_scale", "text_gate"), parts))


# ---------------------------------------------------------------------------------------------
# Positions and sizes
# ---------------------------------------------------------------------------------------------


def positional_table(transformer, num_frames: int, height: int, width: int) -> tuple[torch.Tensor, dict[str, slice]]:
    """The sincos table the model adds to the video tokens at a pixel size, and its channel split.

    Returns:
        ``(table (F_lat * rows * cols, D), {"temporal": slice, "spatial": slice})``: diffusers'
        ``get_3d_sincos_pos_embed`` puts the temporal channels (D/4) first and the spatial ones (3D/4) after.
        Rows run frame by frame, then row by row (the order of :func:`patchify`); at a grid other than the
        sample grid the table follows the model's ``pos_embed_mode``.
    """
    if transformer.config.use_rotary_positional_embeddings:
        raise ValueError("this transformer uses rotary embeddings (RoPE), not a sincos table; see "
                         "cogfun.models.positional_embeddings.rotary_embeddings")
    layout = token_layout(transformer, num_frames, height, width)
    embed = transformer.patch_embed
    p = transformer.config.patch_size
    # latent height and width, pixel frames: what the patch embedding asks for at a new grid
    table = embed._get_positional_embeddings(layout.rows * p, layout.cols * p, num_frames)
    table = table[0, transformer.config.max_text_seq_length:]  # (video tokens, D): the text rows are zero
    d = table.shape[-1]
    return table, {"temporal": slice(0, d // 4), "spatial": slice(d // 4, d)}


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per part: patch embedding, time embedding, the blocks' attention, feed-forward and adaptive
    norms (all blocks together), the final norm and output projection (works on the meta device)."""
    groups: dict[str, int] = OrderedDict((k, 0) for k in (
        "patch embedding", "time embedding", "attention", "feed-forward", "adaptive norms", "output"))
    for name, p in model.named_parameters():
        if name.startswith("patch_embed"):
            key = "patch embedding"
        elif name.startswith(("time_embedding", "time_proj", "ofs")):
            key = "time embedding"
        elif ".attn1." in name:
            key = "attention"
        elif ".ff." in name:
            key = "feed-forward"
        elif name.startswith("transformer_blocks"):
            key = "adaptive norms"
        else:
            key = "output"
        groups[key] += p.numel()
    return groups


__all__ = [
    "RecordingAttnProcessor", "TokenLayout", "adaptive_norm", "attention_maps", "input_stack", "parameter_counts",
    "patch_tokens", "patchify", "positional_table", "timestep_embedding", "token_layout", "unpatchify",
]
