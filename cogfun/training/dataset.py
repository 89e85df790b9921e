"""A bucketed video dataset over a metadata JSON, its collate, and the batch sampler it reads.

The role of VideoX-Fun's ``ImageVideoDataset`` + ``AspectRatioBatchImageVideoSampler`` in
``scripts/cogvideox_fun/train.py`` with token-length buckets (docs/design.md 1.4, 1.6):

1. Every metadata entry (``{"file_path", "text", "type": "video"|"image", "width"?,
   "height"?, "num_frames"?}``) is assigned once to a bucket of a plan (``plan_buckets``): the
   nearest aspect ratio, then the nearest area (``bucket_for``); its frame count is the
   bucket's (the budget rule), lowered to the largest 4k+1 the clip holds when it is shorter.
   Images are 1-frame clips.
2. ``dataset[(index, epoch)]`` reads a contiguous clip of those frames with a stride (lowered
   when the clip is too short for it; the start is drawn from ``(seed, index, epoch)`` so a run
   and its resume read the same pixels), resizes it to cover the bucket and centre-crops it.
3. ``TaggedBatchSampler`` wraps ``BucketBatchSampler`` so each index travels with its epoch and
   the sampler position after its batch: whatever a DataLoader prefetches, the batch itself
   says where to resume (``collate`` puts it in ``batch["sampler_state"]``).

Items: ``pixel_values`` ``(F, C, H, W)`` float32 in [-1, 1], ``text``, ``index``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from ..buckets import Bucket, BucketBatchSampler, bucket_for, resize_crop_box
from ..data.video_io import frames_to_tensor, probe_video, read_image, read_video

__all__ = [
    "BucketVideoDataset", "TaggedBatchSampler", "check_metadata", "collate", "load_metadata", "sample_window",
    "worker_context",
]


def load_metadata(path: str | Path) -> list[dict[str, Any]]:
    """Read a metadata JSON list in the reference format and check every entry.

    Args:
        path: ``metadata.json``: a list of ``{"file_path", "text", "type"?, ...}``.

    Returns:
        the entries (``type`` defaults to ``"video"``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"metadata file not found: {path}; write one with cogfun.data.toy.write_toy_dataset "
            "or cogfun prepare"
        )
    return check_metadata(json.loads(path.read_text()), str(path))


def check_metadata(entries: Any, source: str = "metadata") -> list[dict[str, Any]]:
    """Check metadata entries (a list of dicts with ``file_path`` and ``text``); default ``type`` video."""
    path = source
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path} must hold a non-empty JSON list of clips")
    entries = [dict(e) if isinstance(e, dict) else e for e in entries]
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "file_path" not in entry or "text" not in entry:
            raise ValueError(f"{path} entry {i} needs 'file_path' and 'text' (got {entry!r})")
        entry.setdefault("type", "video")
        if entry["type"] not in ("video", "image"):
            raise ValueError(f"{path} entry {i}: type must be 'video' or 'image' (got {entry['type']!r})")
    return entries


def _largest_4k1(n: int) -> int:
    return (n - 1) // 4 * 4 + 1


def sample_window(num_available: int, num_frames: int, stride: int) -> tuple[int, int]:
    """Stride and number of valid start positions for ``num_frames`` frames out of ``num_available``.

    The stride is lowered until the clip fits: ``(num_frames - 1) * stride + 1 <= num_available``.

    Args:
        num_available: frames in the video.
        num_frames: frames to take (<= num_available).
        stride: wanted stride (>= 1).

    Returns:
        ``(stride, num_starts)``; starts are ``0 .. num_starts - 1``.
    """
    if num_frames > num_available:
        raise ValueError(f"cannot take {num_frames} frames out of {num_available}")
    if num_frames > 1:
        stride = max(1, min(stride, (num_available - 1) // (num_frames - 1)))
    span = (num_frames - 1) * stride + 1
    return stride, num_available - span + 1


def clip_key(height: int, width: int, num_frames: int, plan: Sequence[Bucket]) -> tuple[int, int, int]:
    """``(height, width, num_frames)`` a source clip trains at: its bucket (``bucket_for``), with the
    bucket's frame count lowered to the largest 4k+1 the clip holds (an image, ``num_frames=1``, stays 1).

    Args:
        height, width: source size in pixels.
        num_frames: source frames (1 for an image).
        plan: buckets of one budget (``plan_buckets``).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1 (got {num_frames})")
    bucket = bucket_for(height, width, plan)
    return bucket.height, bucket.width, min(bucket.num_frames, _largest_4k1(num_frames))


class BucketVideoDataset(Dataset):
    """Clips of a metadata JSON, each resized and cropped to its bucket of a plan.

    Args:
        metadata: path of the metadata JSON (or the already loaded entries, then
            ``data_root`` is required).
        plan: buckets of one budget (``plan_buckets``).
        data_root: folder ``file_path`` is relative to (default: the metadata's folder).
        frame_stride: pixel frames between sampled frames (lowered for short clips).
        random_start: draw the clip start uniformly (seeded by ``(seed, index, epoch)``);
            False takes the first frames.
        seed: seed of the clip starts.

    Attributes:
        keys: ``(height, width, num_frames)`` per index, the sampler's bucket keys.
        batch_sizes: ``{key: batch size}`` from the plan.
    """

    def __init__(
        self,
        metadata: str | Path | list[dict[str, Any]],
        plan: Sequence[Bucket],
        data_root: str | Path | None = None,
        frame_stride: int = 1,
        random_start: bool = True,
        seed: int = 0,
    ) -> None:
        if isinstance(metadata, (str, Path)):
            self.entries = load_metadata(metadata)
            root = Path(data_root) if data_root is not None else Path(metadata).parent
        else:
            if data_root is None:
                raise ValueError("pass data_root= with a list of metadata entries")
            self.entries, root = check_metadata(list(metadata)), Path(data_root)
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1 (got {frame_stride})")
        if not plan:
            raise ValueError("empty plan; build one with cogfun.buckets.plan_buckets(budget)")
        self.root, self.plan = root, list(plan)
        self.frame_stride, self.random_start, self.seed = frame_stride, random_start, seed
        self.keys: list[tuple[int, int, int]] = []
        self.sizes: list[tuple[int, int, int]] = []  # source (height, width, frames)
        self.batch_sizes: dict[tuple[int, int, int], int] = {}
        batch_of_shape = {(b.height, b.width): b.batch_size for b in self.plan}
        for entry in self.entries:
            height, width, frames = self._source_size(entry)
            try:
                key = clip_key(height, width, 1 if entry["type"] == "image" else frames, self.plan)
            except ValueError as error:
                raise ValueError(f"{entry['file_path']}: {error}; fix or drop this entry of the metadata") from None
            self.keys.append(key)
            self.sizes.append((height, width, frames))
            self.batch_sizes[key] = batch_of_shape[key[:2]]

    def _source_size(self, entry: dict[str, Any]) -> tuple[int, int, int]:
        """``(height, width, frames)`` from the metadata, else probed from the file."""
        path = self.root / entry["file_path"]
        if entry["type"] == "image":
            if "height" in entry and "width" in entry:
                return int(entry["height"]), int(entry["width"]), 1
            h, w, _ = read_image(path).shape
            return h, w, 1
        if all(k in entry for k in ("height", "width", "num_frames")):
            return int(entry["height"]), int(entry["width"]), int(entry["num_frames"])
        info = probe_video(path)
        return info["height"], info["width"], info["num_frames"]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, item: int | tuple[int, ...]) -> dict[str, Any]:
        """One clip. ``item`` is an index or ``(index, epoch[, position])`` from ``TaggedBatchSampler``."""
        index, epoch, position = (item, 0, None) if isinstance(item, int) else (*item, None)[:3]
        entry = self.entries[index]
        height, width, num_frames = self.keys[index]
        src_frames = self.sizes[index][2]
        path = self.root / entry["file_path"]

        # 1. Temporal window: a contiguous clip with a stride, start seeded by (seed, index, epoch).
        stride, num_starts = sample_window(src_frames, num_frames, self.frame_stride)
        start = 0
        if self.random_start and num_starts > 1:
            start = int(np.random.default_rng([self.seed, index, epoch]).integers(num_starts))
        if entry["type"] == "image":
            frames = read_image(path)[None]  # (1, H, W, 3)
        else:
            frames, _ = read_video(path, max_frames=num_frames, start=start, stride=stride)
        if frames.shape[0] != num_frames:
            raise ValueError(
                f"{path}: read {frames.shape[0]} frames, expected {num_frames} (metadata says "
                f"{src_frames}); fix its num_frames in the metadata or drop the entry"
            )
        video = frames_to_tensor(frames)  # (F, C, H0, W0) in [-1, 1]

        # 2. Resize to cover the bucket, then centre-crop (no padding, no distortion).
        box = resize_crop_box(video.shape[2], video.shape[3], height, width)
        if (box.resize_h, box.resize_w) != tuple(video.shape[2:]):
            video = F.interpolate(
                video, size=(box.resize_h, box.resize_w), mode="bilinear", align_corners=False, antialias=True
            )  # (F, C, resize_h, resize_w)
        video = video[:, :, box.top : box.top + height, box.left : box.left + width]  # (F, C, H, W)
        sample = dict(pixel_values=video.clamp(-1, 1).contiguous(), text=entry["text"], index=index)
        if position is not None:
            sample["sampler_state"] = (epoch, position)
        return sample


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack same-shape samples: ``pixel_values`` ``(B, F, C, H, W)``, ``text`` list, ``index`` ``(B,)``.

    With samples from ``TaggedBatchSampler`` the batch also carries ``sampler_state``
    ``{"epoch", "batches_yielded"}``: the sampler position right after this batch.
    """
    shapes = {tuple(s["pixel_values"].shape) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"a batch mixes shapes {sorted(shapes)}; use a BucketBatchSampler")
    batch = dict(
        pixel_values=torch.stack([s["pixel_values"] for s in samples]),  # (B, F, C, H, W)
        text=[s["text"] for s in samples],
        index=torch.tensor([s["index"] for s in samples], dtype=torch.long),
    )
    return _with_sampler_state(batch, samples)


def collate_cached(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack cached clips of one bucket (``latents``, ``prompt_embeds``, ``inpaint``, ...) like :func:`collate`;
    ``bucket`` is their pixel shape ``(H, W, F)``."""
    tensors = ("latents", "latents_std", "prompt_embeds", "inpaint", "inpaint_full")
    batch = {k: torch.stack([s[k] for s in samples]) for k in tensors if k in samples[0]}
    batch["text"] = [s["text"] for s in samples]
    batch["bucket"] = tuple(int(v) for v in samples[0]["bucket"])
    batch["index"] = torch.tensor([s["index"] for s in samples], dtype=torch.long)
    return _with_sampler_state(batch, samples)


def _with_sampler_state(batch: dict[str, Any], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Add ``sampler_state`` ``{"epoch", "batches_yielded"}`` from samples of ``TaggedBatchSampler``."""
    if "sampler_state" in samples[0]:
        epoch, position = samples[0]["sampler_state"]
        batch["sampler_state"] = {"epoch": int(epoch), "batches_yielded": int(position)}
    return batch


class TaggedBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """``BucketBatchSampler`` whose indices carry ``(index, epoch, position after the batch)``.

    The epoch seeds the clip start in the dataset; the position lets a training loop save the
    exact sampler state of the batch it consumed, even when DataLoader workers run ahead.

    Args:
        sampler: the bucket batch sampler (iterated as is; use ``infinite=True`` for training).
    """

    def __init__(self, sampler: BucketBatchSampler) -> None:
        super().__init__()
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for batch in self.sampler:
            epoch, position = self.sampler.epoch, self.sampler.batches_yielded
            yield [(index, epoch, position) for index in batch]


def worker_context(num_workers: int) -> str | None:
    """The DataLoader's ``multiprocessing_context``: ``"forkserver"`` when there are workers, else None.

    Workers forked from a process that has already decoded video inherit FFmpeg's swscale thread pool
    without its threads, and ``frame.to_ndarray`` then waits forever (seen in CI: both workers of a 2-worker
    DataLoader stuck in ``avpriv_slicethread_execute`` under ``sws_scale_frame``). Workers started by a fork
    server begin from a clean process.
    """
    return "forkserver" if num_workers > 0 else None
