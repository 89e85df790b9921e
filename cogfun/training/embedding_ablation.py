"""The positional-embedding resize ablation: which sincos resize generalises to a resolution never trained on?

CogVideoX-2B's 3D sincos table is built for one sample grid; at any other grid the kit offers four ways to
change it (``truncate``, ``extrapolate``, ``interpolate``, ``scaled``; docs/design.md 1.3 and
``cogfun.models.positional_embeddings``). CogVideoX-Fun trains one model at many resolutions and its
checkpoints expect ``interpolate`` (VideoX-Fun ``CogVideoXPatchEmbed`` with ``resize_3d_pos_embed``). This
module measures the question behind that choice on the toy world:

1. **Train** a small inpaint transformer (preset ``tiny`` for tests and CI, ``toy`` for full runs, with a
   frozen VAE and tiny T5 as in ``cogfun.training.trainer.build_components``) on toy clips at **one**
   resolution: the transformer's **sample grid** (``sample_height x sample_width`` latents, 64x64 px for
   ``tiny``, 64x96 px for ``toy``). At the sample grid every mode gives the very same table (each resize is
   the identity there; clips shorter than ``sample_frames`` keep the first latent frames in every mode), so
   the four modes **coincide during training**: one trained model per seed serves all four modes.
2. **Evaluate** the held-out v-prediction loss (held-out toy clips: other specs and the held-out photos;
   fixed timesteps, fixed noise, fixed masks from the training distribution, no text dropout) at the trained
   resolution and at an **unseen** one, switching ``transformer.set_pos_embed_mode(mode)`` between the four
   modes. At the trained resolution the four losses are equal (a check of the set-up); at the unseen one they
   differ only by how the table was resized, which is exactly the question: which resize generalises.

The training step is the kit's recipe (``cogfun.training.loss.training_loss``: ten random mask kinds, text
dropout, v-prediction MSE) in a light in-memory loop (clips rendered once, AdamW, grad-norm clip; no
accelerate, no run folder), deterministic for a seed. Seeds vary the transformer's initialisation, the batch
order and every training draw; the clips and the evaluation set are the same for every seed, so the spread
over seeds is the spread of training. Results are a tidy table (one row per seed, mode and resolution) and a
summary with the mean, the standard error over seeds, the ratio unseen / trained and the paired difference to
``interpolate`` per mode (paired per seed: every mode scores the same model on the same clips)::

    result = run_embedding_ablation(EmbeddingAblationConfig(steps=200), seeds=(0, 1, 2))
    print(summary_markdown(result.summary))
    fig = plot_ablation(result.summary)

A model that has already learned (``pretrained``: a model folder in the released layout, such as the default
toy model) skips step 1: its own transformer, VAE and T5 are scored, and each seed draws **another** held-out
evaluation set (clips, masks, noise: ``eval_seed + seed``), so the spread over seeds is the spread of the
evaluation draw; the comparison stays paired per seed (the four modes score the same clips)::

    result = run_embedding_ablation(EmbeddingAblationConfig(pretrained="cogfun/assets/toy-model", num_frames=17,
                                                            unseen_height=96, unseen_width=128, eval_clips=16))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..models.positional_embeddings import POS_EMBED_MODES
from .loss import (
    PromptCache,
    draw_training_masks,
    encode_clean_latents,
    training_inpaint_latents,
    training_loss,
)

__all__ = [
    "EmbeddingAblationConfig",
    "EmbeddingAblationResult",
    "EvaluationSet",
    "build_evaluation_set",
    "evaluation_loss",
    "plot_ablation",
    "render_clips",
    "run_embedding_ablation",
    "sample_resolution",
    "summarize",
    "summary_markdown",
    "train_at_sample_grid",
]


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingAblationConfig:
    """Every knob of the ablation, one line each. Defaults: a tiny run that takes seconds on a CPU.

    Args:
        transformer_preset: ``cogfun.models.presets`` preset (``"tiny"``, ``"toy"``); must use sincos
            embeddings (not RoPE). ``transformer_overrides``: config keys to change.
        vae_preset: preset of the frozen VAE (init seed 0) unless ``vae_path`` (a ``save_pretrained``
            folder, e.g. a VAE run's ``model/vae``) is given.
        text_encoder_width: width of the tiny T5 (None = the transformer's ``text_embed_dim``).
        num_frames: pixel frames per clip, 4k+1, at most the model's ``sample_frames`` (``interpolate``
            keeps the base table's latent frames).
        unseen_height, unseen_width: the resolution never trained on (pixels, multiples of 16). ``truncate``
            needs its tokens to fit the base table (``sample_frames`` latent frames x the sample grid).
        train_clips: training clips (rendered once at the sample resolution).
        eval_clips: held-out clips (other specs, held-out photos), rendered at both resolutions.
        steps: optimiser steps per seed; batch_size: clips per step.
        learning_rate, weight_decay, max_grad_norm: AdamW and the gradient-norm clip. A model trained from
            scratch needs a far higher rate than the reference's fine-tuning 2e-5.
        text_dropout: probability of the empty prompt in training (0.1, the reference).
        eval_timesteps: the fixed timesteps of the held-out loss (each clip is scored at every one).
        data_seed: seed of the training clips; eval_seed: seed of the held-out clips, masks and noise.
        modes: the ``pos_embed_mode`` values compared.
        num_threads: torch intra-op threads during the run (None = leave as is; 1 is fastest at toy sizes).
        device: where the models run (``"cpu"``, ``"cuda"``); random draws stay on CPU generators.
        pretrained: a trained model folder (released layout: ``transformer/``, ``vae/``, ``text_encoder/``,
            ``tokenizer/``, ``scheduler/``) to score instead of training one per seed; the presets, ``vae_path``
            and the training knobs are then unused, and each seed draws its own evaluation set.
    """

    transformer_preset: str = "tiny"
    transformer_overrides: dict[str, Any] = field(default_factory=dict)
    vae_preset: str = "tiny"
    vae_path: str | None = None
    text_encoder_width: int | None = None
    num_frames: int = 9
    unseen_height: int = 96
    unseen_width: int = 96
    train_clips: int = 16
    eval_clips: int = 4
    steps: int = 30
    batch_size: int = 2
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    text_dropout: float = 0.1
    eval_timesteps: tuple[int, ...] = (100, 300, 500, 700, 900)
    data_seed: int = 0
    eval_seed: int = 1000
    modes: tuple[str, ...] = POS_EMBED_MODES
    num_threads: int | None = None
    device: str = "cpu"
    pretrained: str | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 1 or (self.num_frames - 1) % 4:
            raise ValueError(
                f"num_frames must be 4k+1 (got {self.num_frames}); try {max(1, (self.num_frames - 1) // 4 * 4 + 1)}"
            )
        if self.unseen_height % 16 or self.unseen_width % 16 or min(self.unseen_height, self.unseen_width) < 16:
            raise ValueError(
                f"unseen resolution must be positive multiples of 16 (got {self.unseen_height}x{self.unseen_width}); "
                "try 96x96"
            )
        for key in ("train_clips", "eval_clips", "steps", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1 (got {getattr(self, key)})")
        if self.batch_size > self.train_clips:
            raise ValueError(f"batch_size {self.batch_size} > train_clips {self.train_clips}; lower batch_size")
        if not self.eval_timesteps or not all(0 <= t < 1000 for t in self.eval_timesteps):
            raise ValueError(f"eval_timesteps must be a non-empty list in [0, 1000) (got {list(self.eval_timesteps)})")
        unknown = [m for m in self.modes if m not in POS_EMBED_MODES]
        if unknown or not self.modes:
            raise ValueError(f"modes must be a non-empty subset of {POS_EMBED_MODES} (got {list(self.modes)})")
        if self.learning_rate <= 0 or self.max_grad_norm <= 0:
            raise ValueError("learning_rate and max_grad_norm must be > 0")
        if not 0 <= self.text_dropout <= 1:
            raise ValueError(f"text_dropout must be in [0, 1] (got {self.text_dropout})")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None (got {self.num_threads})")


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def sample_resolution(transformer, vae) -> tuple[int, int]:
    """The pixel ``(height, width)`` of the transformer's sample grid: where every resize mode is the identity.

    Args:
        transformer: a ``CogVideoXFunTransformer3DModel`` (``sample_height``/``sample_width`` in latents).
        vae: the VAE whose spatial compression maps latents to pixels (8 for CogVideoX).
    """
    spatial = 2 ** (len(vae.config.block_out_channels) - 1)
    return int(transformer.config.sample_height) * spatial, int(transformer.config.sample_width) * spatial


def render_clips(
    n: int, height: int, width: int, num_frames: int, seed: int, held_out: bool = False
) -> tuple[torch.Tensor, list[str]]:
    """Toy clips as one batch in the training layout.

    Args:
        n: clips.
        height, width, num_frames: their size.
        seed: seeds the specs and the render seeds (``cogfun.data.toy.ToyVideoDataset``).
        held_out: pans over ``HELD_OUT_PHOTOS`` only (never seen in training); else ``TRAIN_PHOTOS``.

    Returns:
        ``(pixel_values (n, F, 3, H, W) in [-1, 1], captions)``.
    """
    from ..data.toy import HELD_OUT_PHOTOS, TRAIN_PHOTOS, ToyVideoDataset

    dataset = ToyVideoDataset(n, height, width, num_frames, seed=seed,
                              photos=HELD_OUT_PHOTOS if held_out else TRAIN_PHOTOS)
    items = [dataset[i] for i in range(n)]
    return torch.stack([item["pixel_values"] for item in items]), [item["text"] for item in items]


# ---------------------------------------------------------------------------------------------
# Training at the sample grid
# ---------------------------------------------------------------------------------------------


def _frozen_components(config: EmbeddingAblationConfig):
    """VAE, tokenizer, T5 and the DDPM training scheduler, as a training run builds them (seed 0)."""
    from .config import TransformerTrainConfig
    from .trainer import build_components

    train_config = TransformerTrainConfig(
        pretrained=config.pretrained,
        transformer_preset=config.transformer_preset,
        transformer_overrides=dict(config.transformer_overrides),
        vae_preset=config.vae_preset,
        vae_path=config.vae_path,
        text_encoder_width=config.text_encoder_width,
    )
    with torch.random.fork_rng(devices=[]):  # presets seed torch's global generator
        return build_components(train_config, None, save=False)


def _new_transformer(config: EmbeddingAblationConfig, seed: int):
    from ..models.presets import build_transformer

    with torch.random.fork_rng(devices=[]):
        transformer = build_transformer(config.transformer_preset, meta=False, seed=seed,
                                        **config.transformer_overrides)
    _check_sincos(transformer, f"preset {config.transformer_preset!r}")
    return transformer


def _check_sincos(transformer, name: str) -> None:
    if transformer.config.use_rotary_positional_embeddings:
        raise ValueError(
            f"{name} uses 3D RoPE, which has no pos_embed_mode; use a sincos model or preset such as 'tiny' or "
            "'toy'"
        )


def train_at_sample_grid(
    config: EmbeddingAblationConfig,
    seed: int,
    components,
    pixel_values: torch.Tensor,
    texts: Sequence[str],
    progress: bool = False,
) -> tuple[Any, list[float]]:
    """Train a fresh transformer on clips at its sample grid with the kit's training loss.

    Args:
        config: the ablation config (steps, batch size, optimiser).
        seed: initialisation of the transformer, batch order and every training draw.
        components: frozen parts (``vae``, ``tokenizer``, ``text_encoder``, ``scheduler``) of
            ``cogfun.training.trainer.Components``.
        pixel_values: ``(N, F, 3, H, W)`` in [-1, 1] at the sample resolution.
        texts: the N captions.
        progress: show a tqdm bar.

    Returns:
        ``(transformer in eval mode, training loss per step)``.
    """
    from tqdm.auto import tqdm

    device = torch.device(config.device)
    transformer = _new_transformer(config, seed).to(device)
    height, width = sample_resolution(transformer, components.vae)
    if tuple(pixel_values.shape[-2:]) != (height, width):
        raise ValueError(
            f"training clips are {tuple(pixel_values.shape[-2:])} but the sample grid is {(height, width)} px; "
            "train at the sample grid so every pos_embed_mode coincides during training"
        )
    prompts = PromptCache(components.tokenizer, components.text_encoder, transformer.config.max_text_seq_length)
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(seed)  # the recipe's draws: dropout, masks, t, noise
    order = torch.Generator().manual_seed(seed + 7919)  # batch order, a separate stream
    n = pixel_values.shape[0]
    queue: list[int] = []
    losses = []
    transformer.train()
    for _ in tqdm(range(config.steps), desc=f"train seed {seed}", disable=not progress, leave=False):
        if len(queue) < config.batch_size:  # a new epoch: a fresh permutation
            queue += torch.randperm(n, generator=order).tolist()
        index, queue = queue[: config.batch_size], queue[config.batch_size :]
        batch = dict(pixel_values=pixel_values[index], text=[texts[i] for i in index])
        out = training_loss(batch, transformer, components.vae, components.scheduler, prompts, generator,
                            text_dropout=config.text_dropout, device=device)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), config.max_grad_norm)
        optimizer.step()
        losses.append(float(out.loss.detach()))
        if not math.isfinite(losses[-1]):
            raise ValueError(f"training loss is {losses[-1]} at step {len(losses)}; lower learning_rate")
    return transformer.eval(), losses


# ---------------------------------------------------------------------------------------------
# Held-out loss
# ---------------------------------------------------------------------------------------------


@dataclass
class EvaluationSet:
    """Fixed inputs of the held-out loss at one resolution (the same for every mode and seed).

    Attributes:
        height, width: pixel resolution.
        latents: clean latents ``(N, F_lat, C, h, w)`` (posterior mode).
        inpaint: inpaint latents ``(N, F_lat, 1 + C, h, w)`` of masks from the training distribution.
        embeds: caption embeddings ``(N, L, D)`` (no dropout).
        timesteps: ``(T,)`` fixed timesteps.
        noisy: ``(T, N, F_lat, C, h, w)`` the noised latents at each timestep (fixed noise).
        target: ``(T, N, F_lat, C, h, w)`` the v targets.
    """

    height: int
    width: int
    latents: torch.Tensor
    inpaint: torch.Tensor
    embeds: torch.Tensor
    timesteps: torch.Tensor
    noisy: torch.Tensor
    target: torch.Tensor


@torch.no_grad()
def build_evaluation_set(
    components, pixel_values: torch.Tensor, texts: Sequence[str], timesteps: Sequence[int], seed: int,
    max_text_seq_length: int,
) -> EvaluationSet:
    """Encode held-out clips once and fix their masks, timesteps and noise.

    Args:
        components: frozen parts (``vae``, ``tokenizer``, ``text_encoder``, ``scheduler``).
        pixel_values: ``(N, F, 3, H, W)`` in [-1, 1].
        texts: the N captions.
        timesteps: fixed timesteps in ``[0, 1000)``.
        seed: seeds the masks (training kinds and probabilities), the zeroing of fully masked samples, and
            the noise; the same seed at two resolutions draws the same mask kinds.
        max_text_seq_length: the transformer's text length.
    """
    from einops import rearrange

    vae, scheduler = components.vae, components.scheduler
    generator = torch.Generator().manual_seed(seed)
    n, f, _, h, w = pixel_values.shape
    video = rearrange(pixel_values, "b f c h w -> b c f h w").to(vae.device)  # (N, 3, F, H, W)
    masks, _ = draw_training_masks(n, f, h, w, generator)  # (N, 1, F, H, W)
    latents = encode_clean_latents(vae, video, generator, sampling="mode")  # (N, F_lat, C, h, w)
    inpaint, _ = training_inpaint_latents(vae, video, masks.to(video.device), tuple(latents.shape), generator)
    prompts = PromptCache(components.tokenizer, components.text_encoder, max_text_seq_length)
    embeds = prompts(list(texts))  # (N, L, D)
    ts = torch.tensor(list(timesteps), dtype=torch.long)  # (T,)
    noisy, target = [], []
    for t in ts:
        noise = torch.randn(latents.shape, generator=generator).to(latents)  # (N, F_lat, C, h, w)
        t_batch = t.repeat(n).to(latents.device)  # (N,)
        noisy.append(scheduler.add_noise(latents, noise, t_batch))
        target.append(scheduler.get_velocity(latents, noise, t_batch))
    return EvaluationSet(h, w, latents, inpaint.to(latents), embeds.to(latents), ts, torch.stack(noisy),
                         torch.stack(target))


@torch.no_grad()
def evaluation_loss(transformer, evaluation: EvaluationSet, mode: str | None = None) -> float:
    """Mean v-prediction MSE over the clips and fixed timesteps of an evaluation set.

    Args:
        transformer: the trained inpaint transformer (set to eval mode here).
        evaluation: from :func:`build_evaluation_set`.
        mode: ``pos_embed_mode`` to evaluate with (restored afterwards); None = the model's own.

    Returns:
        the loss, averaged over timesteps and clips (each timestep's MSE is a mean over every latent value).
    """
    transformer.eval()
    previous = transformer.config.pos_embed_mode
    if mode is not None:
        transformer.set_pos_embed_mode(mode)
    try:
        device = next(transformer.parameters()).device
        n = evaluation.latents.shape[0]
        losses = []
        for i, t in enumerate(evaluation.timesteps):
            pred = transformer(evaluation.noisy[i].to(device), evaluation.embeds.to(device),
                               t.repeat(n).to(device), inpaint_latents=evaluation.inpaint.to(device),
                               return_dict=False)[0]  # (N, F_lat, C, h, w)
            losses.append(torch.mean((pred.float() - evaluation.target[i].to(device).float()) ** 2))
        return float(torch.stack(losses).mean())
    finally:
        transformer.set_pos_embed_mode(previous)


# ---------------------------------------------------------------------------------------------
# The ablation
# ---------------------------------------------------------------------------------------------


@dataclass
class EmbeddingAblationResult:
    """What :func:`run_embedding_ablation` measured.

    Attributes:
        table: one dict per (seed, mode, resolution): ``seed``, ``mode``, ``resolution`` (``"64x64"``),
            ``height``, ``width``, ``split`` (``"trained"`` or ``"unseen"``), ``loss``.
        summary: :func:`summarize` of the table.
        train_losses: ``{seed: training loss per step}`` (empty for a ``pretrained`` model).
        trained_size, unseen_size: ``(height, width)`` in pixels.
        config: the config as a plain dict.
    """

    table: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    train_losses: dict[int, list[float]]
    trained_size: tuple[int, int]
    unseen_size: tuple[int, int]
    config: dict[str, Any]


def run_embedding_ablation(
    config: EmbeddingAblationConfig | None = None, seeds: Sequence[int] = (0, 1, 2), progress: bool = True
) -> EmbeddingAblationResult:
    """Train one model per seed at the sample grid; score it under every mode at the trained and unseen sizes.

    Args:
        config: the ablation (default ``EmbeddingAblationConfig()``, tiny).
        seeds: one training run per seed (>= 3 for a standard error worth reading); with ``config.pretrained``,
            one evaluation draw per seed.
        progress: tqdm bars over seeds and training steps.

    Returns:
        an :class:`EmbeddingAblationResult` (tidy table, summary, training curves).
    """
    from tqdm.auto import tqdm

    from .trainer import torch_threads

    config = config or EmbeddingAblationConfig()
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed, e.g. (0, 1, 2)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (got {list(seeds)})")
    with torch_threads(config.num_threads):
        components = _frozen_components(config)
        components.vae.to(config.device)
        components.text_encoder.to(config.device)
        if config.pretrained:
            probe = components.transformer.to(config.device).eval()
            _check_sincos(probe, f"the model in {config.pretrained}")
        else:
            probe = _new_transformer(config, seeds[0])
        trained = sample_resolution(probe, components.vae)
        unseen = (config.unseen_height, config.unseen_width)
        if unseen == trained:
            raise ValueError(f"the unseen resolution {unseen} is the trained one; pick another, e.g. 96x96")
        if config.num_frames > probe.config.sample_frames:
            raise ValueError(
                f"num_frames {config.num_frames} > the model's sample_frames {probe.config.sample_frames}: "
                f"interpolate keeps only the base table's latent frames; use at most {probe.config.sample_frames}"
            )
        max_text = probe.config.max_text_seq_length

        def evaluation_sets(eval_seed: int) -> dict[str, EvaluationSet]:
            """Held-out clips at both resolutions (same specs and seeds), encoded once, masks and noise fixed."""
            sets = {}
            for split, (h, w) in (("trained", trained), ("unseen", unseen)):
                pixels, texts = render_clips(config.eval_clips, h, w, config.num_frames, eval_seed, held_out=True)
                sets[split] = build_evaluation_set(components, pixels, texts, config.eval_timesteps, eval_seed,
                                                   max_text)
            return sets

        def score(seed: int, transformer, evaluations: dict[str, EvaluationSet]) -> list[dict[str, Any]]:
            return [dict(seed=int(seed), mode=mode, resolution=f"{e.height}x{e.width}", height=e.height,
                         width=e.width, split=split, loss=evaluation_loss(transformer, e, mode))
                    for mode in config.modes for split, e in evaluations.items()]

        table, curves = [], {}
        if config.pretrained:
            # A model that has learned: one evaluation draw per seed, the same model under every mode.
            for seed in tqdm(list(seeds), desc="evaluation draws", disable=not progress):
                table += score(seed, probe, evaluation_sets(config.eval_seed + int(seed)))
        else:
            del probe
            # 1. Data: training clips at the sample grid; one evaluation set shared by every seed.
            train_pixels, train_texts = render_clips(config.train_clips, *trained, config.num_frames,
                                                     config.data_seed)
            evaluations = evaluation_sets(config.eval_seed)
            # 2. One model per seed (the modes coincide in training), scored under every mode.
            for seed in tqdm(list(seeds), desc="seeds", disable=not progress):
                transformer, curves[int(seed)] = train_at_sample_grid(
                    config, int(seed), components, train_pixels, train_texts, progress=progress
                )
                table += score(seed, transformer, evaluations)
    return EmbeddingAblationResult(table, summarize(table), curves, trained, unseen, asdict(config))


# ---------------------------------------------------------------------------------------------
# Summary and figure
# ---------------------------------------------------------------------------------------------


def _mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n); 0 for one value)."""
    x = np.asarray(values, dtype=np.float64)
    sem = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
    return float(x.mean()), sem


def summarize(table: Sequence[dict[str, Any]], reference_mode: str = "interpolate") -> list[dict[str, Any]]:
    """Mean and standard error over seeds per mode and resolution, the ratio unseen / trained, and the paired
    difference to a reference mode.

    Both derived numbers are paired per seed, which is what separates the modes: every mode scores the same
    trained model on the same clips, so the seed-to-seed spread of the plain losses (different models) is much
    larger than the spread of a mode's difference to another.

    - ratio: the unseen loss over the same model's trained loss under the same mode (the trained losses of the
      four modes are equal), averaged over seeds;
    - delta: the loss minus ``reference_mode``'s loss for the same seed and resolution, averaged over seeds
      (0 at the trained resolution and for the reference itself).

    Args:
        table: :attr:`EmbeddingAblationResult.table` rows.
        reference_mode: the mode the differences are taken to (default ``"interpolate"``, what CogVideoX-Fun's
            checkpoints use); NaN when it is not in the table.

    Returns:
        one dict per (mode, resolution) in table order: ``mode``, ``resolution``, ``split``, ``n`` (seeds),
        ``mean``, ``sem``, ``ratio_mean``, ``ratio_sem`` (1 and 0 for the trained resolution), ``delta_mean``,
        ``delta_sem``, ``reference_mode``.
    """
    trained = {(r["seed"], r["mode"]): r["loss"] for r in table if r["split"] == "trained"}
    reference = {(r["seed"], r["resolution"]): r["loss"] for r in table if r["mode"] == reference_mode}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in table:
        groups.setdefault((row["mode"], row["resolution"]), []).append(row)
    nan = (float("nan"), float("nan"))
    summary = []
    for (mode, resolution), rows in groups.items():
        mean, sem = _mean_sem([r["loss"] for r in rows])
        ratios = [r["loss"] / trained[(r["seed"], mode)] for r in rows if (r["seed"], mode) in trained]
        deltas = [r["loss"] - reference[(r["seed"], resolution)] for r in rows if (r["seed"], resolution) in reference]
        ratio_mean, ratio_sem = _mean_sem(ratios) if ratios else nan
        delta_mean, delta_sem = _mean_sem(deltas) if deltas else nan
        summary.append(dict(mode=mode, resolution=resolution, split=rows[0]["split"], n=len(rows), mean=mean,
                            sem=sem, ratio_mean=ratio_mean, ratio_sem=ratio_sem, delta_mean=delta_mean,
                            delta_sem=delta_sem, reference_mode=reference_mode))
    return summary


def _cell(row: dict[str, Any] | None, mean: str, sem: str, digits: int = 4, sign: str = "") -> str:
    return f"{row[mean]:{sign}.{digits}f} ± {row[sem]:.{digits}f}" if row else "-"


def summary_markdown(summary: Sequence[dict[str, Any]]) -> str:
    """The summary as a markdown table, one row per mode: trained and unseen loss, the ratio unseen / trained and
    the paired difference to the reference mode at the unseen resolution (each mean ± standard error).

    Args:
        summary: from :func:`summarize`.
    """
    modes = list(dict.fromkeys(r["mode"] for r in summary))
    by = {(r["mode"], r["split"]): r for r in summary}
    trained = next(r["resolution"] for r in summary if r["split"] == "trained")
    unseen = next((r["resolution"] for r in summary if r["split"] == "unseen"), "-")
    n = max(r["n"] for r in summary)
    reference = summary[0].get("reference_mode", "interpolate")
    lines = [f"| mode | loss at {trained} (trained) | loss at {unseen} (unseen) | unseen / trained | "
             f"unseen − {reference} (paired) |", "|---|---:|---:|---:|---:|"]
    for mode in modes:
        t, u = by.get((mode, "trained")), by.get((mode, "unseen"))
        lines.append(f"| {mode} | {_cell(t, 'mean', 'sem')} | {_cell(u, 'mean', 'sem')} | "
                     f"{_cell(u, 'ratio_mean', 'ratio_sem')} | {_cell(u, 'delta_mean', 'delta_sem', 5, '+')} |")
    lines.append(f"\nmean ± standard error over {n} seeds")
    return "\n".join(lines)


def plot_ablation(summary: Sequence[dict[str, Any]], title: str | None = None, size=(11.0, 3.2)):
    """Three panels: held-out loss per mode at the trained and unseen resolutions, the ratio unseen / trained, and
    the paired difference to the reference mode at the unseen resolution.

    Error bars are standard errors over seeds. Built without pyplot (as ``cogfun.plots``).

    Args:
        summary: from :func:`summarize`.
        title: figure title.
        size: figure size in inches.

    Returns:
        the ``Figure``; the ``BarContainer`` s of ``fig.axes[0].containers`` are the splits' bars (with
        ``.errorbar``), those of ``fig.axes[1]`` the ratios and of ``fig.axes[2]`` the differences.
    """
    from matplotlib.figure import Figure

    modes = list(dict.fromkeys(r["mode"] for r in summary))
    splits = list(dict.fromkeys(r["split"] for r in summary))
    by = {(r["mode"], r["split"]): r for r in summary}
    reference = summary[0].get("reference_mode", "interpolate")
    x = np.arange(len(modes))
    fig = Figure(figsize=size, layout="constrained")
    loss_ax, ratio_ax, delta_ax = fig.subplots(1, 3, width_ratios=(3, 2, 2))
    width = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        rows = [by[(m, split)] for m in modes]
        loss_ax.bar(x + (i - (len(splits) - 1) / 2) * width, [r["mean"] for r in rows], width,
                    yerr=[r["sem"] for r in rows], capsize=3, label=f"{split} {rows[0]['resolution']}")
    loss_ax.set_ylabel("held-out v-prediction MSE")
    loss_ax.legend(fontsize=8)
    if "unseen" in splits:
        rows = [by[(m, "unseen")] for m in modes]
        ratio_ax.bar(x, [r["ratio_mean"] for r in rows], 0.6, yerr=[r["ratio_sem"] for r in rows], capsize=3,
                     color="tab:orange")
        ratio_ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        low = min(r["ratio_mean"] - r["ratio_sem"] for r in rows)
        ratio_ax.set_ylim(min(0.95, low - 0.02), None)
        delta_ax.bar(x, [r["delta_mean"] for r in rows], 0.6, yerr=[r["delta_sem"] for r in rows], capsize=3,
                     color="tab:green")
        delta_ax.axhline(0.0, color="grey", linewidth=1)
    ratio_ax.set_ylabel("unseen / trained")
    delta_ax.set_ylabel(f"unseen loss − {reference} (paired)")
    for ax in (loss_ax, ratio_ax, delta_ax):
        ax.set_xticks(x, modes, fontsize=8, rotation=20)
        ax.grid(axis="y", alpha=0.3)
    n = max(r["n"] for r in summary)
    fig.suptitle(title or f"positional-embedding resize at an unseen resolution ({n} seeds, ± s.e.)", fontsize=10)
    return fig
