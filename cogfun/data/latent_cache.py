"""Latent cache: VAE latents and T5 prompt embeddings of a dataset, in safetensors shards by bucket.

The reference (VideoX-Fun ``scripts/cogvideox_fun/train.py``) has **no such cache**: its training
loop runs the VAE encoder and T5 on every batch. ``cogfun cache`` runs both once, so a training
loop on the cache skips the two encoders (for a 2B model, T5-XXL alone is 4.7B parameters).

Which clips and pixels: every entry of a metadata JSON (reference format, e.g. from
``cogfun prepare``) is assigned to a bucket of ``plan_buckets(budget, base_size, rule)`` (nearest
aspect ratio, then area; frames by the budget rule, lowered to the largest 4k+1 the clip holds)
and read exactly as :class:`cogfun.training.dataset.BucketVideoDataset` reads it with
``random_start=False``: its first frames (with ``frame_stride``), resized to cover the bucket and
centre-cropped. The cache fixes that window; training from pixels draws a new one every epoch.

What is stored per clip:
- ``latents`` ``(F_lat, C, h, w)``: the VAE posterior's **mode** (its mean) times
  ``vae.config.scaling_factor``, the layout the transformer takes. The mode is what the pipeline
  and the reference use for the masked-video latents, and what training with
  ``latent_sampling="mode"`` uses for the clean latents.
- ``latents_std`` (with ``store_std=True``): the posterior's standard deviation, also scaled.
  The reference trains on ``latent_dist.sample()``, a fresh draw every step; one stored sample
  would freeze that noise, so the cache keeps the two moments and
  ``LatentCacheDataset(sample=True)`` draws ``latents + latents_std * randn`` on every read.
- ``prompt_embeds`` ``(L, D)``: T5 output for the text, padded to the transformer's
  ``max_text_seq_length`` (226 for real models), as the pipeline encodes prompts.
- ``OUT/empty_prompt.safetensors``: the embedding of ``""`` for text dropout.

Inpaint conditionings (``inpaint_masks=K``): the masked-video latents of a training step need the
VAE on the masked pixels, and the reference draws a new random mask every step. With ``K > 0`` the
cache draws ``K`` masks per clip once (seeded by ``(seed, index)``, kinds from
``mask_probabilities`` over ``cogfun.training.random_masks.MASK_KINDS``) and stores their inpaint
latents exactly as a training step computes them (``cogfun.training.loss.training_inpaint_latents``:
mask channel ``resize_mask(1 - mask) * sf``, masked-video latents ``.mode() * sf``). A loop on the
cache then picks one of the ``K`` per step, or trains text-to-video with zero inpaint latents
(``cogfun.training.loss.cached_training_loss``): ``K`` fixed masks per clip instead of a fresh one,
in exchange for a training step without any VAE (about 4x faster on a CPU at toy sizes).

Object boxes (``object_box_masks=True``, toy data): one more mask per clip, a box that hides the
object's whole track in every frame (``cogfun.data.toy.object_track_box``, from the spec and render
seed that ``write_toy_dataset`` writes into the metadata), kind ``"object_box"``; clips without a
shape spec get one more random mask instead. It trains the case of the benchmark's inpaint subset
(object hidden, the rest given, only the caption says what goes in the hole), which random masks
almost never give (experiments/toy-model/DIAGNOSIS.md, section 11).

Layout::

    OUT/options.json                          the options (a resume must match them)
    OUT/empty_prompt.safetensors              prompt_embeds (1, L, D) of ""
    OUT/<h>x<w>x<f>/shard-00000.safetensors   latents (N, F_lat, C, h, w), prompt_embeds
                                              (N, L, D)[, latents_std][, inpaint
                                              (N, K, F_lat, 1 + C, h, w), inpaint_full (N, K)]
    OUT/<h>x<w>x<f>/shard-00000.json          {"texts", "file_paths", "indices"[, "mask_kinds"]}: the index,
                                              written last, so a shard with it is complete
    OUT/cache.json                            buckets, shard counts, model facts (at the end)

Resumable: shards are written to temporary names and renamed; a re-run skips every shard whose
index file exists.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..models.cpu_batching import run_as_pair

__all__ = [
    "Encoders",
    "LatentCacheDataset",
    "add_cache_parser",
    "cache_latents",
    "encode_inpaint_conditionings",
    "encode_prompts",
    "encode_video_latents",
    "load_encoders",
]

OPTIONS_FILE = "options.json"
MANIFEST_FILE = "cache.json"
EMPTY_PROMPT_FILE = "empty_prompt.safetensors"
STORAGE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# ================================================================================================
#                                           Encoders
# ================================================================================================


@dataclass
class Encoders:
    """What the cache needs of a model: tokenizer, T5 encoder, VAE and the text length.

    Attributes:
        tokenizer: the T5 tokenizer.
        text_encoder: ``T5EncoderModel`` (eval mode).
        vae: ``AutoencoderKLCogVideoX`` (eval mode).
        max_text_length: prompt length L (the transformer's ``max_text_seq_length``).
        name: the model argument, for the manifest.
    """

    tokenizer: Any
    text_encoder: Any
    vae: Any
    max_text_length: int
    name: str


def load_encoders(
    model: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> Encoders:
    """Tokenizer, text encoder and VAE of a pipeline folder or of a component preset.

    A folder in the released layout (``model_index.json``, ``tokenizer/``, ``text_encoder/``,
    ``vae/``, ``transformer/config.json``) loads only those three components - not the
    transformer, which the cache does not need. ``"tiny"`` / ``"toy"`` build random weights with
    ``cogfun.pipelines.components.build_components(preset, seed)`` (tests, the toy world).

    Args:
        model: a local folder or ``"tiny"`` / ``"toy"``.
        device: where the encoders run.
        dtype: weights' dtype (float32 on CPU; bfloat16 is usual on GPUs for real models).
        seed: seed of a preset's random weights.
    """
    from ..pipelines.components import COMPONENT_PRESETS, build_components

    name = os.fspath(model)
    if name in COMPONENT_PRESETS:
        parts = build_components(name, seed=seed)
        tokenizer, text_encoder, vae = parts["tokenizer"], parts["text_encoder"], parts["vae"]
        max_length = int(parts["transformer"].config.max_text_seq_length)
    else:
        import transformers
        from diffusers import AutoencoderKLCogVideoX

        root = Path(name)
        index_path = root / "model_index.json"
        if not index_path.is_file():
            raise ValueError(
                f"model {name!r} is neither a preset ({', '.join(COMPONENT_PRESETS)}) nor a "
                "local pipeline folder with model_index.json; nothing is downloaded"
            )
        index = json.loads(index_path.read_text())
        tokenizer_class = getattr(transformers, index.get("tokenizer", [None, "AutoTokenizer"])[1])
        encoder_class = getattr(transformers, index.get("text_encoder",
                                                        [None, "T5EncoderModel"])[1])
        tokenizer = tokenizer_class.from_pretrained(root / "tokenizer")
        text_encoder = encoder_class.from_pretrained(root / "text_encoder", torch_dtype=dtype)
        vae = AutoencoderKLCogVideoX.from_pretrained(root, subfolder="vae", torch_dtype=dtype)
        config_path = root / "transformer" / "config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        max_length = int(config.get("max_text_seq_length", 226))
    if vae.dtype != dtype:  # presets are built in float32
        text_encoder, vae = text_encoder.to(dtype=dtype), vae.to(dtype=dtype)
    text_encoder = text_encoder.to(device).eval()
    vae = vae.to(device).eval()
    return Encoders(tokenizer, text_encoder, vae, max_length, name)


@torch.no_grad()
def encode_prompts(encoders: Encoders, texts: Sequence[str]) -> torch.Tensor:
    """T5 embeddings of prompts, as the pipeline's ``encode_prompt`` computes them.

    Args:
        encoders: from :func:`load_encoders`.
        texts: N prompts.

    Returns:
        float32 ``(N, L, D)`` on the CPU, L = ``encoders.max_text_length``.
    """
    ids = encoders.tokenizer(
        list(texts), padding="max_length", max_length=encoders.max_text_length, truncation=True,
        add_special_tokens=True, return_tensors="pt",
    ).input_ids  # (N, L)
    device = next(encoders.text_encoder.parameters()).device
    return encoders.text_encoder(ids.to(device))[0].float().cpu()  # (N, L, D)


@torch.no_grad()
def encode_video_latents(encoders: Encoders, pixel_values: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled posterior mode and standard deviation of one clip.

    Args:
        encoders: from :func:`load_encoders`.
        pixel_values: ``(F, C, H, W)`` in [-1, 1], F = 4k+1, H and W multiples of 8.

    Returns:
        ``(mode, std)``, float32 ``(F_lat, C_lat, H / 8, W / 8)`` each on the CPU, both times
        ``vae.config.scaling_factor``.
    """
    vae = encoders.vae
    x = pixel_values.permute(1, 0, 2, 3)[None].to(vae.device, vae.dtype)  # (1, C, F, H, W)

    def moments(v: torch.Tensor) -> torch.Tensor:  # (b, 2C, F_lat, h, w): mode and std of the posterior
        dist = vae.encode(v).latent_dist
        return torch.cat([dist.mode(), dist.std], dim=1)

    mode, std = run_as_pair(moments, x).chunk(2, dim=1)  # a CPU batch of one runs as a pair (fast conv3d path)
    scale = float(vae.config.scaling_factor)
    mode = mode[0].permute(1, 0, 2, 3) * scale  # (F_lat, C, h, w)
    std = std[0].permute(1, 0, 2, 3) * scale
    return mode.float().cpu(), std.float().cpu()


def draw_cached_masks(
    count: int, num_frames: int, height: int, width: int, probabilities: Sequence[float], seed: tuple[int, int],
    object_box: torch.Tensor | None = None, object_box_masks: bool = False,
) -> tuple[torch.Tensor, list[str], torch.Generator]:
    """The pixel masks the cache encodes for one clip ``(K, 1, F, H, W)`` (1 = regenerate), their kinds, and the
    generator, which goes on to draw the noise augmentation. Seeded by ``(cache seed, clip index)`` alone, so the
    masks behind a cache can be drawn again without it.

    ``count`` random masks; with ``object_box_masks`` one more: the clip's ``object_box`` (``(1, 1, F, H, W)``
    from :func:`object_box_mask`, kind ``"object_box"``), or, for a clip without one (None), one more random
    mask, so every clip of a shard has the same K.
    """
    import numpy as np

    from ..training.loss import draw_training_masks

    if object_box is not None and not object_box_masks:
        raise ValueError("an object_box was given but object_box_masks is off; pass object_box_masks=True")
    extra_random = int(object_box_masks and object_box is None)
    state = np.random.SeedSequence(list(seed)).generate_state(2)
    generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
    masks, kinds = draw_training_masks(count + extra_random, num_frames, height, width, generator, probabilities)
    if object_box is not None:
        if object_box.shape != (1, 1, num_frames, height, width):
            raise ValueError(f"object_box must be (1, 1, {num_frames}, {height}, {width}) (got "
                             f"{tuple(object_box.shape)}); make it with object_box_mask for the clip's bucket")
        masks, kinds = torch.cat([masks, object_box.to(masks)]), [*kinds, "object_box"]
    return masks, kinds, generator


@torch.no_grad()
def encode_inpaint_conditionings(
    encoders: Encoders,
    pixel_values: torch.Tensor,
    latent_shape: tuple[int, int, int, int],
    count: int,
    probabilities: Sequence[float],
    seed: tuple[int, int],
    object_box: torch.Tensor | None = None,
    object_box_masks: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The cached training masks of one clip (:func:`draw_cached_masks`) and their inpaint latents, as a training
    step makes them.

    Args:
        encoders: from :func:`load_encoders`.
        pixel_values: ``(F, C, H, W)`` in [-1, 1].
        latent_shape: ``(F_lat, C, h, w)`` of the clip's latents.
        count: K masks.
        probabilities: of ``MASK_KINDS``.
        seed: ``(cache seed, clip index)``: the masks depend on nothing else.
        object_box, object_box_masks: the object-box mask, see :func:`draw_cached_masks`.

    Returns:
        ``(inpaint (K, F_lat, 1 + C, h, w), full (K,) bool, kinds)``; ``full`` marks masks that
        regenerate everything (a training loop zeroes those with ``t2v_zero_prob``, as the reference).
    """
    from ..training.loss import training_inpaint_latents

    f, _, h, w = pixel_values.shape
    masks, kinds, generator = draw_cached_masks(count, f, h, w, probabilities, seed, object_box,
                                                object_box_masks)  # (K, 1, F, H, W)
    total = len(masks)
    video = pixel_values.permute(1, 0, 2, 3)[None].expand(total, -1, -1, -1, -1)  # (K, 3, F, H, W)
    vae = encoders.vae
    inpaint, _ = training_inpaint_latents(
        vae, video.to(vae.device, vae.dtype), masks.to(vae.device, vae.dtype), (total, *latent_shape), generator,
        t2v_zero_prob=0.0,
    )  # (K, F_lat, 1 + C, h, w)
    full = (masks >= 0.5).flatten(1).all(dim=1)  # (K,)
    return inpaint.float().cpu(), full, kinds


# ================================================================================================
#                                         Writing the cache
# ================================================================================================


def object_box_mask(entry: dict[str, Any], bucket: tuple[int, int, int], frame_stride: int = 1) -> torch.Tensor | None:
    """The ``object_box`` mask ``(1, 1, F, H, W)`` (1 = regenerate) of one metadata entry in its bucket, or None.

    None for an entry without a toy shape spec and render seed (``write_toy_dataset`` writes both), e.g. a
    pan or a real video. The box is :func:`cogfun.data.toy.object_track_box` over the frames the cache
    reads (the first window: frames ``0, stride, ...``), in every one of them.
    """
    from .toy import ToyClipSpec, object_track_box

    spec, seed = entry.get("spec"), entry.get("seed")
    if not isinstance(spec, dict) or spec.get("kind") != "shape" or seed is None:
        return None
    height, width, num_frames = bucket
    if (entry.get("height"), entry.get("width")) != (height, width):
        raise ValueError(
            f"object_box masks need clips cached at their own size, but {entry.get('file_path')} is "
            f"{entry.get('height')}x{entry.get('width')} and lands in the {height}x{width} bucket; plan buckets "
            "that match the clip sizes (--base-size, --num-ratios) or leave --object-box-masks off")
    clip_frames = int(entry.get("num_frames", num_frames))
    frames = slice(0, (num_frames - 1) * frame_stride + 1, frame_stride)
    if (num_frames - 1) * frame_stride + 1 > clip_frames:
        raise ValueError(f"{entry.get('file_path')} has {clip_frames} frames, fewer than the {num_frames} "
                         f"(stride {frame_stride}) its bucket reads")
    top, bottom, left, right = object_track_box(
        ToyClipSpec.from_dict(spec), height, width, clip_frames, int(seed), frames=frames)
    mask = torch.zeros(1, 1, num_frames, height, width)
    mask[..., top:bottom, left:right] = 1.0
    return mask


def _bucket_dir(key: tuple[int, int, int]) -> str:
    return f"{key[0]}x{key[1]}x{key[2]}"


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _atomic_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def cache_latents(
    metadata: str | os.PathLike,
    out: str | os.PathLike,
    model: str | os.PathLike = "tiny",
    budget: int = 13312,
    rule: str = "article",
    base_size: int | Sequence[int] | None = None,
    max_frames: int = 49,
    frame_stride: int = 1,
    shard_size: int = 64,
    store_std: bool = False,
    dtype: str = "float32",
    device: str | None = None,
    model_dtype: str = "float32",
    vae_tiling: bool = False,
    seed: int = 0,
    progress: bool = True,
    inpaint_masks: int = 0,
    mask_probabilities: Sequence[float] | None = None,
    num_ratios: int | None = None,
    min_ratio: float | None = None,
    max_ratio: float | None = None,
    object_box_masks: bool = False,
) -> dict[str, Any]:
    """Encode every clip and caption of ``metadata`` into safetensors shards under ``out``.

    Args:
        metadata: metadata JSON in the reference format (paths relative to its folder).
        out: cache folder (created; a re-run with the same options resumes it).
        model: pipeline folder or preset ``"tiny"`` / ``"toy"`` (random weights, seeded).
        budget: token budget of the bucket plan (13312 = 512x512x49).
        rule: frame rule of ``frames_for_budget``: ``"article"``, ``"reference"``, ``"tokens"``.
        base_size: square side(s) the aspect-ratio buckets are built around (default: the
            budget's side, 512 for 13312).
        max_frames: frame cap, 4k+1 (49).
        frame_stride: pixel frames between the frames read (1).
        shard_size: clips per shard (64).
        store_std: also store the posterior standard deviation (``latents_std``).
        dtype: storage dtype, ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``.
        device: where the encoders run (default: ``"cuda"`` when available, else ``"cpu"``).
        model_dtype: the encoders' dtype (``"float32"``; ``"bfloat16"`` for real models on GPU).
        vae_tiling: encode in tiles (``vae.enable_tiling()``; for large frames; the latents
            then differ slightly from an untiled encode).
        seed: seed of a preset's random weights, and of the cached inpaint masks.
        progress: show a tqdm bar over the clips.
        inpaint_masks: K random masks per clip whose inpaint latents are stored (0 = none).
        mask_probabilities: probabilities of ``MASK_KINDS`` for those masks (default the
            reference's).
        num_ratios, min_ratio, max_ratio: aspect-ratio buckets of ``plan_buckets`` (its defaults
            when None).
        object_box_masks: store one more mask per clip, the toy object's track box
            (:func:`object_box_mask`; one more random mask where there is none); needs
            ``inpaint_masks >= 1``.

    Returns:
        ``{"clips", "buckets": {"HxWxF": n}, "shards_written", "shards_skipped", "seconds",
        "out"}``.
    """
    from tqdm.auto import tqdm

    from ..buckets import plan_buckets
    from ..training.dataset import BucketVideoDataset

    if dtype not in STORAGE_DTYPES or model_dtype not in STORAGE_DTYPES:
        raise ValueError(
            f"dtype and model_dtype must be one of {sorted(STORAGE_DTYPES)} "
            f"(got {dtype!r}, {model_dtype!r})"
        )
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1 (got {shard_size})")
    started = time.perf_counter()
    metadata, out = Path(metadata).resolve(), Path(out).resolve()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    # 1. Options: a resume must use the same ones (they decide which clip lands in which shard).
    bases = None if base_size is None else (
        [int(base_size)] if isinstance(base_size, int) else [int(b) for b in base_size])
    options = dict(metadata=str(metadata), model=os.fspath(model), budget=budget, rule=rule,
                   base_size=bases, max_frames=max_frames, frame_stride=frame_stride,
                   shard_size=shard_size, store_std=store_std, dtype=dtype,
                   model_dtype=model_dtype, vae_tiling=vae_tiling, seed=seed)
    if inpaint_masks < 0:
        raise ValueError(f"inpaint_masks must be >= 0 (got {inpaint_masks}); 0 stores no inpaint conditionings")
    if inpaint_masks:
        from ..training.random_masks import MASK_KINDS, MASK_PROBABILITIES

        probabilities = list(MASK_PROBABILITIES if mask_probabilities is None else mask_probabilities)
        if len(probabilities) != len(MASK_KINDS) or min(probabilities) < 0 or abs(sum(probabilities) - 1) > 1e-6:
            raise ValueError(f"mask_probabilities needs {len(MASK_KINDS)} values >= 0 summing to 1, one per "
                             f"{list(MASK_KINDS)} (got {probabilities})")
        options.update(inpaint_masks=int(inpaint_masks), mask_probabilities=probabilities)
    if object_box_masks:
        if not inpaint_masks:
            raise ValueError("object_box_masks adds a mask to the cached inpaint masks; give inpaint_masks >= 1 "
                             "(--inpaint-masks 3) as well")
        options.update(object_box_masks=True)  # absent when off, so older caches still resume
    ratios = {k: v for k, v in dict(num_ratios=num_ratios, min_ratio=min_ratio, max_ratio=max_ratio).items()
              if v is not None}
    options.update(ratios)
    out.mkdir(parents=True, exist_ok=True)
    options_path = out / OPTIONS_FILE
    if options_path.exists():
        saved = json.loads(options_path.read_text())
        changed = sorted(k for k in set(saved) | set(options) if saved.get(k) != options.get(k))
        if changed:
            diff = ", ".join(f"{k}: {saved.get(k)!r} -> {options.get(k)!r}" for k in changed)
            raise ValueError(
                f"{out} holds a cache made with other options ({diff}); use the same options to "
                "resume, or a new OUT folder"
            )
    else:
        _atomic_json(options_path, options)

    # 2. Buckets: the training dataset's assignment and pixels (first window, no randomness).
    plan = plan_buckets(budget, base_size=bases, rule=rule, max_frames=max_frames, **ratios)
    clips = BucketVideoDataset(metadata, plan, frame_stride=frame_stride, random_start=False)
    groups: dict[tuple[int, int, int], list[int]] = {}
    for index, key in enumerate(clips.keys):
        groups.setdefault(key, []).append(index)
    shards = [
        (key, number, indices[start : start + shard_size])
        for key, indices in sorted(groups.items())
        for number, start in enumerate(range(0, len(indices), shard_size))
    ]

    # 3. Encode what is missing, shard by shard.
    encoders = None
    storage = STORAGE_DTYPES[dtype]
    written = skipped = 0
    bar = tqdm(total=len(clips), desc="cache", unit="clip", disable=not progress)
    try:
        for key, number, indices in shards:
            folder = out / _bucket_dir(key)
            index_path = folder / f"shard-{number:05d}.json"
            tensor_path = folder / f"shard-{number:05d}.safetensors"
            if index_path.is_file() and tensor_path.is_file():
                skipped += 1
                bar.update(len(indices))
                continue
            if encoders is None:
                encoders = load_encoders(model, device, STORAGE_DTYPES[model_dtype], seed)
                if vae_tiling:
                    encoders.vae.enable_tiling()
            modes, stds, texts, inpaints, fulls, kinds = [], [], [], [], [], []
            for index in indices:
                sample = clips[index]
                mode, std = encode_video_latents(encoders, sample["pixel_values"])
                modes.append(mode)
                stds.append(std)
                texts.append(sample["text"])
                if inpaint_masks:
                    box = object_box_mask(clips.entries[index], key, frame_stride) if object_box_masks else None
                    inpaint, full, kind = encode_inpaint_conditionings(
                        encoders, sample["pixel_values"], tuple(mode.shape), inpaint_masks, probabilities,
                        seed=(seed, index), object_box=box, object_box_masks=object_box_masks)
                    inpaints.append(inpaint)
                    fulls.append(full)
                    kinds.append(kind)
                bar.update(1)
            tensors = {
                "latents": torch.stack(modes).to(storage),  # (N, F_lat, C, h, w)
                "prompt_embeds": encode_prompts(encoders, texts).to(storage),  # (N, L, D)
            }
            if store_std:
                tensors["latents_std"] = torch.stack(stds).to(storage)
            if inpaint_masks:
                tensors["inpaint"] = torch.stack(inpaints).to(storage)  # (N, K, F_lat, 1 + C, h, w)
                tensors["inpaint_full"] = torch.stack(fulls)  # (N, K) bool: everything regenerated
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_save(tensors, tensor_path, {"bucket": _bucket_dir(key),
                                                "scaling_factor": str(
                                                    float(encoders.vae.config.scaling_factor))})
            _atomic_json(index_path, {
                "bucket": list(key),
                "texts": texts,
                "file_paths": [clips.entries[i]["file_path"] for i in indices],
                "indices": indices,
                **({"mask_kinds": kinds} if inpaint_masks else {}),
            })
            written += 1
    finally:
        bar.close()

    # 4. The empty prompt (text dropout) and the manifest.
    empty_path = out / EMPTY_PROMPT_FILE
    if not empty_path.is_file():
        if encoders is None:
            encoders = load_encoders(model, device, STORAGE_DTYPES[model_dtype], seed)
        _atomic_save({"prompt_embeds": encode_prompts(encoders, [""]).to(storage)}, empty_path,
                     {"text": ""})
    counts = {_bucket_dir(k): len(v) for k, v in sorted(groups.items())}
    manifest = dict(options, clips=len(clips), buckets=counts, shards=len(shards))
    _atomic_json(out / MANIFEST_FILE, manifest)
    return {
        "clips": len(clips),
        "buckets": counts,
        "shards_written": written,
        "shards_skipped": skipped,
        "seconds": round(time.perf_counter() - started, 2),
        "out": str(out),
    }


# ================================================================================================
#                                        Reading the cache
# ================================================================================================


class LatentCacheDataset(Dataset):
    """Clips of a latent cache: ``dict(latents, prompt_embeds, text, bucket, ...)`` per index.

    Rows are read lazily from memory-mapped safetensors shards (one open handle per shard and
    process, so DataLoader workers are fine). Indices run over buckets in sorted order, then
    shards, then rows. Batch with ``BucketBatchSampler(dataset.bucket_of, batch_size)``: every
    batch then stacks latents of one shape.

    Args:
        root: the cache folder (``OUT`` of :func:`cache_latents`).
        sample: return ``latents + latents_std * randn`` (a fresh posterior sample per read, drawn
            from torch's global RNG) instead of the mode; needs a cache made with
            ``store_std=True``.
        dtype: dtype of the returned tensors (float32).

    Attributes:
        bucket_of: ``(height, width, num_frames)`` per index (pixel shape of the bucket).
        texts: caption per index.
        file_paths: clip path (relative to the metadata's folder) per index.
        empty_prompt_embeds: ``(L, D)`` embedding of ``""`` (text dropout), or None.

    Items:
        ``latents`` ``(F_lat, C, h, w)``, ``prompt_embeds`` ``(L, D)``, ``text`` str, ``bucket``
        ``(h, w, f)``, ``file_path`` str, ``index`` int (its position in the metadata), and
        ``latents_std`` / ``inpaint`` ``(K, F_lat, 1 + C, h, w)`` + ``inpaint_full`` ``(K,)`` when
        the cache has them.
    """

    def __init__(self, root: str | os.PathLike, sample: bool = False,
                 dtype: torch.dtype = torch.float32) -> None:
        self.root = Path(root)
        index_files = sorted(self.root.glob("*x*x*/shard-*.json"))
        if not index_files:
            raise ValueError(
                f"no cache shards under {self.root}; build them with `cogfun cache METADATA "
                f"{self.root}`"
            )
        self.sample, self.dtype = sample, dtype
        self.rows: list[tuple[Path, int]] = []
        self.bucket_of: list[tuple[int, int, int]] = []
        self.texts: list[str] = []
        self.file_paths: list[str] = []
        self.source_index: list[int] = []
        for index_file in index_files:
            tensor_path = index_file.with_suffix(".safetensors")
            if not tensor_path.is_file():
                raise ValueError(f"{tensor_path} is missing; rerun `cogfun cache` to resume")
            info = json.loads(index_file.read_text(encoding="utf-8"))
            key = tuple(int(v) for v in info["bucket"])
            for row, (text, path, source) in enumerate(
                zip(info["texts"], info["file_paths"], info["indices"])
            ):
                self.rows.append((tensor_path, row))
                self.bucket_of.append(key)
                self.texts.append(text)
                self.file_paths.append(path)
                self.source_index.append(int(source))
        self._handles: dict[Path, Any] = {}
        self._pid = os.getpid()
        self.has_std = "latents_std" in self._handle(self.rows[0][0]).keys()
        self.has_inpaint = "inpaint" in self._handle(self.rows[0][0]).keys()
        if sample and not self.has_std:
            raise ValueError(
                f"sample=True needs latents_std; rebuild {self.root} with --store-std, or use "
                "sample=False (the posterior mode)"
            )
        empty = self.root / EMPTY_PROMPT_FILE
        self.empty_prompt_embeds = None
        if empty.is_file():
            from safetensors.torch import load_file

            self.empty_prompt_embeds = load_file(str(empty))["prompt_embeds"][0].to(dtype)

    def _handle(self, path: Path):
        from safetensors import safe_open

        if os.getpid() != self._pid:  # a forked DataLoader worker: open its own handles
            self._handles, self._pid = {}, os.getpid()
        if path not in self._handles:
            self._handles[path] = safe_open(str(path), framework="pt")
        return self._handles[path]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, row = self.rows[index]
        shard = self._handle(path)
        latents = shard.get_slice("latents")[row : row + 1][0].to(self.dtype)  # (F_lat, C, h, w)
        item = dict(
            latents=latents,
            prompt_embeds=shard.get_slice("prompt_embeds")[row : row + 1][0].to(self.dtype),
            text=self.texts[index],
            bucket=self.bucket_of[index],
            file_path=self.file_paths[index],
            index=self.source_index[index],
        )
        if self.has_inpaint:
            item["inpaint"] = shard.get_slice("inpaint")[row : row + 1][0].to(self.dtype)  # (K, F_lat, 1 + C, h, w)
            item["inpaint_full"] = shard.get_slice("inpaint_full")[row : row + 1][0]  # (K,)
        if self.has_std:
            std = shard.get_slice("latents_std")[row : row + 1][0].to(self.dtype)
            item["latents_std"] = std
            if self.sample:
                item["latents"] = latents + std * torch.randn_like(std)
        return item


# ================================================================================================
#                                            CLI
# ================================================================================================


def _check_metadata_file(path: str) -> None:
    """The metadata file parses as JSON; a syntax error names the file and the line before anything loads."""
    file = Path(path)
    if file.is_file():
        try:
            json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"metadata {file} is not valid JSON: {error.msg} at line {error.lineno}, column "
                             f"{error.colno}; fix it or write it again with cogfun prepare") from None


def _run_cache(args: argparse.Namespace) -> int:
    from ..pipelines.validation import discard_new_folder

    _check_metadata_file(args.metadata)
    existed = Path(args.out).exists()
    try:
        summary = cache_latents(
            args.metadata, args.out, model=args.model, budget=args.budget, rule=args.rule,
            base_size=args.base_size, max_frames=args.max_frames, frame_stride=args.frame_stride,
            shard_size=args.shard_size, store_std=args.store_std, dtype=args.dtype,
            device=args.device, model_dtype=args.model_dtype, vae_tiling=args.vae_tiling,
            seed=args.seed, progress=not args.quiet, inpaint_masks=args.inpaint_masks,
            mask_probabilities=args.mask_probabilities, num_ratios=args.num_ratios, min_ratio=args.min_ratio,
            max_ratio=args.max_ratio, object_box_masks=args.object_box_masks,
        )
    except ValueError:
        discard_new_folder(args.out, existed)  # a refused run leaves no empty cache folder
        raise
    buckets = ", ".join(f"{k}: {v}" for k, v in summary["buckets"].items())
    print(f"cached {summary['clips']} clips in {len(summary['buckets'])} buckets ({buckets}); "
          f"shards written {summary['shards_written']}, skipped {summary['shards_skipped']} "
          f"({summary['seconds']} s) -> {summary['out']}")
    return 0


def add_cache_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cogfun cache METADATA OUT [options]`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "cache", help="encode clips (VAE) and captions (T5) into safetensors shards by bucket",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("metadata", help="metadata JSON in the reference format (cogfun prepare)")
    p.add_argument("out", help="cache folder (resumable)")
    p.add_argument("--model", default="tiny",
                   help="pipeline folder, or the preset 'tiny' / 'toy' (random weights)")
    p.add_argument("--budget", type=int, default=13312, help="token budget (13312)")
    p.add_argument("--rule", default="article", choices=("article", "reference", "tokens"),
                   help="frame rule of the budget (article)")
    p.add_argument("--base-size", type=int, nargs="+", default=None,
                   help="bucket base side(s) (default: the budget's, 512 for 13312)")
    p.add_argument("--max-frames", type=int, default=49, help="frame cap, 4k+1 (49)")
    p.add_argument("--frame-stride", type=int, default=1, help="frames between frames read")
    p.add_argument("--shard-size", type=int, default=64, help="clips per shard (64)")
    p.add_argument("--store-std", action="store_true",
                   help="also store the posterior std (fresh latent samples when training)")
    p.add_argument("--dtype", default="float32", choices=sorted(STORAGE_DTYPES),
                   help="storage dtype (float32)")
    p.add_argument("--model-dtype", default="float32", choices=sorted(STORAGE_DTYPES),
                   help="encoder dtype (float32; bfloat16 on GPUs)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--vae-tiling", action="store_true", help="encode large frames in tiles")
    p.add_argument("--seed", type=int, default=0, help="seed of a preset's random weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--inpaint-masks", type=int, default=0,
                   help="K random training masks per clip whose inpaint latents are stored (0)")
    p.add_argument("--mask-probabilities", type=float, nargs="+", default=None,
                   help="probabilities of the ten mask kinds (default the reference's)")
    p.add_argument("--object-box-masks", action="store_true",
                   help="one more cached mask per toy shape clip: a box hiding the object's whole track")
    p.add_argument("--num-ratios", type=int, default=None, help="aspect-ratio buckets (plan_buckets' default)")
    p.add_argument("--min-ratio", type=float, default=None, help="smallest height/width ratio")
    p.add_argument("--max-ratio", type=float, default=None, help="largest height/width ratio")
    p.set_defaults(func=_run_cache)
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m cogfun.data.latent_cache METADATA OUT [options]``."""
    parser = argparse.ArgumentParser(prog="cogfun")
    sub = parser.add_subparsers(dest="command", required=True)
    add_cache_parser(sub)
    args = parser.parse_args(["cache", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ValueError as error:
        print(f"cogfun cache: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
