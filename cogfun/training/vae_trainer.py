"""Training the small CogVideoX VAE on random crops of clips: reconstruction + a small KL term.

No pretrained video VAE can be had offline, so the toy world needs its own: diffusers'
``AutoencoderKLCogVideoX`` at a preset size (``cogfun.models.presets.build_vae``; 8x spatial and
4x causal temporal compression, 16 latent channels as the real one), trained as a KL
autoencoder (Kingma & Welling; the LDM/CogVideoX VAE objective without the perceptual and GAN
terms):

    loss = l1_weight * |x - x_hat|  +  mse_weight * (x - x_hat)^2  +  kl_weight * KL(q(z|x) || N(0, I))

reconstruction terms are means over pixel values, the KL is in nats per pixel value, and
``x_hat = decode(z)``, ``z ~ q(z|x)``. The machinery is the transformer trainer's (the
reference's ``scripts/cogvideox_fun/train.py`` loop on accelerate): run folder, metrics.jsonl,
checkpoints with optimizer / LR / EMA / RNG / sampler position, exact resume, 2-process data
parallel. At the end the VAE's ``scaling_factor`` is set to ``1 / std(z)`` over a few crops
(the LDM convention; the real CogVideoX-2B VAE uses 1.15258426) and the model is written to
``run_dir/model/vae`` (point a transformer config's ``vae_path`` at ``run_dir/model``).

Cost on a CPU: the CogVideoX VAE is expensive (3D causal convolutions). Crops keep a step
cheap: 9x32x32 crops are the default.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..buckets import BucketBatchSampler, resize_crop_box
from ..data.video_io import frames_to_tensor, frames_to_uint8, read_video
from .config import VAETrainConfig
from .dataset import TaggedBatchSampler, collate, load_metadata, worker_context
from .trainer import (
    MetricsLog,
    _print,
    build_optimizer,
    is_sharded,
    make_accelerator,
    model_folder,
    parameter_checksum,
    prepare_run,
    resume_training_checkpoint,
    save_training_checkpoint,
    training_generator,
)

__all__ = ["VAEObjective", "VideoCropDataset", "kl_per_pixel", "train_vae"]


class VideoCropDataset(torch.utils.data.Dataset):
    """Random ``frames x height x width`` crops of the clips of a metadata JSON.

    A clip smaller than the crop is first resized to cover it; clips shorter than ``frames``
    are skipped. The crop position of ``dataset[(index, epoch)]`` is drawn from
    ``(seed, index, epoch)``, so a resumed run sees the same crops.

    Args:
        metadata: metadata JSON path.
        frames, height, width: crop size (frames 4k+1).
        data_root: folder ``file_path`` is relative to (default the metadata's folder).
        seed: seed of the crop positions.
        cache: keep decoded clips in memory (uint8).
        candidates: draw this many crop positions and keep the one whose pixels vary most
            (content-aware crops). Toy clips are mostly flat background: a random crop often holds
            no object at all, and the objects' colours and edges are what a VAE is slowest to learn.
    """

    def __init__(self, metadata: str | Path, frames: int, height: int, width: int,
                 data_root: str | Path | None = None, seed: int = 0, cache: bool = True,
                 candidates: int = 1) -> None:
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1 (got {candidates})")
        self.candidates = candidates
        entries = load_metadata(metadata)
        self.root = Path(data_root) if data_root is not None else Path(metadata).parent
        self.entries = [e for e in entries if e["type"] == "video" and int(e.get("num_frames", frames)) >= frames]
        if not self.entries:
            raise ValueError(f"no video in {metadata} has {frames} frames; lower crop_frames")
        self.frames, self.height, self.width, self.seed = frames, height, width, seed
        self.cache = cache
        self._clips: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def _clip(self, index: int) -> np.ndarray:
        if index in self._clips:
            return self._clips[index]
        frames, _ = read_video(self.root / self.entries[index]["file_path"])
        clip = frames_to_uint8(frames)  # (F, H, W, 3)
        if clip.shape[0] < self.frames:
            raise ValueError(f"{self.entries[index]['file_path']} has {clip.shape[0]} frames, fewer than "
                             f"crop_frames={self.frames}; fix its num_frames in the metadata")
        if self.cache:
            self._clips[index] = clip
        return clip

    def __getitem__(self, item: int | tuple[int, ...]) -> dict[str, Any]:
        index, epoch, position = (item, 0, None) if isinstance(item, int) else (*item, None)[:3]
        clip = self._clip(index)  # (F0, H0, W0, 3) uint8
        rng = np.random.default_rng([self.seed, index, epoch])
        t0 = int(rng.integers(clip.shape[0] - self.frames + 1))
        video = frames_to_tensor(clip[t0 : t0 + self.frames])  # (F, C, H0, W0) in [-1, 1]
        h0, w0 = video.shape[2:]
        if h0 < self.height or w0 < self.width:  # too small: resize to cover the crop
            box = resize_crop_box(h0, w0, self.height, self.width)
            video = F.interpolate(video, size=(box.resize_h, box.resize_w), mode="bilinear",
                                  align_corners=False, antialias=True).clamp(-1, 1)
            h0, w0 = video.shape[2:]
        best = None
        for _ in range(self.candidates):
            top = int(rng.integers(h0 - self.height + 1))
            left = int(rng.integers(w0 - self.width + 1))
            crop = video[:, :, top : top + self.height, left : left + self.width]  # (F, C, H, W)
            spread = float(crop.std()) if self.candidates > 1 else 0.0
            if best is None or spread > best[0]:
                best = (spread, crop)
        crop = best[1].contiguous()
        sample = dict(pixel_values=crop, text=self.entries[index]["text"], index=index)
        if position is not None:
            sample["sampler_state"] = (epoch, position)
        return sample


def kl_per_pixel(mean: torch.Tensor, logvar: torch.Tensor, pixels_per_sample: int) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed per sample, divided by its pixel values, batch mean.

    (diffusers' ``DiagonalGaussianDistribution.kl`` sums over dims 1-3 only, which leaves the
    width axis of 5-D video latents unsummed; this sums everything.)
    """
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)  # (B, C, F, H, W)
    return kl.flatten(1).sum(dim=1).mean() / pixels_per_sample


class VAEObjective(torch.nn.Module):
    """The VAE and its loss as one module, so data parallel wrappers see a single forward.

    Args:
        vae: ``AutoencoderKLCogVideoX``.
        l1_weight, mse_weight, kl_weight: loss weights.
    """

    def __init__(self, vae, l1_weight: float = 1.0, mse_weight: float = 1.0, kl_weight: float = 1e-6,
                 foreground_weight: float = 0.0) -> None:
        super().__init__()
        self.vae = vae
        self.l1_weight, self.mse_weight, self.kl_weight = l1_weight, mse_weight, kl_weight
        self.foreground_weight = foreground_weight

    def forward(self, video: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``video`` ``(B, 3, F, H, W)`` in [-1, 1] -> ``{"loss", "l1", "mse", "kl"}``."""
        posterior = self.vae.encode(video).latent_dist
        eps = torch.randn(posterior.mean.shape, generator=generator).to(posterior.mean)  # CPU stream
        z = posterior.mean + posterior.std * eps  # (B, C, F_lat, H_lat, W_lat)
        recon = self.vae.decode(z).sample  # (B, 3, F, H, W)
        error = recon.float() - video.float()
        l1, mse = error.abs().mean(), error.pow(2).mean()  # reported unweighted
        weight = foreground_map(video, self.foreground_weight)  # (B, 1, F, H, W) or None
        kl = kl_per_pixel(posterior.mean.float(), posterior.logvar.float(), video[0].numel())
        if weight is None:
            loss = self.l1_weight * l1 + self.mse_weight * mse + self.kl_weight * kl
        else:
            weighted = (self.l1_weight * error.abs() + self.mse_weight * error.pow(2)) * weight
            loss = weighted.mean() / weight.mean() + self.kl_weight * kl
        return dict(loss=loss, l1=l1.detach(), mse=mse.detach(), kl=kl.detach())


@torch.no_grad()
def foreground_map(video: torch.Tensor, foreground_weight: float, threshold: float = 0.2) -> torch.Tensor | None:
    """Per-pixel loss weights ``1 + foreground_weight`` on pixels far from their frame's median colour, else 1.

    Toy clips (and much real footage) are mostly background: an object of 5% of the pixels gets 5% of an
    unweighted loss, and a VAE then learns backgrounds first and the objects' colours last. The weights are
    normalised by their mean in the loss, so its scale does not change.

    Args:
        video: ``(B, 3, F, H, W)`` in [-1, 1].
        foreground_weight: extra weight of foreground pixels (0 = none: returns None).
        threshold: RGB distance in [0, 1] units from the frame's median colour that makes a pixel foreground.

    Returns:
        ``(B, 1, F, H, W)`` weights, or None.
    """
    if foreground_weight <= 0:
        return None
    median = video.flatten(3).median(dim=3).values[..., None, None]  # (B, 3, F, 1, 1)
    distance = ((video - median) / 2).pow(2).sum(dim=1, keepdim=True).sqrt()  # (B, 1, F, H, W) in [0, 1] units
    return 1.0 + foreground_weight * (distance > threshold).to(video.dtype)


@torch.no_grad()
def latent_std(vae, dataset: VideoCropDataset, samples: int, seed: int) -> float:
    """Standard deviation of sampled latents over ``samples`` crops (for ``scaling_factor``)."""
    generator = torch.Generator().manual_seed(seed)
    zs = []
    for i in range(min(samples, len(dataset) * 4)):
        video = dataset[(i % len(dataset), 10_000 + i)]["pixel_values"]  # (F, C, H, W)
        video = video.permute(1, 0, 2, 3)[None].to(vae.device, vae.dtype)  # (1, 3, F, H, W)
        zs.append(vae.encode(video).latent_dist.sample(generator=generator).flatten().float().cpu())
    return float(torch.cat(zs).std())


def train_vae(config: VAETrainConfig, resume: bool | str | None = None) -> Path:
    """Train the small VAE; returns the run folder (model in ``run_dir/model/vae``).

    Args:
        config: the VAE config.
        resume: as ``cogfun.training.trainer.train``.
    """
    from .trainer import torch_threads

    with torch_threads(config.num_threads):
        return _train_vae(config, resume)


def _train_vae(config: VAETrainConfig, resume: bool | str | None) -> Path:
    from accelerate.utils import set_seed
    from diffusers import AutoencoderKLCogVideoX
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    from ..models.presets import build_vae
    from .trainer import _load_vae

    # 1. Accelerator, run folder, seeds.
    accelerator = make_accelerator(config)
    rank, world = accelerator.process_index, accelerator.num_processes
    run_dir, checkpoint = prepare_run(accelerator, config, resume)
    _print(accelerator, f"run folder {run_dir}" + (f", resuming from {checkpoint.name}" if checkpoint else ""))
    set_seed(config.seed)

    # 2. The VAE (new from a preset, or fine-tuned from vae_path), its objective and optimiser.
    vae: AutoencoderKLCogVideoX = _load_vae(Path(config.vae_path)) if config.vae_path else build_vae(
        config.vae_preset, seed=config.vae_seed
    )
    vae.requires_grad_(True)
    if config.gradient_checkpointing:
        vae.enable_gradient_checkpointing()
    vae.train()
    objective = VAEObjective(vae, config.l1_weight, config.mse_weight, config.kl_weight, config.foreground_weight)
    params = [p for p in vae.parameters() if p.requires_grad]
    optimizer, lr_scheduler = build_optimizer(config, params)
    ema = EMAModel(params, decay=config.ema_decay) if config.use_ema else None
    if is_sharded(accelerator):
        raise ValueError("the small VAE trains with DDP (accelerate_configs/ddp.yaml) or on one process; "
                         "DeepSpeed / FSDP are not wired for it")
    model, optimizer = accelerator.prepare(objective, optimizer)

    # 3. Data: crops of one shape, so one bucket; each rank its own batches.
    if not config.metadata:
        raise ValueError("metadata is empty; set metadata: path/to/metadata.json in the config")
    dataset = VideoCropDataset(config.metadata, config.crop_frames, config.crop_height, config.crop_width,
                               config.data_root, seed=config.seed, cache=config.cache_clips,
                               candidates=config.crop_candidates)
    key = (config.crop_height, config.crop_width, config.crop_frames)
    sampler = BucketBatchSampler([key] * len(dataset), config.batch_size, seed=config.seed, rank=rank,
                                 world_size=world, drop_last=True, infinite=True)
    if len(sampler) == 0:
        raise ValueError(f"{len(dataset)} clips make no full batch of {config.batch_size} for {world} "
                         "process(es); lower batch_size or add clips")

    # 4. Resume.
    generator = training_generator(config.seed, rank)
    global_step = 0
    if checkpoint is not None:
        state = resume_training_checkpoint(accelerator, checkpoint, {"vae": vae}, optimizer, lr_scheduler, ema,
                                           generator)
        global_step = state["global_step"]
        sampler.load_state_dict(state["sampler"])
    start_step = global_step
    sampler_state = sampler.state_dict()
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=TaggedBatchSampler(sampler), collate_fn=collate,
                                         num_workers=config.num_workers,
                                         multiprocessing_context=worker_context(config.num_workers))
    batches = iter(loader)

    # 5. The loop.
    metrics = MetricsLog(run_dir / "metrics.jsonl", accelerator.is_main_process)
    batches_log = MetricsLog(run_dir / f"batches_rank{rank}.jsonl", config.record_batches)
    progress = tqdm(total=config.max_steps, initial=global_step, disable=not accelerator.is_main_process,
                    desc="train vae", dynamic_ncols=True)
    while global_step < config.max_steps:
        start = time.perf_counter()
        parts: dict[str, list[torch.Tensor]] = {"loss": [], "l1": [], "mse": [], "kl": []}
        for micro in range(config.gradient_accumulation_steps):
            batch = next(batches)
            video = batch["pixel_values"].permute(0, 2, 1, 3, 4).to(accelerator.device)  # (B, 3, F, H, W)
            with accelerator.accumulate(model):
                out = model(video, generator)
                accelerator.backward(out["loss"])
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            for name in parts:
                parts[name].append(out[name].detach().float())
            sampler_state = {**batch["sampler_state"], "seed": sampler.seed}
            batches_log.write(dict(step=global_step + 1, micro=micro, rank=rank, index=batch["index"].tolist()))
        lr = lr_scheduler.get_last_lr()[0]
        lr_scheduler.step()
        if ema is not None:
            ema.step(params)
        global_step += 1
        means = {k: float(accelerator.reduce(torch.stack(v).mean().to(accelerator.device), reduction="mean"))
                 for k, v in parts.items()}
        pixels = config.batch_size * config.gradient_accumulation_steps * world * video[0].numel() // 3
        metrics.write(dict(step=global_step, **means, lr=lr, pixels=pixels,
                           bucket=f"{config.crop_height}x{config.crop_width}x{config.crop_frames}",
                           seconds=round(time.perf_counter() - start, 4), epoch=sampler_state["epoch"]))
        progress.update(1)
        progress.set_postfix(loss=f"{means['loss']:.4f}")
        if global_step % config.checkpointing_steps == 0 or global_step == config.max_steps:
            state = dict(global_step=global_step, stage=0, sampler=sampler_state, world_size=world)
            save_training_checkpoint(accelerator, run_dir, config, global_step, {"vae": vae}, optimizer,
                                     lr_scheduler, state, generator, ema)
    progress.close()

    # 6. Scaling factor, model folder, checksums.
    accelerator.wait_for_everyone()
    (run_dir / f"final_state_rank{rank}.json").write_text(
        json.dumps(dict(rank=rank, global_step=global_step, **parameter_checksum(vae)), indent=1))
    folder = model_folder(run_dir, global_step)
    fresh = global_step > start_step or not (run_dir / "model").exists()
    if accelerator.is_main_process and fresh and not folder.exists():
        if ema is not None:
            ema.copy_to(params)
        vae.eval()
        if config.calibrate_scaling_factor:
            std = latent_std(vae, dataset, config.calibration_samples, config.seed)
            vae.register_to_config(scaling_factor=1.0 / max(std, 1e-6))
            _print(accelerator, f"latent std {std:.4f}: scaling_factor set to {vae.config.scaling_factor:.4f}")
        vae.save_pretrained(folder / "vae", safe_serialization=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return run_dir
