"""One diffusers pipeline for every CogVideoX-Fun mode, with one ``__call__`` and one denoising loop.

The reference (VideoX-Fun) and diffusers each ship a pipeline per task; here a mode is data: a pixel
``video`` and a ``mask_video`` (1 = regenerate) built by ``cogfun.masks`` (docs/design.md 1.2). The thin entry
points (``text_to_video``, ``image_to_video``, ``video_to_video``, ``inpaint``) only build that pair and
call ``__call__``; long videos are in ``long_video.py``. Control and Pose checkpoints (32 input channels) take a
``control_video`` instead of ``(video, mask)``: its latents go where an InP model's inpaint latents go.

``__call__`` narrated:
1. check inputs  2. encode the prompt (+ negative for classifier-free guidance)  3. timesteps (``strength``
cuts the schedule for SDEdit)  4. initial latents (noise, or the encoded video noised to the first
timestep)  5. inpaint latents ``[mask | masked-video latents]`` (or, for a Control model, the control video's
latents)  6. denoising loop  7. decode. V1.5 models (``patch_size_t=2``) take an even number of latent frames:
an odd count is padded at the start (``temporal_padding``) and the padded frames are dropped before decoding.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from typing import Any, Callable

import numpy as np
import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler, DiffusionPipeline
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .. import masks as M
from ..models.cpu_batching import run_as_pair
from ..models.transformer import CogVideoXFunTransformer3DModel
from .generation_defaults import RELEASED_DEFAULTS, GenerationDefaults, load_generation_defaults, save_generation_defaults
from . import validation as V
from .inputs import as_image, as_mask, as_video, fit_mask
from .lora_loading import CogVideoXFunLoraLoaderMixin
from .prompts import prepare_prompts
from .samplers import make_scheduler, sampler_name

COMPONENTS = ("tokenizer", "text_encoder", "vae", "transformer", "scheduler")
OUTPUT_TYPES = ("np", "pt", "pil", "latent")


class CogVideoXFunPipeline(DiffusionPipeline, CogVideoXFunLoraLoaderMixin):
    """CogVideoX-Fun generation: text, image, start+end, video-to-video, inpaint (and long video).

    Args:
        tokenizer: T5 tokenizer.
        text_encoder: T5 encoder (``T5EncoderModel``).
        vae: ``AutoencoderKLCogVideoX``.
        transformer: ``CogVideoXFunTransformer3DModel``: 33 input channels (InP checkpoints) or 32 (Control and
            Pose checkpoints, driven by ``control_video``).
        scheduler: any sampler of ``cogfun.pipelines.samplers`` (``set_sampler`` switches by name).

    LoRA: diffusers' loader (``load_lora_weights``, ``set_adapters``, ``fuse_lora``, ``unload_lora_weights``)
    for diffusers, finetrainers and VideoX-Fun files (``cogfun.pipelines.lora_loading``).
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        text_encoder: PreTrainedModel,
        vae: AutoencoderKLCogVideoX,
        transformer: CogVideoXFunTransformer3DModel,
        scheduler: Any,
    ):
        super().__init__()
        self.register_modules(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
        )
        self.vae_scale_factor_spatial = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.vae_scale_factor_temporal = int(self.vae.config.temporal_compression_ratio)
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor_spatial)
        #: what the model was trained for and how to sample it (``generation_defaults.json``); see
        #: ``cogfun.pipelines.generation_defaults``. Arguments left at None take these values.
        self.generation_defaults: GenerationDefaults = RELEASED_DEFAULTS

    # --------------------------------------------------------------------------------------------
    # Loading and samplers
    # --------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        """Load a local folder in the released layout (``model_index.json`` + five component folders).

        The transformer is always loaded as ``CogVideoXFunTransformer3DModel`` (released checkpoints name
        diffusers' class; the weights are the same key for key). Nothing is downloaded.
        """
        root = os.fspath(pretrained_model_name_or_path)
        if not os.path.isdir(root):
            raise ValueError(f"model folder {root!r} does not exist; pass a local checkpoint folder (no downloads)")
        missing = [name for name in ("model_index.json", *COMPONENTS) if not os.path.exists(os.path.join(root, name))]
        missing = [m for m in missing if m not in kwargs]
        if missing:
            raise ValueError(
                f"model folder {root!r} lacks {missing}; a CogVideoX-Fun checkpoint needs model_index.json and the "
                f"folders {list(COMPONENTS)} (or pass the missing component, e.g. transformer=...)"
            )
        if "transformer" not in kwargs:
            kwargs["transformer"] = CogVideoXFunTransformer3DModel.from_pretrained(
                root, subfolder="transformer", torch_dtype=kwargs.get("torch_dtype")
            )
        defaults = load_generation_defaults(root)  # read first: a bad file fails before the weights load
        pipe = super().from_pretrained(root, local_files_only=True, **kwargs)
        for module in (pipe.text_encoder, pipe.vae, pipe.transformer):
            module.eval()
        if defaults is not None:
            pipe.generation_defaults = defaults
            if defaults.sampler != pipe.sampler:
                pipe.set_sampler(defaults.sampler)
        return pipe

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """diffusers' ``save_pretrained``, plus ``generation_defaults.json`` when the defaults are not the
        released checkpoints'."""
        super().save_pretrained(save_directory, **kwargs)
        if self.generation_defaults != RELEASED_DEFAULTS:
            save_generation_defaults(save_directory, self.generation_defaults)

    def set_sampler(self, name: str) -> "CogVideoXFunPipeline":
        """Switch the sampler by name (``ddim``, ``cogvideox_ddim``, ``cogvideox_dpm``, ``euler``, ``euler_a``,
        ``dpm++``, ``pndm``), keeping the checkpoint's noise schedule."""
        # Always from the checkpoint's own scheduler config: building each sampler from the previous one's
        # config would drop the keys that sampler does not know (PNDM has no zero-terminal-SNR rescale, so
        # "pndm" then "ddim" would sample another schedule than the one trained).
        if getattr(self, "_checkpoint_scheduler_config", None) is None:
            self._checkpoint_scheduler_config = dict(self.scheduler.config)
        self.scheduler = make_scheduler(name, self._checkpoint_scheduler_config)
        return self

    @property
    def sampler(self) -> str:
        return sampler_name(self.scheduler)

    # --------------------------------------------------------------------------------------------
    # Prompt
    # --------------------------------------------------------------------------------------------

    def _t5_embeds(self, prompts: list[str], max_length: int, device, dtype, what: str = "prompt") -> torch.Tensor:
        prompts = prepare_prompts(self.tokenizer, prompts, max_length, what)  # warns on unknown or cut words
        ids = self.tokenizer(
            prompts, padding="max_length", max_length=max_length, truncation=True, add_special_tokens=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(ids.to(device))[0].to(dtype=dtype, device=device)  # (B, L, D)

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True,
        num_videos_per_prompt: int = 1,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        max_sequence_length: int | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """T5 embeddings ``(B * num_videos_per_prompt, L, D)`` of the prompt and (with CFG) the negative prompt."""
        device = device or self._execution_device
        dtype = dtype or self.transformer.dtype
        max_length = max_sequence_length or self.transformer.config.max_text_seq_length
        if prompt_embeds is None:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_embeds = self._t5_embeds(prompts, max_length, device, dtype)
        batch = prompt_embeds.shape[0]
        prompt_embeds = prompt_embeds.to(device, dtype).repeat_interleave(num_videos_per_prompt, dim=0)
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negative = negative_prompt or ""
            negatives = [negative] * batch if isinstance(negative, str) else list(negative)
            if len(negatives) != batch:
                raise ValueError(f"negative_prompt has {len(negatives)} entries but prompt has {batch}; give one per prompt")
            negative_prompt_embeds = self._t5_embeds(negatives, max_length, device, dtype, "negative prompt")
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(device, dtype).repeat_interleave(
                num_videos_per_prompt, dim=0
            )
        return prompt_embeds, negative_prompt_embeds

    # --------------------------------------------------------------------------------------------
    # Checks, timesteps, latents
    # --------------------------------------------------------------------------------------------

    def check_inputs(self, prompt, prompt_embeds, height, width, num_frames, strength, video, output_type, steps):
        """The resolved arguments (defaults filled in); the given ones were checked by ``check_arguments``."""
        V.check_prompt(prompt, required=prompt_embeds is None)
        V.check_size("height", height)
        V.check_size("width", width)
        V.check_num_frames(num_frames)
        V.check_strength(strength)
        if strength < 1 and video is None:
            raise ValueError("strength < 1 (video-to-video) needs a video to start from")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES} (got {output_type!r})")
        V.check_steps(steps)

    @staticmethod
    def check_arguments(prompt=None, negative_prompt=None, height=None, width=None, num_frames=None,
                        num_inference_steps=None, guidance_scale=None, strength=None, latents=None,
                        prompt_embeds=None, negative_prompt_embeds=None, guidance_rescale=None) -> None:
        """Check what the caller gave, before anything runs: ``None`` means the default, anything else must be
        valid (``num_frames=0`` or ``height=0`` is an error, never the default). Raises ``ValueError``."""
        V.check_prompt(prompt, required=prompt_embeds is None)
        V.check_prompt(negative_prompt, "negative_prompt", required=False)
        V.check_size("height", height)
        V.check_size("width", width)
        V.check_num_frames(num_frames)
        V.check_steps(num_inference_steps)
        V.check_guidance(guidance_scale)
        V.check_guidance_rescale(guidance_rescale)
        V.check_strength(strength)
        for name, tensor in (("latents", latents), ("prompt_embeds", prompt_embeds),
                             ("negative_prompt_embeds", negative_prompt_embeds)):
            V.check_finite(name, tensor)

    def _fit_frames(self, video: torch.Tensor, num_frames: int | None) -> torch.Tensor:
        """Trim a ``(B, 3, F, H, W)`` video to ``num_frames``, or (None) to the model's length, saying so.

        Given ``num_frames``, the first ``num_frames`` frames are used (fewer frames than that is an error naming
        the most there are). Without it a clip longer than the model's default length
        (``generation_defaults.num_frames``), or not 4k+1 frames long, is cut to its first frames with a warning.
        """
        total = video.shape[2]
        if num_frames is not None:
            if total < num_frames:
                most = (total - 1) // 4 * 4 + 1
                raise ValueError(f"the video has {total} frames but num_frames={num_frames}; pass num_frames <= "
                                 f"{total} (4k+1: {most}), or a longer clip")
            return video[:, :, :num_frames]
        used = min(total, self.generation_defaults.num_frames)
        used = (used - 1) // 4 * 4 + 1  # 4k+1
        if used != total:
            warnings.warn(
                f"the video has {total} frames; using its first {used} (the model takes 4k+1 frames, "
                f"{self.generation_defaults.num_frames} by default); pass num_frames, pick frames with "
                f"cogfun.data.video_io.read_video_frames(path, start, stride, num_frames), or use long_video",
                stacklevel=4,
            )
        return video[:, :, :used]

    def _take_clip(self, clip: Any, what: str, height: int | None, width: int | None, num_frames: int | None):
        """A ``video`` or ``control_video`` as ``(B, 3, F, H, W)`` cut to ``num_frames`` (``_fit_frames``), and the
        ``height, width, num_frames`` it sets: its own where not given."""
        clip = as_video(clip, max_frames=self.generation_defaults.num_frames if num_frames is None else num_frames)
        clip = self._fit_frames(clip, num_frames)
        if height is None and width is None:
            V.check_input_size(clip.shape[-2], clip.shape[-1], what)
        height = clip.shape[-2] if height is None else height
        width = clip.shape[-1] if width is None else width
        return clip, height, width, clip.shape[2]

    @property
    def is_control_model(self) -> bool:
        """True for Control and Pose checkpoints: ``in_channels = 2 x out_channels`` (noisy + control-video
        latents, no mask channel)."""
        cfg = self.transformer.config
        return cfg.in_channels == 2 * cfg.out_channels

    def check_control(self, video: Any, mask_video: Any, control_video: Any) -> None:
        """A Control/Pose model needs ``control_video`` and takes no ``video``/``mask_video``; an InP model takes
        no ``control_video``. Raises ``ValueError`` naming the input to pass."""
        channels = self.transformer.config.in_channels
        if self.is_control_model:
            if control_video is None:
                raise ValueError(
                    f"this is a Control/Pose model (in_channels={channels}: noisy + control-video latents); pass "
                    f"control_video=... (the pose, depth, canny... clip to follow)"
                )
            if video is not None or mask_video is not None:
                raise ValueError(
                    "a Control/Pose model has no inpaint input: pass only control_video (video and mask_video drive "
                    "InP models)"
                )
        elif control_video is not None:
            raise ValueError(
                f"control_video drives Control/Pose models (in_channels = 2 x {self.transformer.config.out_channels}); "
                f"this transformer takes {channels} channels: load a Control or Pose checkpoint, or pass "
                f"video/mask_video"
            )

    def temporal_padding(self, latent_frames: int) -> int:
        """Latent frames to add at the start so ``patch_size_t`` divides the count (0 unless V1.5).

        CogVideoX 1.5 patches time in pairs. As diffusers' CogVideoX 1.5 pipelines do, the pipeline draws the noise
        for the padded length, repeats the first frame of every conditioning latent (inpaint, control, the
        video-to-video start) at the start, and drops the first ``pad`` latent frames before decoding, so the
        output has the frames asked for. (VideoX-Fun's own pipelines instead cut the clip to the lower even count,
        losing up to 4 pixel frames at the end.)
        """
        p_t = self.transformer.config.patch_size_t
        return 0 if not p_t or latent_frames % p_t == 0 else p_t - latent_frames % p_t

    @staticmethod
    def _pad_start(latents: torch.Tensor, pad: int) -> torch.Tensor:
        """``(B, F, C, h, w)`` -> ``(B, pad + F, C, h, w)``, the first frame repeated ``pad`` times at the start."""
        if not pad:
            return latents
        return torch.cat([latents[:, :1].expand(-1, pad, -1, -1, -1), latents], dim=1)

    def get_timesteps(self, num_inference_steps: int, strength: float, device) -> tuple[torch.Tensor, int]:
        """The sampler's timesteps from ``strength`` on: SDEdit skips the first ``(1 - strength)`` of them."""
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        init = min(int(num_inference_steps * strength), num_inference_steps)
        start = max(num_inference_steps - init, 0)
        timesteps = self.scheduler.timesteps[start * self.scheduler.order :]
        if len(timesteps) == 0:
            raise ValueError(f"strength={strength} with {num_inference_steps} steps leaves no step; raise either")
        return timesteps, len(timesteps) // self.scheduler.order

    def encode_video(self, video: torch.Tensor, sample: bool = False,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixels ``(B, 3, F, H, W)`` -> scaled latents ``(B, F_lat, C, h, w)``.

        Args:
            video: pixels in [-1, 1].
            sample: draw from the VAE posterior, ``mean + std * noise`` with the noise from ``generator`` (what
                diffusers' and the reference's video-to-video do), instead of taking its mode (the mean).
            generator: the noise of ``sample``, drawn as diffusers' ``latent_dist.sample(generator)`` draws it.
        """
        def moments(x: torch.Tensor) -> torch.Tensor:  # (b, 2C, F_lat, h, w): mean and std of the posterior
            dist = self.vae.encode(x).latent_dist
            return torch.cat([dist.mean, dist.std], dim=1)

        latents = []
        for v in video.to(self.vae.device, self.vae.dtype):
            mean, std = run_as_pair(moments, v[None]).chunk(2, dim=1)  # a CPU batch of one runs as a pair
            if sample:
                mean = mean + std * randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            latents.append(mean)
        return torch.cat(latents).permute(0, 2, 1, 3, 4) * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``(B, F_lat, C, h, w)`` -> pixels ``(B, 3, F, H, W)`` in [-1, 1], F = 4 (F_lat - 1) + 1.

        Quirk of the CogVideoX VAE decoder: it treats the first latent frame as the causal one only when the
        latent frame count is odd (49 frames -> 13); an even count decodes to ``4 * F_lat`` frames with no
        causal first frame. We pad an even count with a copy of the last latent frame (the decoder is
        causal, so earlier frames are unaffected) and drop the extra frames.
        """
        latents = latents.permute(0, 2, 1, 3, 4) / self.vae.config.scaling_factor  # (B, C, F_lat, h, w)
        frames = latents.shape[2]
        expected = (frames - 1) * self.vae_scale_factor_temporal + 1
        if frames > 1 and frames % 2 == 0:
            latents = torch.cat([latents, latents[:, :, -1:]], dim=2)
        decode = lambda z: self.vae.decode(z).sample  # noqa: E731
        return run_as_pair(decode, latents.to(self.vae.dtype))[:, :, :expected]  # CPU batch of 1: fast conv3d path

    # --------------------------------------------------------------------------------------------
    # The one call
    # --------------------------------------------------------------------------------------------

    @property
    def current_timestep(self):
        """The timestep being denoised (None outside the loop): diffusers' cache hooks ask for it."""
        return getattr(self, "_current_timestep", None)

    def _rope_for(self, latents: torch.Tensor):
        """The rotary embeddings for ``latents`` (built and cached by the transformer; None for sincos models)."""
        if hasattr(self.transformer, "rope_for"):
            return self.transformer.rope_for(latents)
        return None

    def _cache_context(self, step_index: int, num_steps: int, timestep):
        """diffusers' cache context around one transformer call (one call holds both CFG halves, as in
        diffusers' CogVideoX pipeline), or a no-op for a transformer without ``CacheMixin``."""
        if not hasattr(self.transformer, "cache_context"):
            return contextlib.nullcontext()
        return self.transformer.cache_context("cond_uncond", step_index=step_index, num_inference_steps=num_steps,
                                              timestep=timestep)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        video: Any = None,
        mask_video: Any = None,
        strength: float | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_rescale: float | None = None,
        noise_aug_strength: float = M.INFERENCE_NOISE_SIGMA,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[Any, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        max_sequence_length: int | None = None,
        eta: float = 0.0,
        resize_method: str = "reference",
        mask_threshold: int = 240,
        video_latents: str = "sample",
        paste_kept: bool = False,
        control_video: Any = None,
    ):
        """Generate videos. Every mode goes through here.

        Args:
            prompt, negative_prompt: text (a list for a batch); the negative prompt defaults to "".
            video: pixels to keep or start from: ``(B, 3, F, H, W)`` tensor in [-1, 1], ``(F, H, W, 3)``
                array in [0, 1], a list of PIL frames or a video path. ``None``: text-to-video.
            mask_video: 1 (or 255) where pixels are regenerated: one image tiled over frames or one per
                frame (see ``cogfun.masks.inpaint``). ``None`` with a video: regenerate everything
                (video-to-video).
            strength: in (0, 1] (None: 1); below 1 the video is noised to the matching timestep and the first
                ``(1 - strength)`` of the steps are skipped (SDEdit). Video-to-video uses 0.70.
            height, width: output size (multiples of 16); default the video's size, else the model's
                ``generation_defaults``, else the transformer's sample size. A size or length outside the
                model's ``trained_sizes`` is generated with a warning.
            num_frames: 4k+1; given with a longer video, its first ``num_frames`` frames are used. Default: the
                video's length cut to 4k+1 and to the model's default length (with a warning when cut), else
                the model's default (49 for released checkpoints). A video path is decoded only that far.
            num_inference_steps, guidance_scale: sampler steps (>= 1) and classifier-free guidance (>= 1;
                1 switches it off); default the model's (50 and 6.0 for released checkpoints).
            guidance_rescale: in [0, 1]; mixes the guided prediction with itself rescaled to the standard deviation
                of the text-conditioned one (Lin et al. 2024, section 3.4: high guidance over-saturates with a
                zero-terminal-SNR schedule), via diffusers' ``rescale_noise_cfg``. 0 (the released checkpoints'
                and the reference's behaviour) is plain guidance; default the model's.
            noise_aug_strength: sigma of the noise added to the kept video before encoding, when the
                transformer's config sets ``add_noise_in_inpaint_model`` (0 disables).
            generator, latents: randomness; ``latents`` ``(B, F_lat, 16, h, w)`` replaces the initial noise.
            prompt_embeds, negative_prompt_embeds: precomputed T5 embeddings.
            output_type: ``"np"`` ``(B, F, H, W, 3)`` in [0, 1], ``"pt"`` ``(B, F, 3, H, W)``, ``"pil"``, or
                ``"latent"`` ``(B, F_lat, 16, h, w)``.
            callback_on_step_end: ``fn(pipe, step, timestep, tensors) -> dict`` after each step; may replace
                ``latents``.
            max_sequence_length: T5 tokens (default the transformer's ``max_text_seq_length``).
            eta: DDIM eta.
            resize_method: ``"reference"`` (what checkpoints expect) or ``"max"`` (study option), see
                ``cogfun.masks.resize_mask``.
            video_latents: video-to-video (``strength < 1``) starts from a ``"sample"`` of the VAE posterior
                drawn with ``generator`` (diffusers and the reference), or from its ``"mode"`` (for study).
            mask_threshold: 8-bit masks (files, PIL, uint8 arrays) regenerate where ``>= mask_threshold``
                (the reference's 240 of 255); float masks are binarised at 0.5. A mask that keeps everything is
                an error (nothing to regenerate). A mask of another size than ``height x width`` (e.g. drawn at
                the source video's size) is resized and cropped with the video, nearest pixels.
            paste_kept: paste the kept pixels (mask 0) of the input back into the output after decoding, so they
                are the input exactly (the VAE otherwise returns them only approximately, and the seam shows).
            control_video: Control and Pose models only (and required there): the clip to follow (pose
                skeletons, depth, canny edges...), in any of ``video``'s forms. It sets the size and length as
                ``video`` does (any length: cut to 4k+1 frames and to ``num_frames``); it is resized to
                ``height x width`` and encoded by the VAE (the posterior's mode, as the reference and diffusers'
                ``CogVideoXFunControlPipeline``); its latents are concatenated after the noisy latents.

        V1.5 models (``patch_size_t=2``) with an odd number of latent frames are padded at the start (see
        ``temporal_padding``); ``latents`` then has the padded length, and the output has ``num_frames`` frames.

        Invalid arguments raise ``ValueError`` before any work (``check_arguments``); prompts with words the
        tokenizer does not know, or longer than the model's text length, warn naming the words.

        Returns:
            ``CogVideoXFunOutput(frames=...)`` or a 1-tuple.
        """
        # 1. Inputs: the mode is the (video, mask) pair. What was given is checked first; None = the default.
        self.check_arguments(prompt, negative_prompt, height, width, num_frames, num_inference_steps,
                             guidance_scale, strength, latents, prompt_embeds, negative_prompt_embeds,
                             guidance_rescale)
        strength = 1.0 if strength is None else strength
        defaults = self.generation_defaults
        self.check_control(video, mask_video, control_video)
        if control_video is not None:
            control_video, height, width, num_frames = self._take_clip(control_video, "control_video", height, width,
                                                                       num_frames)
        if video is not None:
            video, height, width, num_frames = self._take_clip(video, "video", height, width, num_frames)
        if height is None and width is None and defaults.height is not None:
            height, width = defaults.height, defaults.width
        if height is None:
            height = self.transformer.config.sample_height * self.vae_scale_factor_spatial
        if width is None:
            width = self.transformer.config.sample_width * self.vae_scale_factor_spatial
        num_frames = defaults.num_frames if num_frames is None else num_frames
        num_inference_steps = defaults.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance_scale = defaults.guidance_scale if guidance_scale is None else guidance_scale
        guidance_rescale = defaults.guidance_rescale if guidance_rescale is None else guidance_rescale
        untrained = defaults.untrained(height, width, num_frames)
        if untrained:
            warnings.warn(untrained, stacklevel=2)
        self.check_inputs(prompt, prompt_embeds, height, width, num_frames, strength, video, output_type,
                          num_inference_steps)
        device = self._execution_device
        dtype = self.transformer.dtype
        batch = (1 if isinstance(prompt, str) else len(prompt)) if prompt_embeds is None else prompt_embeds.shape[0]
        batch *= num_videos_per_prompt
        if video is not None:
            video = as_video(video, height, width)
            if video.shape[0] not in (1, batch):
                raise ValueError(f"video batch {video.shape[0]} must be 1 or the number of videos {batch}")
            video = video.expand(batch, -1, -1, -1, -1)
            if mask_video is None:
                cond = M.video_to_video(video)
            else:
                mask = fit_mask(as_mask(mask_video, mask_threshold), height, width)  # resized with the video
                if mask.ndim >= 3 and mask.shape[-3] > num_frames and mask.shape[-3] != 1:  # a longer mask clip
                    mask = mask[..., :num_frames, :, :]
                cond = M.inpaint(video, mask)
                V.check_mask_coverage(cond.mask)
        else:
            cond = M.text_to_video(num_frames, height, width, batch_size=batch)

        # 2. Prompt embeddings; CFG stacks [negative, positive] on the batch.
        do_cfg = guidance_scale > 1.0
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt, negative_prompt, do_cfg, num_videos_per_prompt, prompt_embeds, negative_prompt_embeds,
            max_sequence_length, device, dtype,
        )
        text = torch.cat([negative_prompt_embeds, prompt_embeds]) if do_cfg else prompt_embeds

        # 3. Timesteps.
        timesteps, num_steps = self.get_timesteps(num_inference_steps, strength, device)

        # 4. Initial latents: pure noise (strength 1) or the video's latents noised to timesteps[0]. V1.5: the
        #    noise has the padded length; conditioning latents repeat their first frame (temporal_padding).
        latent_frames = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        pad = self.temporal_padding(latent_frames)
        unpadded_shape = (
            batch,
            latent_frames,
            self.transformer.config.out_channels,
            height // self.vae_scale_factor_spatial,
            width // self.vae_scale_factor_spatial,
        )
        shape = (batch, latent_frames + pad, *unpadded_shape[2:])
        if video_latents not in ("sample", "mode"):
            raise ValueError(f"video_latents must be 'sample' or 'mode' (got {video_latents!r})")
        if strength < 1.0:  # encoded first, then the noise: the order of draws of diffusers' video-to-video
            init = self.encode_video(cond.video.to(device), sample=video_latents == "sample", generator=generator)
            init = self._pad_start(init.to(dtype), pad)
        if latents is None:
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            if tuple(latents.shape) != shape:
                raise ValueError(f"latents must have shape {shape} (got {tuple(latents.shape)})")
            noise = latents.to(device, dtype)
        if strength < 1.0:
            latents = self.scheduler.add_noise(init, noise, timesteps[:1].repeat(batch))
        else:
            latents = noise * self.scheduler.init_noise_sigma

        # 5. Inpaint latents [mask | masked-video latents] (zeros where everything is regenerated), or for a
        #    Control model the control video's latents (the posterior's mode, as the reference).
        if control_video is not None:
            control = as_video(control_video, height, width)
            if control.shape[0] not in (1, batch):
                raise ValueError(f"control_video batch {control.shape[0]} must be 1 or the number of videos {batch}")
            control = self.encode_video(control.to(device)).expand(batch, -1, -1, -1, -1)  # (B, F_lat, C, h, w)
            name, extra = "control_latents", self._pad_start(control.to(device, dtype), pad)
        else:
            augment = self.transformer.config.add_noise_in_inpaint_model and noise_aug_strength
            sigma = noise_aug_strength if augment else None
            cond_on_device = M.Conditioning(
                None if cond.video is None else cond.video.to(device, self.vae.dtype), cond.mask.to(device), cond.mode
            )
            inpaint = M.inpaint_latents(
                self.vae, cond_on_device, latent_shape=unpadded_shape, noise_aug_sigma=sigma, generator=generator,
                resize_method=resize_method,
            ).to(device, dtype)  # (B, F_lat, 1 + C, h, w)
            name, extra = "inpaint_latents", self._pad_start(inpaint, pad)
        conditioning = {name: torch.cat([extra, extra]) if do_cfg else extra}

        # 6. Denoising loop, the same for every mode.
        step_kwargs = {}
        if "eta" in inspect.signature(self.scheduler.step).parameters:
            step_kwargs["eta"] = eta
        if "generator" in inspect.signature(self.scheduler.step).parameters:
            step_kwargs["generator"] = generator
        old_pred_original_sample = None
        self._num_timesteps = len(timesteps)
        rope = self._rope_for(latents)  # 3D RoPE of the latent grid (5B models), None for sincos ones
        with self.progress_bar(total=num_steps) as progress:
            for i, t in enumerate(timesteps):
                self._current_timestep = t  # read by diffusers' cache hooks (cogfun.pipelines.speed_levers)
                model_input = torch.cat([latents, latents]) if do_cfg else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                with self._cache_context(i, num_steps, t):
                    prediction = self.transformer(
                        hidden_states=model_input,
                        encoder_hidden_states=text,
                        timestep=t.expand(model_input.shape[0]),
                        image_rotary_emb=rope,
                        **conditioning,
                        return_dict=False,
                    )[0].float()
                if do_cfg:
                    uncond, cond_pred = prediction.chunk(2)
                    prediction = uncond + guidance_scale * (cond_pred - uncond)
                    if guidance_rescale > 0:
                        prediction = rescale_noise_cfg(prediction, cond_pred, guidance_rescale)
                if isinstance(self.scheduler, CogVideoXDPMScheduler):
                    latents, old_pred_original_sample = self.scheduler.step(
                        prediction, old_pred_original_sample, t, timesteps[i - 1] if i > 0 else None, latents,
                        **step_kwargs, return_dict=False,
                    )
                else:
                    latents = self.scheduler.step(prediction, t, latents, **step_kwargs, return_dict=False)[0]
                latents = latents.to(dtype)
                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": prompt_embeds,
                               "negative_prompt_embeds": negative_prompt_embeds}
                    out = callback_on_step_end(self, i, t, {k: tensors[k] for k in callback_on_step_end_tensor_inputs})
                    latents = (out or {}).get("latents", latents)
                progress.update()
        self._current_timestep = None
        latents = latents[:, pad:]  # V1.5: the padded frames go (diffusers drops them before decoding too)

        # 7. Decode.
        if output_type == "latent":
            frames = latents
        else:
            pixels = self.decode_latents(latents)  # (B, 3, F, H, W)
            if paste_kept and cond.video is not None:  # kept pixels (mask 0) are the input's exactly
                keep = cond.mask.to(pixels.device) < 0.5  # (B, 1, F, H, W)
                pixels = torch.where(keep, cond.video.to(pixels.device, pixels.dtype), pixels)
            frames = self.video_processor.postprocess_video(video=pixels.float(), output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return CogVideoXFunOutput(frames=frames)

    # --------------------------------------------------------------------------------------------
    # Thin entry points: each builds (video, mask) and calls __call__
    # --------------------------------------------------------------------------------------------

    def text_to_video(self, prompt: str | list[str], **kwargs: Any):
        """Text-to-video: nothing kept, zero inpaint latents."""
        return self(prompt=prompt, **kwargs)

    def image_to_video(self, prompt: str | list[str], image: Any, end_image: Any = None,
                       num_frames: int | None = None, height: int | None = None, width: int | None = None,
                       **kwargs: Any):
        """Image-to-video (start image kept at frame 0), or start+end with ``end_image`` kept at the last frame.

        The image is fitted to ``height x width`` (resize to cover + centre crop, with a warning) when they
        disagree; by default the output takes the image's size.
        """
        self.check_arguments(prompt, kwargs.get("negative_prompt"), height, width, num_frames,
                             kwargs.get("num_inference_steps"), kwargs.get("guidance_scale"))
        start = as_image(image)
        num_frames = self.generation_defaults.num_frames if num_frames is None else num_frames
        if height is None and width is None:
            V.check_input_size(start.shape[-2], start.shape[-1], "image")
        height = start.shape[-2] if height is None else height
        width = start.shape[-1] if width is None else width
        start = as_image(start, height, width)
        end = None if end_image is None else as_image(end_image, height, width)
        cond = M.image_to_video(start, num_frames, end_image=end)
        return self(prompt=prompt, video=cond.video, mask_video=cond.mask, height=height, width=width,
                    num_frames=num_frames, **kwargs)

    def video_to_video(self, prompt: str | list[str], video: Any, strength: float | None = 0.70, **kwargs: Any):
        """Video-to-video (SDEdit): everything regenerated, starting from the video noised to ``strength``."""
        return self(prompt=prompt, video=video, mask_video=None, strength=strength, **kwargs)

    def inpaint(self, prompt: str | list[str], video: Any, mask: Any, **kwargs: Any):
        """Video inpainting: regenerate where ``mask`` is 1 (one image tiled over frames, or one per frame)."""
        return self(prompt=prompt, video=video, mask_video=mask, **kwargs)

    def long_video(self, prompt: str, num_frames: int, **kwargs: Any):
        """Any number of frames by overlapping segments; see ``cogfun.pipelines.long_video``."""
        from .long_video import generate_long_video

        return generate_long_video(self, prompt, num_frames, **kwargs)


class CogVideoXFunOutput(dict):
    """Pipeline output: ``.frames`` (also ``out["frames"]``, ``out[0]``)."""

    def __init__(self, frames: Any):
        super().__init__(frames=frames)
        self.frames = frames

    def __getitem__(self, key):
        return self.frames if key == 0 else super().__getitem__(key)


def frames_to_numpy(frames: Any) -> np.ndarray:
    """Pipeline frames of any ``output_type`` except latent -> ``(B, F, H, W, 3)`` float in [0, 1]."""
    if isinstance(frames, np.ndarray):
        return frames
    if isinstance(frames, torch.Tensor):
        return frames.permute(0, 1, 3, 4, 2).float().cpu().numpy()
    return np.stack([np.stack([np.asarray(f, dtype=np.float32) / 255.0 for f in video]) for video in frames])
