"""The CogVideoX-Fun training objective: from a batch of clips to a v-prediction MSE.

Follows the reference training step, VideoX-Fun ``scripts/cogvideox_fun/train.py`` (docs/design.md
1.1 and 1.5), in numbered steps (``training_loss``):

1. Text: prompt embeddings from the frozen T5 (cached per unique prompt), replaced by the
   empty prompt's embedding with probability ``text_dropout`` (0.1; what classifier-free
   guidance needs at sampling time).
2. Masks: one random regenerate-mask per sample, of the ten kinds with the reference
   probabilities (``cogfun.training.random_masks``).
3. Inpaint latents: masked video (-1 where regenerated) -> frozen VAE ``.mode()`` x
   scaling_factor, mask channel ``resize_mask(1 - mask)`` x scaling_factor
   (``cogfun.masks.inpaint_latents``). A fully masked sample (text-to-video) gets all-zero
   inpaint latents with probability ``t2v_zero_prob`` (0.9), otherwise the encoding of an all
   -1 video, as the reference. With ``add_noise_in_inpaint_model`` the masked video is noise
   augmented first, sigma ``exp(N(-3, 0.5))`` per sample. (Built from ``cogfun.masks``'
   primitives with one batched VAE call; tests check it against ``inpaint_latents``.)
4. Clean latents: VAE ``latent_dist.sample()`` (the reference; ``.mode()`` optional) x
   scaling_factor, in transformer layout ``(B, F_lat, C, H_lat, W_lat)``.
5. Diffusion: ``t ~ U{0, ..., 999}``, noise ``~ N(0, I)``, ``x_t = scheduler.add_noise``,
   target ``v = scheduler.get_velocity`` = ``sqrt(a_t) eps - sqrt(1 - a_t) x_0``, loss
   ``MSE(transformer(x_t, text, t, inpaint), v)`` in float32.

Every random draw comes from one CPU ``torch.Generator`` in the order above (dropout,
masks, zeroing, noise-augmentation, latent sampling, timesteps, noise), so a run resumed
with the generator's state reproduces its losses exactly. The training scheduler is diffusers'
``DDPMScheduler`` with the checkpoint's config (v-prediction, scaled_linear 0.00085..0.012,
zero-terminal-SNR); the sampler-only ``snr_shift_scale`` is not used in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange

from ..masks import add_noise_to_reference_video, masked_video, resize_mask, training_noise_sigma
from ..models.presets import SCHEDULER_CONFIG
from ..models.text_encoder import encode_prompts
from .random_masks import MASK_KINDS, MASK_PROBABILITIES, random_mask

__all__ = [
    "LossOutput",
    "PromptCache",
    "build_training_scheduler",
    "drop_text",
    "draw_training_masks",
    "encode_clean_latents",
    "training_inpaint_latents",
    "training_loss",
    "v_prediction_loss",
    "timestep_loss_weights",
    "object_cell_weights",
    "LOSS_WEIGHTINGS",
]


def build_training_scheduler(config: dict[str, Any] | None = None):
    """diffusers ``DDPMScheduler`` for training, from a sampler config (default the 2B one).

    Keys DDPM does not take (``snr_shift_scale`` of CogVideoX's DDIM sampler) are dropped, as
    ``DDPMScheduler.from_pretrained(..., subfolder="scheduler")`` does in the reference.

    Args:
        config: a scheduler config dict (e.g. a checkpoint's ``scheduler_config.json``).
    """
    import inspect

    from diffusers import DDPMScheduler

    config = dict(SCHEDULER_CONFIG if config is None else config)
    known = set(inspect.signature(DDPMScheduler.__init__).parameters)
    return DDPMScheduler(**{k: v for k, v in config.items() if k in known})


# ---------------------------------------------------------------------------------------------
# 1. Text
# ---------------------------------------------------------------------------------------------


class PromptCache:
    """Embeddings of a frozen text encoder, computed once per unique prompt.

    Args:
        tokenizer: T5 tokenizer.
        text_encoder: frozen ``T5EncoderModel`` (eval mode).
        max_length: tokens per prompt (the transformer's ``max_text_seq_length``).
        enabled: keep embeddings in memory (False recomputes every call).
    """

    def __init__(self, tokenizer, text_encoder, max_length: int, enabled: bool = True) -> None:
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self.max_length, self.enabled = max_length, enabled
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        """``(B, max_length, D)`` embeddings of ``prompts`` (float32, CPU)."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if missing:
            embeds = encode_prompts(self.tokenizer, self.text_encoder, missing, self.max_length)
            new = dict(zip(missing, embeds.float().cpu()))  # each (L, D)
            if not self.enabled:
                return torch.stack([new[p] for p in prompts])
            self._cache.update(new)
        return torch.stack([self._cache[p] for p in prompts])  # (B, L, D)

    def __len__(self) -> int:
        return len(self._cache)


def drop_text(
    prompt_embeds: torch.Tensor,
    empty_embeds: torch.Tensor,
    probability: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each sample's prompt embedding by the empty prompt's with ``probability``.

    Args:
        prompt_embeds: ``(B, L, D)``.
        empty_embeds: ``(1, L, D)``, the embedding of ``""``.
        probability: the reference's ``text_drop_ratio`` (0.1).
        generator: CPU generator; draws ``B`` uniforms.

    Returns:
        ``(embeds (B, L, D), dropped (B,) bool)``.
    """
    b = prompt_embeds.shape[0]
    dropped = torch.rand(b, generator=generator) < probability  # (B,)
    embeds = torch.where(dropped.view(b, 1, 1), empty_embeds.to(prompt_embeds), prompt_embeds)
    return embeds, dropped


# ---------------------------------------------------------------------------------------------
# 2. Masks and 3. inpaint latents
# ---------------------------------------------------------------------------------------------


def draw_training_masks(
    batch_size: int,
    num_frames: int,
    height: int,
    width: int,
    generator: torch.Generator,
    probabilities: Sequence[float] = MASK_PROBABILITIES,
) -> tuple[torch.Tensor, list[str]]:
    """One random mask per sample, kinds drawn with ``probabilities`` over ``MASK_KINDS``.

    A single image (F = 1) uses the reference's image branch (box 0.2, all 0.8).

    Args:
        batch_size, num_frames, height, width: B, F, H, W.
        generator: CPU generator.
        probabilities: one per ``MASK_KINDS`` (default the reference's).

    Returns:
        ``(masks (B, 1, F, H, W) in {0, 1}, 1 = regenerate; kinds)``.
    """
    probs = torch.tensor(list(probabilities), dtype=torch.float32)
    masks, kinds = [], []
    for _ in range(batch_size):
        kind = None
        if num_frames > 1:
            kind = MASK_KINDS[int(torch.multinomial(probs, 1, generator=generator))]
        mask, kind = random_mask(num_frames, height, width, generator, kind=kind)  # (1, F, H, W)
        masks.append(mask)
        kinds.append(kind)
    return torch.stack(masks), kinds  # (B, 1, F, H, W)


def training_inpaint_latents(
    vae,
    video: torch.Tensor,
    masks: torch.Tensor,
    latent_shape: Sequence[int],
    generator: torch.Generator,
    t2v_zero_prob: float = 0.9,
    noise_aug: bool = False,
    scaling_factor: float | None = None,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inpaint latents of a training batch, with the reference's zeroing of text-to-video samples.

    The same quantities as ``cogfun.masks.inpaint_latents`` (mask channel
    ``resize_mask(1 - mask) * sf``, masked-video latents ``.mode() * sf``, noise never on -1
    pixels), built from its primitives but with the kept samples encoded as one batch (on a
    CPU the VAE's per-call overhead makes per-sample encoding about 3x slower at toy sizes).

    Args:
        vae: frozen ``AutoencoderKLCogVideoX``, or an encode callable
            ``(B, 3, F, H, W) -> (B, C, F_lat, H_lat, W_lat)`` with ``scaling_factor``.
        video: ``(B, 3, F, H, W)`` in [-1, 1].
        masks: ``(B, 1, F, H, W)``, 1 = regenerate.
        latent_shape: ``(B, F_lat, C, H_lat, W_lat)`` of the clean latents.
        generator: CPU generator; draws ``B`` uniforms (zeroing), then, with ``noise_aug``,
            ``B`` sigmas and the noise of the encoded samples.
        t2v_zero_prob: probability that a fully masked sample gets all-zero inpaint latents
            (the other ones encode an all -1 video, as the reference's training).
        noise_aug: noise-augment the masked video (``add_noise_in_inpaint_model``).
        scaling_factor: default ``vae.config.scaling_factor``.
        chunk_size: samples per VAE call (default all kept samples at once).

    Returns:
        ``(inpaint (B, F_lat, 1 + C, H_lat, W_lat), zeroed (B,) bool)``.
    """
    b = video.shape[0]
    fully = (masks >= 0.5).flatten(1).all(dim=1)  # (B,)
    zeroed = fully & (torch.rand(b, generator=generator) < t2v_zero_prob)  # (B,)
    sigma = training_noise_sigma(b, generator) if noise_aug else None  # (B,)
    if scaling_factor is None:
        scaling_factor = float(vae.config.scaling_factor)
    f_lat, c, h_lat, w_lat = latent_shape[1:]
    out = torch.zeros(b, f_lat, 1 + c, h_lat, w_lat)  # (B, F_lat, 1 + C, H_lat, W_lat)
    keep = (~zeroed).nonzero().flatten()
    if len(keep) == 0:
        return out, zeroed
    mask = masks[keep]  # (K, 1, F, H, W)
    pixels = masked_video(video[keep], mask)  # (K, 3, F, H, W), -1 where regenerated
    if sigma is not None:
        pixels = add_noise_to_reference_video(pixels, sigma[keep].to(pixels), generator)
    chunk_size = chunk_size or len(keep)
    latents = []
    for i in range(0, len(keep), chunk_size):
        x = pixels[i : i + chunk_size]
        if hasattr(vae, "encode"):
            latents.append(vae.encode(x.to(vae.device, vae.dtype)).latent_dist.mode())
        else:
            latents.append(vae(x))
    latents = torch.cat(latents) * scaling_factor  # (K, C, F_lat, H_lat, W_lat)
    known = resize_mask(1 - mask.float(), (f_lat, h_lat, w_lat)) * scaling_factor  # (K, 1, F_lat, H_lat, W_lat)
    encoded = torch.cat([known.to(latents), latents], dim=1)  # (K, 1 + C, F_lat, H_lat, W_lat)
    out = out.to(encoded)
    out[keep] = rearrange(encoded, "b c f h w -> b f c h w")
    return out, zeroed


# ---------------------------------------------------------------------------------------------
# 4. Clean latents and 5. the v-prediction loss
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def encode_clean_latents(
    vae, video: torch.Tensor, generator: torch.Generator, sampling: str = "sample", chunk_size: int | None = None
) -> torch.Tensor:
    """Training latents ``(B, F_lat, C, H_lat, W_lat)`` x scaling_factor.

    The batch goes through the VAE in chunks of ``chunk_size`` samples (default all at once:
    on a CPU the CogVideoX VAE's per-call overhead dominates at toy sizes; on a GPU lower it to
    bound memory, the reference encodes in mini-batches too).

    Args:
        vae: frozen ``AutoencoderKLCogVideoX``.
        video: ``(B, 3, F, H, W)`` in [-1, 1].
        generator: CPU generator for the posterior sample (drawn on the CPU, so the stream does
            not depend on the device).
        sampling: ``"sample"`` (the reference) or ``"mode"``.
        chunk_size: samples per VAE call.
    """
    chunk_size = chunk_size or video.shape[0]
    out = []
    for i in range(0, video.shape[0], chunk_size):
        dist = vae.encode(video[i : i + chunk_size].to(vae.device, vae.dtype)).latent_dist
        if sampling == "mode":
            z = dist.mode()
        else:
            eps = torch.randn(dist.mean.shape, generator=generator).to(dist.mean)
            z = dist.mean + dist.std * eps
        out.append(z)  # (b, C, F_lat, H_lat, W_lat)
    latents = torch.cat(out) * vae.config.scaling_factor
    return rearrange(latents, "b c f h w -> b f c h w")


LOSS_WEIGHTINGS = ("uniform", "capped-snr")


def timestep_loss_weights(
    scheduler, timesteps: torch.Tensor, weighting: str = "uniform", snr_gamma: float = 5.0
) -> torch.Tensor:
    """Per-sample weights of the v-prediction MSE by timestep.

    - ``"uniform"``: 1 (the reference). Note what it means: the v error is the x0 error times
      ``sqrt(1 + SNR)``, so the plain v-MSE weighs the x0 error by ``1 + SNR``: the nearly clean
      timesteps (SNR ~100 at t = 10) dominate the loss and the gradient, while what decides a sample's
      content (colour, shape, motion) is learned where the SNR is low.
    - ``"capped-snr"``: ``min(1 + SNR, 1 + snr_gamma) / (1 + SNR)``: the x0 error weighed by
      ``min(1 + SNR, 1 + gamma)``, i.e. the plain v-MSE wherever ``SNR <= gamma`` and down-weighted above it.
      It is Min-SNR-gamma weighting (Hang et al. 2023) with the v-loss's own ``+1`` kept: the textbook
      v-prediction form ``min(SNR, gamma) / (1 + SNR)`` is zero at the last timestep of a zero-terminal-SNR
      schedule, which would never train the sampler's first step (pure noise and the text).

    Args:
        scheduler: the training scheduler (its ``alphas_cumprod``).
        timesteps: ``(B,)`` integer timesteps.
        weighting: one of ``LOSS_WEIGHTINGS``.
        snr_gamma: the cap (5, as in the Min-SNR paper).

    Returns:
        ``(B,)`` float32 weights.
    """
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; choose one of {', '.join(LOSS_WEIGHTINGS)}")
    if weighting == "uniform":
        return torch.ones(timesteps.shape, dtype=torch.float32)
    if snr_gamma <= 0:
        raise ValueError(f"snr_gamma must be > 0 (got {snr_gamma}); the Min-SNR paper uses 5")
    alphas = scheduler.alphas_cumprod.double()[timesteps.cpu()]
    snr = alphas / (1 - alphas)
    return (torch.clamp(snr + 1, max=1 + snr_gamma) / (snr + 1)).float()


def object_cell_weights(latents: torch.Tensor, object_weight: float, threshold: float) -> torch.Tensor:
    """Per-cell weights of the v-MSE that favour the latent cells of a frame's object.

    A cell belongs to the object when its clean latent is far from its frame's background, taken as
    the spatial median of the frame (per channel): ``sqrt(mean_c (x0 - median_hw x0)^2) > threshold``.
    On the toy world's plain backgrounds this marks the moving shape (1-3 cells of 8x12 at 64x96,
    about 7.5% of the latent variance); a frame with no such cells keeps uniform weights. Object
    cells weigh ``object_weight``, the others 1, and each sample's weights are normalised to mean 1,
    so a sample's share of the loss is unchanged and only the split between object and background
    moves. ``object_weight=1`` is the reference (all ones). A departure from the reference for
    scratch training on plain backgrounds; nothing in CogVideoX-Fun weighs cells.

    Weights that depend on the clean latents change what the loss is minimised by: the conditional
    mean ``E[x0 | x_t]`` becomes ``E[w x0 | x_t] / E[w | x_t]``, so at high noise every place the
    object might be is predicted brighter in its colour. Measured on the toy model (DIAGNOSIS.md
    sections 14-15): colour and kept first frames improve, and objects are drawn several times too big.

    Args:
        latents: clean latents ``(B, F_lat, C, h, w)``.
        object_weight: weight of an object cell relative to a background cell (>= 1).
        threshold: RMS distance over channels from the frame's median above which a cell is object.

    Returns:
        ``(B, F_lat, 1, h, w)`` float32 weights, mean 1 over each sample's cells.
    """
    if object_weight < 1:
        raise ValueError(f"object_weight must be >= 1 (got {object_weight}); 1 turns the weighting off")
    if threshold <= 0:
        raise ValueError(f"object_threshold must be > 0 (got {threshold})")
    x = latents.detach().float()
    background = x.flatten(3).median(dim=3).values[..., None, None]  # (B, F, C, 1, 1)
    distance = (x - background).square().mean(dim=2, keepdim=True).sqrt()  # (B, F, 1, h, w)
    weights = 1 + (object_weight - 1) * (distance > threshold).float()
    return weights / weights.flatten(1).mean(1).view(-1, 1, 1, 1, 1)


def v_prediction_loss(
    transformer,
    scheduler,
    latents: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    inpaint: torch.Tensor | None,
    generator: torch.Generator,
    weighting: str = "uniform",
    snr_gamma: float = 5.0,
    object_weight: float = 1.0,
    object_threshold: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MSE between the transformer's v and ``scheduler.get_velocity`` at a random timestep.

    Args:
        transformer: the (possibly wrapped) inpaint transformer.
        scheduler: ``DDPMScheduler`` (v-prediction).
        latents: clean latents ``(B, F_lat, C, H_lat, W_lat)``.
        encoder_hidden_states: ``(B, L, D)``.
        inpaint: ``(B, F_lat, 1 + C, H_lat, W_lat)`` or None (plain CogVideoX).
        generator: CPU generator; draws ``B`` timesteps then the noise.
        weighting, snr_gamma: each sample's weight by its timestep (:func:`timestep_loss_weights`);
            ``"uniform"`` is the reference's plain mean.
        object_weight, object_threshold: weigh each cell by :func:`object_cell_weights` of the clean
            latents (``object_weight=1``, the default and the reference: every cell alike).

    Returns:
        ``(loss, {"timesteps", "noise", "noisy", "target", "pred"})``.
    """
    b = latents.shape[0]
    device = latents.device
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator)  # (B,)
    noise = torch.randn(latents.shape, generator=generator).to(latents)  # (B, F, C, H, W)
    timesteps = timesteps.to(device)
    noisy = scheduler.add_noise(latents, noise, timesteps)  # sqrt(a) x0 + sqrt(1-a) eps
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)  # sqrt(a) eps - sqrt(1-a) x0
    elif scheduler.config.prediction_type == "epsilon":
        target = noise
    else:
        raise ValueError(
            f"prediction_type {scheduler.config.prediction_type!r} is not trained here; use "
            "v_prediction (CogVideoX) or epsilon"
        )
    model = getattr(transformer, "module", transformer)  # unwrapped from DDP ...
    model = getattr(model, "_orig_mod", model)  # ... and torch.compile, for its config and RoPE cache
    rope = model.rope_for(noisy) if hasattr(model, "rope_for") else None
    pred = transformer(noisy, encoder_hidden_states, timesteps, inpaint_latents=inpaint, image_rotary_emb=rope,
                       return_dict=False)[0]
    if weighting == "uniform" and object_weight == 1:
        loss = F.mse_loss(pred.float(), target.float(), reduction="mean")
    else:
        error = (pred.float() - target.float()).square()  # (B, F, C, h, w)
        if object_weight != 1:
            error = error * object_cell_weights(latents, object_weight, object_threshold).to(error)
        per_sample = error.flatten(1).mean(1)  # (B,)
        loss = (timestep_loss_weights(scheduler, timesteps, weighting, snr_gamma).to(per_sample) * per_sample).mean()
    return loss, dict(timesteps=timesteps, noise=noise, noisy=noisy, target=target, pred=pred)


@dataclass
class LossOutput:
    """What ``training_loss`` computed for one batch.

    Attributes:
        loss: scalar float32 with gradients.
        timesteps: ``(B,)``.
        mask_kinds: the B mask kinds.
        text_dropped: ``(B,)`` bool, empty prompt used.
        inpaint_zeroed: ``(B,)`` bool, all-zero inpaint latents.
    """

    loss: torch.Tensor
    timesteps: torch.Tensor
    mask_kinds: list[str]
    text_dropped: torch.Tensor
    inpaint_zeroed: torch.Tensor


def training_loss(
    batch: dict[str, Any],
    transformer,
    vae,
    scheduler,
    prompts: PromptCache,
    generator: torch.Generator,
    text_dropout: float = 0.1,
    t2v_zero_prob: float = 0.9,
    mask_probabilities: Sequence[float] = MASK_PROBABILITIES,
    noise_aug: bool = False,
    latent_sampling: str = "sample",
    device: torch.device | str | None = None,
    weighting: str = "uniform",
    snr_gamma: float = 5.0,
    object_weight: float = 1.0,
    object_threshold: float = 0.5,
) -> LossOutput:
    """The reference training step's loss for one batch (see the module docstring).

    Args:
        batch: ``collate`` output: ``pixel_values`` ``(B, F, C, H, W)`` in [-1, 1], ``text``.
        transformer: the inpaint transformer (possibly wrapped by accelerate).
        vae: frozen VAE.
        scheduler: ``build_training_scheduler()``.
        prompts: ``PromptCache`` of the frozen text encoder.
        generator: CPU generator, the run's training randomness.
        text_dropout, t2v_zero_prob, mask_probabilities, noise_aug, latent_sampling: the recipe.
        device: where the transformer runs (default the VAE's device).
        weighting, snr_gamma, object_weight, object_threshold: the loss's weights
            (:func:`v_prediction_loss`).
    """
    device = torch.device(device) if device is not None else vae.device
    pixel_values = batch["pixel_values"]  # (B, F, C, H, W)
    b, f, _, h, w = pixel_values.shape
    video = rearrange(pixel_values, "b f c h w -> b c f h w").to(device)  # (B, 3, F, H, W)

    # 1. Text, with dropout to the empty prompt.
    embeds, dropped = drop_text(prompts(batch["text"]), prompts([""]), text_dropout, generator)
    embeds = embeds.to(device)  # (B, L, D)

    # 2. Random regenerate-masks.
    masks, kinds = draw_training_masks(b, f, h, w, generator, mask_probabilities)
    masks = masks.to(device)  # (B, 1, F, H, W)

    # 3. Inpaint latents (frozen VAE) and 4. clean latents.
    with torch.no_grad():
        spatial = 2 ** (len(vae.config.block_out_channels) - 1)
        temporal = int(vae.config.temporal_compression_ratio)
        shape = (b, (f - 1) // temporal + 1, int(vae.config.latent_channels), h // spatial, w // spatial)
        inpaint, zeroed = training_inpaint_latents(
            vae, video, masks, shape, generator, t2v_zero_prob, noise_aug
        )  # (B, F_lat, 1 + C, H_lat, W_lat)
        latents = encode_clean_latents(vae, video, generator, latent_sampling)  # (B, F_lat, C, H_lat, W_lat)

    # 5. v-prediction MSE.
    loss, extras = v_prediction_loss(
        transformer, scheduler, latents.to(device), embeds, inpaint.to(device), generator, weighting, snr_gamma,
        object_weight, object_threshold,
    )
    return LossOutput(loss, extras["timesteps"], kinds, dropped, zeroed)


def cached_training_loss(
    batch: dict[str, Any],
    transformer,
    scheduler,
    empty_embeds: torch.Tensor,
    generator: torch.Generator,
    text_dropout: float = 0.1,
    t2v_prob: float = 0.0,
    t2v_zero_prob: float = 0.9,
    latent_sampling: str = "sample",
    device: torch.device | str = "cpu",
    weighting: str = "uniform",
    snr_gamma: float = 5.0,
    object_weight: float = 1.0,
    object_threshold: float = 0.5,
) -> LossOutput:
    """The training step's loss on a latent cache with inpaint conditionings (no VAE, no T5).

    ``cogfun.data.latent_cache.cache_latents(..., inpaint_masks=K)`` stored, per clip, the latents'
    posterior moments, the prompt embedding and the inpaint latents of K random masks. Per sample:

    1. text: the prompt embedding, or the empty prompt's with ``text_dropout`` (as ``training_loss``);
    2. conditioning: with ``t2v_prob`` text-to-video (all-zero inpaint latents, what the pipeline gives
       text-to-video); otherwise one of the K cached masks, uniformly; a cached mask that regenerates
       everything is zeroed with ``t2v_zero_prob`` (the reference's rule);
    3. clean latents: a posterior sample ``mean + std * eps`` (the reference) or the mode;
    4. the v-prediction MSE (:func:`v_prediction_loss`).

    Args:
        batch: ``latents`` ``(B, F_lat, C, h, w)``, ``prompt_embeds`` ``(B, L, D)``, ``inpaint``
            ``(B, K, F_lat, 1 + C, h, w)``, ``inpaint_full`` ``(B, K)`` [, ``latents_std``].
        transformer: the inpaint transformer (possibly wrapped).
        scheduler: ``build_training_scheduler()``.
        empty_embeds: ``(1, L, D)`` or ``(L, D)``: the embedding of ``""``.
        generator: CPU generator; draws, in order, B uniforms (text), B uniforms + B indices + B
            uniforms (conditioning), the posterior noise (when sampling), then what
            :func:`v_prediction_loss` draws.
        text_dropout, t2v_prob, t2v_zero_prob, latent_sampling: the recipe.
        device: where the transformer runs.
        weighting, snr_gamma, object_weight, object_threshold: the loss's weights
            (:func:`v_prediction_loss`).
    """
    latents = batch["latents"]
    b = latents.shape[0]
    if "inpaint" not in batch:
        raise ValueError("this latent cache has no inpaint conditionings; rebuild it with "
                         "`cogfun cache ... --inpaint-masks K` (K >= 1)")
    empty = empty_embeds.reshape(1, *empty_embeds.shape[-2:])
    embeds, dropped = drop_text(batch["prompt_embeds"], empty, text_dropout, generator)  # (B, L, D)

    inpaint_all, full = batch["inpaint"], batch["inpaint_full"].bool()  # (B, K, ...), (B, K)
    k = inpaint_all.shape[1]
    t2v = torch.rand(b, generator=generator) < t2v_prob  # (B,)
    pick = torch.randint(0, k, (b,), generator=generator)  # (B,)
    rows = torch.arange(b)
    zero_full = full[rows, pick] & (torch.rand(b, generator=generator) < t2v_zero_prob)
    zeroed = t2v | zero_full  # (B,)
    inpaint = inpaint_all[rows, pick] * (~zeroed).view(b, 1, 1, 1, 1).to(inpaint_all)  # (B, F_lat, 1 + C, h, w)
    kinds = ["all" if t else f"cached:{int(i)}" for t, i in zip(t2v.tolist(), pick.tolist())]

    if latent_sampling == "sample" and "latents_std" in batch:
        eps = torch.randn(latents.shape, generator=generator)
        latents = latents + batch["latents_std"] * eps
    loss, extras = v_prediction_loss(
        transformer, scheduler, latents.to(device), embeds.to(device), inpaint.to(device), generator, weighting,
        snr_gamma, object_weight, object_threshold,
    )
    return LossOutput(loss, extras["timesteps"], kinds, dropped, zeroed)
