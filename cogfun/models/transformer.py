"""The CogVideoX-Fun inpaint diffusion transformer.

CogVideoX-Fun (aigc-apps/VideoX-Fun) retrains CogVideoX as an *inpaint* DiT: the transformer input is the
channel concat ``[noisy latents (16) | mask (1) | masked-video latents (16)]`` = 33 channels, so one model
does text-to-video, image-to-video, start+end frames, video-to-video, inpainting and continuation
(docs/design.md 1.1). Everything else is diffusers' ``CogVideoXTransformer3DModel``: we subclass it, keep its
``CogVideoXBlock`` and its parameter names (released checkpoints load key for key) and change three things:

1. ``forward`` takes ``inpaint_latents`` ``(B, F, 1 + C, H, W)`` (InP models, 33 channels) or
   ``control_latents`` ``(B, F, C, H, W)`` (Control and Pose models, 32 channels: the control video's latents)
   and concatenates them after the noisy latents, as the reference does, with checks that name the fix when
   shapes disagree.
2. The sincos positional table at a grid other than the sample grid follows ``pos_embed_mode``
   (``interpolate`` by default, what CogVideoX-Fun checkpoints expect; see ``positional_embeddings``), and
   is computed once per grid and cached instead of rebuilt on every forward as diffusers does.
3. RoPE models (5B) build their rotary embeddings themselves when none are passed (cached per grid), with
   the reference's numpy spacing by default.

Loading a checkpoint with fewer input channels (16: CogVideoX T2V, 32: older Fun) into a wider model
zero-initialises the extra input channels, as the reference does, and warns.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import OrderedDict
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import CogVideoXPatchEmbed
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  diffusers' pipeline loader looks it up here
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXTransformer3DModel
from diffusers.utils import logging

from .positional_embeddings import POS_EMBED_MODES, ROPE_SPACINGS, rotary_embeddings, sincos_table

logger = logging.get_logger(__name__)

_CACHE_SIZE = 8  # grids kept per model; a bucketed run uses a handful


class CogVideoXFunPatchEmbed(CogVideoXPatchEmbed):
    """diffusers' patch embedding whose positional table at a new grid follows ``pos_embed_mode``, cached.

    diffusers calls ``_get_positional_embeddings`` whenever the grid differs from the sample grid; we
    answer from a per-grid cache filled by :func:`sincos_table`. At the sample grid every mode gives the
    base table itself, so the stored ``pos_embedding`` buffer is used unchanged.
    """

    def __init__(self, pos_embed_mode: str = "interpolate", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pos_embed_mode = pos_embed_mode
        self._pos_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def _get_positional_embeddings(
        self, sample_height: int, sample_width: int, sample_frames: int, device: torch.device | None = None
    ) -> torch.Tensor:
        mode = self.__dict__.get("pos_embed_mode", "extrapolate")  # called once by the parent's __init__
        cache = self.__dict__.get("_pos_cache")
        height, width = sample_height // self.patch_size, sample_width // self.patch_size
        frames = (sample_frames - 1) // self.temporal_compression_ratio + 1
        key = (mode, frames, height, width, str(device))
        if cache is not None and key in cache:
            cache.move_to_end(key)
            return cache[key]

        base_frames = (self.sample_frames - 1) // self.temporal_compression_ratio + 1
        table = sincos_table(
            mode,
            self.embed_dim,
            frames,
            height,
            width,
            base_frames,
            self.sample_height // self.patch_size,
            self.sample_width // self.patch_size,
            self.spatial_interpolation_scale,
            self.temporal_interpolation_scale,
        )  # (F*h*w, D) float64
        joint = torch.zeros(1, self.max_text_seq_length + table.shape[0], self.embed_dim, dtype=torch.float32)
        joint[0, self.max_text_seq_length :] = table  # text tokens get no position, as in CogVideoX
        joint = joint.to(device)
        if cache is not None:
            cache[key] = joint
            while len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)
        return joint


class CogVideoXFunTransformer3DModel(CogVideoXTransformer3DModel):
    """CogVideoX transformer with inpaint input and resizable positional embeddings.

    Takes every argument of diffusers' ``CogVideoXTransformer3DModel`` (defaults changed to the Fun 2B
    inpaint model: ``in_channels=33``) plus:

    Args:
        pos_embed_mode: sincos table at a non-sample grid: ``"interpolate"`` (default, checkpoints expect
            it), ``"extrapolate"`` (diffusers), ``"truncate"`` (original CogVideoX), ``"scaled"``
            (PixArt-Sigma style). Ignored by RoPE models.
        rope_spacing: RoPE position spacing, ``"numpy"`` (reference, default) or ``"diffusers"``.
        add_noise_in_inpaint_model: whether the reference video is noise-augmented before encoding
            (read by the pipeline and the training loop; the reference sets it for Fun checkpoints).
    """

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 33,
        out_channels: int | None = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: int | None = None,
        text_embed_dim: int = 4096,
        num_layers: int = 30,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: int | None = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = False,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
        pos_embed_mode: str = "interpolate",
        rope_spacing: str = "numpy",
        add_noise_in_inpaint_model: bool = False,
    ):
        if pos_embed_mode not in POS_EMBED_MODES:
            raise ValueError(f"pos_embed_mode must be one of {POS_EMBED_MODES} (got {pos_embed_mode!r})")
        if rope_spacing not in ROPE_SPACINGS:
            raise ValueError(f"rope_spacing must be one of {ROPE_SPACINGS} (got {rope_spacing!r})")
        if use_rotary_positional_embeddings and attention_head_dim % 16:
            raise ValueError(
                f"3D RoPE splits each head into frames (1/4), height (3/8) and width (3/8), each an even number of "
                f"channels, so attention_head_dim must be a multiple of 16 (got {attention_head_dim}); try "
                f"{max(16, attention_head_dim // 16 * 16)} or {attention_head_dim // 16 * 16 + 16}"
            )
        super().__init__(
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            in_channels=in_channels,
            out_channels=out_channels,
            flip_sin_to_cos=flip_sin_to_cos,
            freq_shift=freq_shift,
            time_embed_dim=time_embed_dim,
            ofs_embed_dim=ofs_embed_dim,
            text_embed_dim=text_embed_dim,
            num_layers=num_layers,
            dropout=dropout,
            attention_bias=attention_bias,
            sample_width=sample_width,
            sample_height=sample_height,
            sample_frames=sample_frames,
            patch_size=patch_size,
            patch_size_t=patch_size_t,
            temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length,
            activation_fn=activation_fn,
            timestep_activation_fn=timestep_activation_fn,
            norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_rotary_positional_embeddings=use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
            patch_bias=patch_bias,
        )
        # Same submodule names and parameter shapes as diffusers' patch embedding, so state dicts match.
        self.patch_embed = CogVideoXFunPatchEmbed(
            pos_embed_mode=pos_embed_mode,
            patch_size=patch_size,
            patch_size_t=patch_size_t,
            in_channels=in_channels,
            embed_dim=num_attention_heads * attention_head_dim,
            text_embed_dim=text_embed_dim,
            bias=patch_bias,
            sample_width=sample_width,
            sample_height=sample_height,
            sample_frames=sample_frames,
            temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_positional_embeddings=not use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
        )
        self._rope_cache: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    # --------------------------------------------------------------------------------------------
    # Positional embeddings
    # --------------------------------------------------------------------------------------------

    def set_pos_embed_mode(self, mode: str) -> None:
        """Switch the sincos resize strategy (config and cache follow)."""
        if mode not in POS_EMBED_MODES:
            raise ValueError(f"pos_embed_mode must be one of {POS_EMBED_MODES} (got {mode!r})")
        self.register_to_config(pos_embed_mode=mode)
        self.patch_embed.pos_embed_mode = mode
        self.patch_embed._pos_cache.clear()

    def rope_for(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The rotary embeddings a forward on ``latents`` ``(B, F, C, H, W)`` needs: cached ``(cos, sin)`` on a
        RoPE model, None on a sincos one. Pass the result as ``image_rotary_emb`` (what diffusers' pipeline does
        with ``_prepare_rotary_positional_embeddings``; cogfun's spacing is ``config.rope_spacing``)."""
        if not self.config.use_rotary_positional_embeddings:
            return None
        _, frames, _, height, width = latents.shape
        return self.rotary_embeddings_for(frames, height, width, latents.device)

    def rotary_embeddings_for(
        self, latent_frames: int, latent_height: int, latent_width: int, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached 3D RoPE ``(cos, sin)`` for a latent grid, each ``(tokens, attention_head_dim)``."""
        cfg = self.config
        p, p_t = cfg.patch_size, cfg.patch_size_t
        frames = latent_frames if p_t is None else (latent_frames + p_t - 1) // p_t
        key = (frames, latent_height // p, latent_width // p, cfg.rope_spacing, str(device))
        if key not in self._rope_cache:
            self._rope_cache[key] = rotary_embeddings(
                cfg.attention_head_dim,
                latent_height // p,
                latent_width // p,
                frames,
                cfg.sample_height // p,
                cfg.sample_width // p,
                patch_size_t=p_t,
                spacing=cfg.rope_spacing,
                device=device,
            )
            while len(self._rope_cache) > _CACHE_SIZE:
                self._rope_cache.popitem(last=False)
        return self._rope_cache[key]

    # --------------------------------------------------------------------------------------------
    # Forward
    # --------------------------------------------------------------------------------------------

    def check_inputs(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        inpaint_latents: torch.Tensor | None,
        control_latents: torch.Tensor | None = None,
    ) -> None:
        """Raise a ``ValueError`` that names the fix for every input the model cannot take."""
        cfg = self.config
        if hidden_states.ndim != 5:
            raise ValueError(
                f"hidden_states must be (B, F, C, H, W) latents (got shape {tuple(hidden_states.shape)})"
            )
        batch, frames, channels, height, width = hidden_states.shape
        p = cfg.patch_size
        if height % p or width % p:
            raise ValueError(
                f"latent height/width must be multiples of patch_size={p} (got {height}x{width} latents, i.e. "
                f"{height * 8}x{width * 8} pixels); video height/width must be multiples of {8 * p} pixels, "
                f"e.g. {height // p * p * 8}x{width // p * p * 8}"
            )
        if cfg.patch_size_t is not None and frames % cfg.patch_size_t:
            raise ValueError(
                f"latent frames must be a multiple of patch_size_t={cfg.patch_size_t} (got {frames}); pad the "
                f"latents with repeats of the first latent frame, as CogVideoX 1.5 pipelines do"
            )
        if not cfg.use_rotary_positional_embeddings and encoder_hidden_states.shape[1] != cfg.max_text_seq_length:
            raise ValueError(
                f"with sincos positional embeddings the text length must equal max_text_seq_length="
                f"{cfg.max_text_seq_length} (got {encoder_hidden_states.shape[1]}); pad or truncate the prompt "
                f"to {cfg.max_text_seq_length} tokens (tokenizer padding='max_length')"
            )
        if encoder_hidden_states.shape[-1] != cfg.text_embed_dim:
            raise ValueError(
                f"encoder_hidden_states width must be text_embed_dim={cfg.text_embed_dim} "
                f"(got {encoder_hidden_states.shape[-1]}); use the text encoder this transformer was trained with"
            )
        def fits(conditioning: torch.Tensor) -> bool:  # (B, F, *, H, W) beside latents (B, F, C, H, W)
            return conditioning.ndim == 5 and (conditioning.shape[:2], conditioning.shape[3:]) == (
                (batch, frames), (height, width))

        if control_latents is not None:
            if not fits(control_latents):
                raise ValueError(
                    f"control_latents must be (B, F, C, H, W) = ({batch}, {frames}, {cfg.in_channels - channels}, "
                    f"{height}, {width}) to match the latents (got {tuple(control_latents.shape)}); encode the "
                    f"control video with the VAE at the output size and length"
                )
            in_given = channels + control_latents.shape[2]
            in_given += 0 if inpaint_latents is None else inpaint_latents.shape[2]
            if in_given != cfg.in_channels:
                raise ValueError(
                    f"the model takes in_channels={cfg.in_channels} but got {channels} latent channels + "
                    f"{in_given - channels} conditioning channels; control_latents drive Control/Pose models "
                    f"(in_channels = 2 x {channels}); an InP model (in_channels={channels} + 1 + {channels}) takes "
                    f"inpaint_latents instead"
                )
            return
        in_given = channels + (0 if inpaint_latents is None else inpaint_latents.shape[2])
        if inpaint_latents is not None:
            if not fits(inpaint_latents):
                raise ValueError(
                    f"inpaint_latents must be (B, F, 1 + C, H, W) = ({batch}, {frames}, "
                    f"{cfg.in_channels - channels}, {height}, {width}) to match the latents "
                    f"(got {tuple(inpaint_latents.shape)}); build them with cogfun.masks.inpaint_latents"
                )
        if in_given != cfg.in_channels:
            expected = cfg.in_channels - channels
            hint = (
                "pass inpaint_latents=(mask | masked-video latents); for text-to-video they are all zeros"
                if inpaint_latents is None
                else f"inpaint_latents must have {expected} channels (1 mask + {expected - 1} latent)"
            )
            raise ValueError(
                f"the model takes in_channels={cfg.in_channels} but got {channels} latent channels + "
                f"{in_given - channels} inpaint channels; {hint}"
            )

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep: int | float | torch.LongTensor,
        inpaint_latents: torch.Tensor | None = None,
        timestep_cond: torch.Tensor | None = None,
        ofs: int | float | torch.LongTensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
        control_latents: torch.Tensor | None = None,
    ):
        """Predict v (or noise) for noisy latents given the inpaint conditioning.

        Args:
            hidden_states: noisy latents ``(B, F, C, H, W)`` (C = out_channels).
            encoder_hidden_states: text embeddings ``(B, L, text_embed_dim)``; with sincos embeddings
                ``L`` must be ``max_text_seq_length``.
            timestep: ``(B,)`` or a scalar, in ``[0, 1000)``.
            inpaint_latents: ``(B, F, 1 + C, H, W)`` = ``[mask | masked-video latents]``; ``None`` only for
                a model with ``in_channels == C`` (plain CogVideoX) or a Control model.
            control_latents: ``(B, F, C, H, W)`` scaled VAE latents of the control video (pose, depth, canny...),
                for Control/Pose models (``in_channels == 2 C``); concatenated after the noisy latents (and
                after ``inpaint_latents`` if both are given, the reference's order).
            timestep_cond, ofs, attention_kwargs, return_dict: as in diffusers.
            image_rotary_emb: RoPE ``(cos, sin)`` or None. As in diffusers, None applies no rotary embedding: the
                caller builds it (``rope_for(latents)``, cached per grid; the pipeline and the trainer do).

        Returns:
            ``Transformer2DModelOutput(sample=(B, F, out_channels, H, W))`` or a 1-tuple.
        """
        # 1. Check inputs, then concatenate the inpaint or control channels after the noisy latents.
        self.check_inputs(hidden_states, encoder_hidden_states, inpaint_latents, control_latents)
        extra = [x.to(hidden_states.dtype) for x in (inpaint_latents, control_latents) if x is not None]
        if extra:
            hidden_states = torch.cat([hidden_states, *extra], dim=2)  # (B, F, in_channels, H, W)

        # 2. diffusers' forward: patch embedding (+ our cached sincos table), blocks, unpatchify.
        return super().forward(
            hidden_states,
            encoder_hidden_states,
            timestep,
            timestep_cond=timestep_cond,
            ofs=ofs,
            image_rotary_emb=image_rotary_emb,
            attention_kwargs=attention_kwargs,
            return_dict=return_dict,
        )

    # --------------------------------------------------------------------------------------------
    # Loading
    # --------------------------------------------------------------------------------------------

    def widen_input_channels(self, in_channels: int) -> "CogVideoXFunTransformer3DModel":
        """Grow the patch projection to ``in_channels`` inputs, new channels zero-initialised.

        A 16-channel CogVideoX checkpoint widened to 33 channels computes exactly what it computed before
        for any inpaint input, so training starts from the base model's behaviour (the reference's choice).
        """
        old = self.config.in_channels
        if in_channels == old:
            return self
        if in_channels < old:
            raise ValueError(f"cannot narrow the input from {old} to {in_channels} channels")
        proj = self.patch_embed.proj
        with torch.no_grad():
            if isinstance(proj, torch.nn.Conv2d):
                new = torch.nn.Conv2d(
                    in_channels, proj.out_channels, proj.kernel_size, proj.stride, bias=proj.bias is not None
                ).to(proj.weight.device, proj.weight.dtype)
                new.weight.zero_()
                new.weight[:, :old] = proj.weight
            else:  # CogVideoX 1.5: Linear over (C, p_t, p, p) with C slowest
                per_channel = proj.in_features // old
                new = torch.nn.Linear(in_channels * per_channel, proj.out_features, bias=proj.bias is not None)
                new = new.to(proj.weight.device, proj.weight.dtype)
                weight = new.weight.view(proj.out_features, in_channels, per_channel)
                weight.zero_()
                weight[:, :old] = proj.weight.view(proj.out_features, old, per_channel)
            if proj.bias is not None:
                new.bias.copy_(proj.bias)
        self.patch_embed.proj = new
        self.register_to_config(in_channels=in_channels)
        message = (
            f"widened the transformer input from {old} to {in_channels} channels; the {in_channels - old} "
            f"new input channels are zero-initialised (train before expecting them to matter)"
        )
        logger.warning(message)
        warnings.warn(message, stacklevel=2)
        return self

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """diffusers' ``from_pretrained``, plus ``in_channels=`` to widen a narrower checkpoint.

        Loads a local folder (``transformer/`` of a released checkpoint, or the checkpoint root with
        ``subfolder="transformer"``). Passing ``in_channels`` larger than the checkpoint's (16 or 32)
        zero-initialises the extra input channels and warns.
        """
        in_channels = kwargs.pop("in_channels", None)
        if in_channels is None:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        config_path = os.path.join(pretrained_model_name_or_path, kwargs.get("subfolder") or "", "config.json")
        if not os.path.isfile(config_path):
            raise ValueError(
                f"no transformer config at {config_path}; point at a checkpoint's transformer/ folder or pass "
                f"subfolder='transformer'"
            )
        with open(config_path) as f:
            stored = json.load(f).get("in_channels", 16)
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        return model.widen_input_channels(in_channels) if in_channels != stored else model
