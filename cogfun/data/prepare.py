"""``cogfun prepare SRC DST``: folders of real videos -> captioned clips in the reference format.

The data pipeline of CogVideoX-Fun (docs/design.md 1.6; VideoX-Fun / EasyAnimate ``video_caption/``):
scene split by a content detector, clips of 3-10 s, filters, captions, and a metadata JSON list of
``{"file_path", "text", "type", "width", "height"}``. What this module does, per source video
(``SRC`` is searched recursively for mp4, webm, gif, mov, mkv and avi files, in sorted order):

1. **Probe** size, frame rate and frame count (PyAV). A file that cannot be probed or decoded
   (corrupt, empty, not a video) is listed in ``report.json`` with the reason and skipped; the
   run goes on. A source whose short side is under ``min_size`` is listed as filtered.
2. **Scenes**: one streaming decode through :class:`cogfun.data.scenes.ContentDetector` (the
   reference's PySceneDetect rule: threshold 27 on the HSV content score, scenes >= 15 frames).
3. **Clips** inside each scene: with ``clip_seconds`` set, consecutive clips of that length (the
   remainder is dropped when shorter than ``min_seconds``); without it, every scene becomes the
   fewest equal pieces of at most ``max_seconds``. Scenes shorter than ``min_seconds`` give none
   (the reference keeps 3-10 s).
4. **Filters** on each clip, in order: the motion score (:func:`cogfun.data.filters.motion_score`:
   mean optical-flow magnitude between frames ~0.5 s apart, in pixels of the source frame; kept
   in ``[motion_min, motion_max]`` = ``[2, 20]`` as the reference), then near-duplicates against
   every clip kept so far (dHash of three frames, mean Hamming distance <= ``dedup_distance``).
5. **Caption**: ``caption_fn(frames, info)`` when given (Python API; e.g. a vision-language model,
   as the reference), else the JSON map (``captions``), else a sidecar text file next to the video
   (``<stem>.txt`` or ``<name>.<ext>.txt``), else ``""`` (or the clip is dropped with
   ``require_caption``).
6. **Write** the clip as H.264 mp4 (``clips/<source-slug>-<hash>-<start frame>.mp4``, the source's
   frame rate, optionally resized so its short side is ``resize_short_side``; sides even).

Layout of ``DST`` (never inside SRC's files: SRC is only read)::

    clips/*.mp4        the clips
    metadata.json      [{"file_path": "clips/...mp4", "text", "type": "video", "width", "height",
                         "num_frames", "fps", "source", "start_seconds", "end_seconds",
                         "start_frame", "end_frame", "motion_score", "caption_from"}, ...]
    report.json        failed and filtered sources, dropped clips (with reasons), counts
    state.jsonl        append-only log of every decision: what makes the run resumable
    prepare.json       the options DST was prepared with

**Resumable and idempotent.** Every written clip, dropped clip and finished source is appended to
``state.jsonl`` (flushed and fsynced) right after it happens, and clips are written to a temporary
name and renamed, so a killed run leaves no half clip. A re-run skips finished sources and, inside
an interrupted source, the clips already decided; a second run over the same SRC writes nothing
new. A source that failed is retried only when its size or modification time changed. Re-running
with other options raises: use a new DST.

Quirks, named rather than hidden: frame times assume a constant frame rate (the stream's average
rate); rotation metadata of phone videos is ignored; audio is dropped; each source is decoded
twice (scenes, then clips); one clip is held in memory as uint8 at the written size (10 s of
1080p at 30 fps is 1.9 GB: pass ``--resize-short-side``); ``--max-seconds-per-source`` keeps
only the first seconds of each source (for quick looks and tests). Sources are processed one
after the other (no worker pool: the near-duplicate check depends on the order).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .filters import MOTION_METHODS, NearDuplicateIndex, clip_hash, motion_score, passes_min_size
from .scenes import (
    DEFAULT_MIN_SCENE_FRAMES,
    DEFAULT_THRESHOLD,
    ContentDetector,
    detect_video_scenes,
)
from .video_io import VIDEO_EXTENSIONS, probe_video, write_video

__all__ = [
    "CaptionFunctionError",
    "PrepareConfig",
    "add_prepare_parser",
    "find_videos",
    "format_summary",
    "output_size",
    "plan_clips",
    "prepare_videos",
]

#: A caption function: ``(frames (F, H, W, 3) uint8, info dict) -> caption``.
CaptionFn = Callable[[np.ndarray, dict], str]


class CaptionFunctionError(Exception):
    """Raised when the user's ``caption_fn`` fails: a bug there stops the run (resumable)."""

STATE_FILE = "state.jsonl"
CONFIG_FILE = "prepare.json"
METADATA_FILE = "metadata.json"
REPORT_FILE = "report.json"
CLIPS_DIR = "clips"

# ================================================================================================
#                                           Options
# ================================================================================================


@dataclass(frozen=True)
class PrepareConfig:
    """Options of ``prepare_videos`` (saved in ``DST/prepare.json``; a re-run must match).

    Attributes:
        clip_seconds: fixed clip length in seconds; None cuts each scene into the fewest equal
            pieces of at most ``max_seconds``.
        min_seconds: shortest clip (3.0, the reference's lower bound).
        max_seconds: longest clip (10.0, the reference's upper bound).
        min_size: sources whose short side is below this many pixels are filtered out (64).
        motion_min: lowest accepted motion score (2.0; source pixels per ~0.5 s).
        motion_max: highest accepted motion score (20.0).
        motion_method: ``"lk"`` (default), ``"tvl1"``, ``"ilk"`` or ``"diff"`` (then the range is
            in grey levels, not pixels; set it accordingly).
        scene_threshold: content-detector threshold (27.0).
        min_scene_frames: shortest scene in frames (15).
        dedup_distance: near-duplicate if the mean dHash distance is at most this many bits of 64
            (4.0); None disables the check.
        resize_short_side: resize clips so their short side is this (never enlarges); None keeps
            the source size (rounded down to even sides for H.264).
        max_seconds_per_source: only look at the first seconds of each source (None: all).
        caption_sidecar: read ``<stem>.txt`` / ``<name>.<ext>.txt`` next to each video.
        captions: path of a JSON map ``{source path relative to SRC, file name or stem: caption}``.
        require_caption: drop clips left without a caption (else their text is ``""``).
        crf: H.264 quality of the written clips (18 ~ visually lossless).
    """

    clip_seconds: float | None = None
    min_seconds: float = 3.0
    max_seconds: float = 10.0
    min_size: int = 64
    motion_min: float = 2.0
    motion_max: float = 20.0
    motion_method: str = "lk"
    scene_threshold: float = DEFAULT_THRESHOLD
    min_scene_frames: int = DEFAULT_MIN_SCENE_FRAMES
    dedup_distance: float | None = 4.0
    resize_short_side: int | None = None
    max_seconds_per_source: float | None = None
    caption_sidecar: bool = True
    captions: str | None = None
    require_caption: bool = False
    crf: int = 18

    def __post_init__(self) -> None:
        if not 0 < self.min_seconds <= self.max_seconds:
            raise ValueError(
                f"need 0 < min_seconds <= max_seconds (got {self.min_seconds}, "
                f"{self.max_seconds}); the reference keeps clips of 3 to 10 s"
            )
        if self.clip_seconds is not None and not (
            self.min_seconds <= self.clip_seconds <= self.max_seconds
        ):
            raise ValueError(
                f"clip_seconds must lie in [min_seconds, max_seconds] = [{self.min_seconds}, "
                f"{self.max_seconds}] (got {self.clip_seconds}); change one of them"
            )
        if self.motion_method not in MOTION_METHODS:
            raise ValueError(
                f"unknown motion_method {self.motion_method!r}; use one of {MOTION_METHODS}"
            )
        if self.motion_min > self.motion_max:
            raise ValueError(
                f"motion_min must be <= motion_max (got {self.motion_min} > {self.motion_max})"
            )
        if self.resize_short_side is not None and self.resize_short_side < 16:
            raise ValueError(
                f"resize_short_side must be >= 16 or None (got {self.resize_short_side})"
            )
        if self.max_seconds_per_source is not None and not self.max_seconds_per_source > 0:
            raise ValueError(
                f"max_seconds_per_source must be > 0 or None (got {self.max_seconds_per_source})"
            )
        if not self.scene_threshold > 0:
            raise ValueError(f"scene_threshold must be > 0 (got {self.scene_threshold}); the content detector's "
                             f"default is {DEFAULT_THRESHOLD}")
        if self.dedup_distance is not None and self.dedup_distance < 0:
            raise ValueError(f"dedup_distance must be >= 0 or None (got {self.dedup_distance})")
        if self.min_size < 0 or self.min_scene_frames < 1 or not 0 <= self.crf <= 51:
            raise ValueError(
                f"need min_size >= 0, min_scene_frames >= 1 and 0 <= crf <= 51 (got "
                f"{self.min_size}, {self.min_scene_frames}, {self.crf})"
            )

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready dict."""
        return dataclasses.asdict(self)


# ================================================================================================
#                                   Sources, clips and sizes
# ================================================================================================


def find_videos(src: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[Path]:
    """Video files under ``src`` (recursive, sorted by relative path).

    Args:
        src: the folder to search.
        exclude: a folder to leave out (DST when it lies inside SRC).

    Returns:
        Paths of files whose extension is one of ``video_io.VIDEO_EXTENSIONS``.
    """
    src = Path(src)
    excluded = Path(exclude).resolve() if exclude is not None else None
    found = []
    for path in src.rglob("*"):
        if path.suffix.lower() not in VIDEO_EXTENSIONS or not path.is_file():
            continue
        if excluded is not None and excluded in path.resolve().parents:
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(src).as_posix())


def plan_clips(
    scenes: list[tuple[int, int]], fps: float, config: PrepareConfig
) -> tuple[list[tuple[int, int]], int]:
    """Clip frame ranges inside scenes.

    Args:
        scenes: ``[(start, end), ...]`` frame ranges, ``end`` exclusive.
        fps: frame rate.
        config: ``clip_seconds``, ``min_seconds`` and ``max_seconds`` are used.

    Returns:
        ``(clips, short_scenes)``: ``[(start, end), ...]`` and the number of scenes too short to
        give any clip.
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0 (got {fps})")
    min_len = max(1, math.ceil(config.min_seconds * fps - 1e-6))
    max_len = max(min_len, math.floor(config.max_seconds * fps + 1e-6))
    clips: list[tuple[int, int]] = []
    short = 0
    for start, end in scenes:
        length = end - start
        if length < min_len:
            short += 1
            continue
        if config.clip_seconds is not None:
            step = max(min_len, min(max_len, round(config.clip_seconds * fps)))
            a = start
            while a + step <= end:
                clips.append((a, a + step))
                a += step
            if end - a >= min_len:  # the remainder, shorter than clip_seconds but long enough
                clips.append((a, end))
        else:
            pieces = math.ceil(length / max_len)
            bounds = [start + round(i * length / pieces) for i in range(pieces + 1)]
            clips.extend(zip(bounds[:-1], bounds[1:]))
    return clips, short


def output_size(width: int, height: int, resize_short_side: int | None) -> tuple[int, int]:
    """``(width, height)`` of the written clips: even sides (H.264), never enlarged.

    Args:
        width: source width.
        height: source height.
        resize_short_side: wanted short side, or None to keep the source size.

    Returns:
        ``(w, h)``, e.g. 1280x720 with 128 -> ``(228, 128)``.
    """
    scale = 1.0
    if resize_short_side is not None and min(width, height) > resize_short_side:
        scale = resize_short_side / min(width, height)
    w = max(2, int(round(width * scale / 2)) * 2 if scale != 1.0 else width // 2 * 2)
    h = max(2, int(round(height * scale / 2)) * 2 if scale != 1.0 else height // 2 * 2)
    return w, h


def _clip_name(rel: str, start: int) -> str:
    """``clips/<slug>-<8 hex of the path>-<start frame>.mp4``: unique and stable per source."""
    stem = rel.rsplit(".", 1)[0]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__"))[-80:].strip("._") or "video"
    digest = hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8]
    return f"{CLIPS_DIR}/{slug}-{digest}-{start:07d}.mp4"


def _fingerprint(path: Path) -> list[int]:
    stat = path.stat()
    return [int(stat.st_size), int(stat.st_mtime_ns)]


# ================================================================================================
#                                          Captions
# ================================================================================================


class _Captions:
    """Caption lookup: JSON map first, then sidecar text files."""

    def __init__(self, src: Path, config: PrepareConfig) -> None:
        self.src, self.sidecar = src, config.caption_sidecar
        self.table: dict[str, str] = {}
        if config.captions is not None:
            path = Path(config.captions)
            if not path.is_file():
                raise ValueError(f"captions file not found: {path}; pass a JSON map or omit it")
            try:
                table = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(f"captions file {path} is not valid JSON: {err}") from None
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                raise ValueError(
                    f"captions file {path} must hold a JSON object {{video path: caption}}"
                )
            self.table = table

    def lookup(self, path: Path) -> tuple[str | None, str]:
        """``(caption or None, where it came from)`` for a source video."""
        rel = path.relative_to(self.src).as_posix()
        for key in (rel, path.name, path.stem):
            if key in self.table:
                return self.table[key].strip(), "json"
        if self.sidecar:
            for side in (path.with_suffix(".txt"), path.with_name(path.name + ".txt")):
                if side.is_file():
                    return side.read_text(encoding="utf-8", errors="replace").strip(), "sidecar"
        return None, "none"


# ================================================================================================
#                                     State (resume) and outputs
# ================================================================================================


class _State:
    """The append-only decision log ``DST/state.jsonl`` and what it says so far."""

    def __init__(self, dst: Path) -> None:
        self.path = dst / STATE_FILE
        self.sources: dict[str, dict] = {}  # rel -> last "source" event
        self.clips: dict[tuple[str, int], dict] = {}  # (rel, start) -> "clip" event
        self.drops: dict[tuple[str, int], dict] = {}  # (rel, start) -> "drop" event
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    self._apply(json.loads(line))
                except json.JSONDecodeError:
                    if number == len(lines) - 1:  # a run killed mid-write: ignore the tail
                        continue
                    raise ValueError(
                        f"{self.path} line {number + 1} is not JSON; the state log is damaged: "
                        "prepare into a new DST folder"
                    ) from None
        self._file = None

    def _apply(self, event: dict) -> None:
        kind, rel = event["event"], event["source"]
        if kind == "reset":  # a changed source is redone from scratch
            self.sources.pop(rel, None)
            for table in (self.clips, self.drops):
                for key in [k for k in table if k[0] == rel]:
                    del table[key]
        elif kind == "source":
            self.sources[rel] = event
        elif kind == "clip":
            self.clips[(rel, event["entry"]["start_frame"])] = event
        elif kind == "drop":
            self.drops[(rel, event["start_frame"])] = event

    def append(self, event: dict) -> None:
        """Record one decision durably (flush + fsync), then apply it."""
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            if self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
                self._file.write("\n")  # after a torn last line
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._apply(event)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def metadata(self) -> list[dict]:
        events = sorted(self.clips.values(), key=lambda e: (e["source"], e["entry"]["start_frame"]))
        return [e["entry"] for e in events]


def _write_json_if_changed(path: Path, value: Any) -> bool:
    """Write ``value`` atomically unless the file already holds exactly it; True if written."""
    text = json.dumps(value, indent=1, ensure_ascii=False) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return True


def _report(state: _State, src: Path, dst: Path) -> dict:
    failed = [
        {"source": rel, "reason": e["reason"]}
        for rel, e in sorted(state.sources.items()) if e["status"] == "failed"
    ]
    filtered = [
        {"source": rel, "reason": e["reason"]}
        for rel, e in sorted(state.sources.items()) if e["status"] == "filtered"
    ]
    drops = sorted(state.drops.values(), key=lambda e: (e["source"], e["start_frame"]))
    reasons = Counter(e["kind"] for e in drops)
    done = [e for e in state.sources.values() if e["status"] == "done"]
    return {
        "src": str(src),
        "dst": str(dst),
        "counts": {
            "sources": len(state.sources),
            "sources_done": len(done),
            "sources_failed": len(failed),
            "sources_filtered": len(filtered),
            "clips": len(state.clips),
            "clips_dropped": dict(sorted(reasons.items())),
            "short_scenes": sum(e.get("short_scenes", 0) for e in done),
            "seconds_of_clips": round(
                sum(e["entry"]["end_seconds"] - e["entry"]["start_seconds"]
                    for e in state.clips.values()), 3),
        },
        "failed": failed,
        "filtered_sources": filtered,
        "dropped_clips": [{k: v for k, v in e.items() if k != "event"} for e in drops],
    }


# ================================================================================================
#                                        One source video
# ================================================================================================


def _decode_clips(path: Path, windows: list[tuple[int, int]], size: tuple[int, int],
                  max_frames: int | None):
    """Yield ``(start, end, frames uint8 (F, h, w, 3))`` for each window, decoding once."""
    import av

    if not windows:
        return
    width, height = size
    order = sorted(windows)
    last = order[-1][1] if max_frames is None else min(order[-1][1], max_frames)
    current = 0
    buffer: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index >= last or current >= len(order):
                break
            start, end = order[current]
            if index < start:
                continue
            if (frame.width, frame.height) == (width, height):
                rgb = frame.to_ndarray(format="rgb24")
            else:
                rgb = frame.reformat(width=width, height=height, format="rgb24",
                                     interpolation="AREA").to_ndarray()
            buffer.append(rgb)  # (h, w, 3) uint8
            if index == end - 1:
                yield start, end, np.stack(buffer)
                buffer, current = [], current + 1
    if current < len(order) and buffer:
        raise ValueError(
            f"could not decode video {path}: it ended after {start + len(buffer)} frames "
            f"inside clip {order[current]}"
        )


def _process_source(
    path: Path,
    rel: str,
    dst: Path,
    config: PrepareConfig,
    state: _State,
    index: NearDuplicateIndex | None,
    captions: _Captions,
    caption_fn: CaptionFn | None,
    counts: Counter,
) -> None:
    """Scenes, clips, filters, captions and writes of one source; events go to ``state``."""
    info = probe_video(path)
    fps, src_w, src_h = info["fps"], info["width"], info["height"]
    fingerprint = _fingerprint(path)
    if not passes_min_size(src_w, src_h, config.min_size):
        state.append(dict(event="source", source=rel, status="filtered", fingerprint=fingerprint,
                          reason=f"short side {min(src_w, src_h)} px < min_size "
                                 f"{config.min_size}"))
        counts["sources_filtered"] += 1
        return
    max_frames = None
    if config.max_seconds_per_source is not None:
        max_frames = max(1, int(config.max_seconds_per_source * fps + 1e-6))

    # 1. Scenes: one streaming decode through the content detector.
    detector: ContentDetector = detect_video_scenes(
        path, config.scene_threshold, config.min_scene_frames, max_frames)
    scenes = detector.scenes()

    # 2. Clips inside scenes; skip those decided by an interrupted earlier run.
    windows, short = plan_clips(scenes, fps, config)
    pending = [w for w in windows if (rel, w[0]) not in state.clips
               and (rel, w[0]) not in state.drops]
    counts["clips_already_done"] += len(windows) - len(pending)
    size = output_size(src_w, src_h, config.resize_short_side)
    sidecar_text, sidecar_from = captions.lookup(path)

    # 3. Decode each pending clip once, filter, caption, write.
    for start, end, frames in _decode_clips(path, pending, size, max_frames):
        timing = dict(start_seconds=round(start / fps, 4), end_seconds=round(end / fps, 4))
        score = motion_score(frames, fps, config.motion_method,
                             source_short_side=min(src_w, src_h))
        drop = None
        if not config.motion_min <= score <= config.motion_max:
            side = "low" if score < config.motion_min else "high"
            drop = dict(kind=f"motion_{side}", reason=f"motion score {score:.3f} outside "
                        f"[{config.motion_min}, {config.motion_max}]")
        hashes = clip_hash(frames)
        if drop is None and index is not None:
            hit = index.find(hashes)
            if hit is not None:
                drop = dict(kind="duplicate", reason=f"near-duplicate of {hit[0]} "
                            f"(dHash distance {hit[1]:.2f} bits)", duplicate_of=hit[0])
        text, caption_from = sidecar_text, sidecar_from
        if drop is None and caption_fn is not None:
            try:
                text = caption_fn(frames, dict(source=str(path), fps=fps, caption=sidecar_text,
                                               start_frame=start, end_frame=end, **timing))
            except Exception as err:
                raise CaptionFunctionError(
                    f"caption_fn failed on {rel} frames {start}-{end}: {err!r}; fix it and "
                    "rerun the same command to resume"
                ) from err
            if not isinstance(text, str):
                raise CaptionFunctionError(
                    f"caption_fn must return a str (got {type(text).__name__} for {rel})")
            text, caption_from = text.strip(), "caption_fn"
        if drop is None and config.require_caption and not text:
            drop = dict(kind="no_caption", reason="no caption (require_caption)")
        if drop is not None:
            state.append(dict(event="drop", source=rel, start_frame=start, end_frame=end,
                              motion_score=round(score, 4), **timing, **drop))
            counts[f"dropped_{drop['kind']}"] += 1
            continue
        file_path = _clip_name(rel, start)
        target = dst / file_path
        tmp = target.with_name(target.stem + ".partial.mp4")
        write_video(tmp, frames, fps=fps, crf=config.crf)
        os.replace(tmp, target)
        entry = dict(file_path=file_path, text=text or "", type="video", width=size[0],
                     height=size[1], num_frames=int(frames.shape[0]), fps=fps, source=rel,
                     **timing, start_frame=start, end_frame=end, motion_score=round(score, 4),
                     caption_from=caption_from)
        state.append(dict(event="clip", source=rel, entry=entry,
                          hash=[f"{h:016x}" for h in hashes]))
        if index is not None:
            index.add(file_path, hashes)
        counts["clips_written"] += 1
    state.append(dict(event="source", source=rel, status="done", fingerprint=fingerprint,
                      reason=None, fps=fps, width=src_w, height=src_h, scenes=scenes,
                      clips_planned=len(windows), short_scenes=short))


# ================================================================================================
#                                          The run
# ================================================================================================


def prepare_videos(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    config: PrepareConfig | None = None,
    caption_fn: CaptionFn | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Turn the videos under ``src`` into captioned clips, ``metadata.json`` and a report.

    Args:
        src: folder of source videos (searched recursively; never modified).
        dst: output folder (created; a re-run with the same options resumes it).
        config: the options (default ``PrepareConfig()``: 3-10 s clips, motion in [2, 20]).
        caption_fn: optional ``fn(frames, info) -> str`` called on every clip that passed the
            filters: ``frames`` is ``(F, H, W, 3)`` uint8 at the written size (uint8, not the
            kit's float convention, to spare memory on long clips), ``info`` has ``source``,
            ``fps``, ``start_frame``, ``end_frame``, ``start_seconds``, ``end_seconds`` and
            ``caption`` (the sidecar/JSON caption or None). Its exceptions propagate (a bug
            should not silently drop every clip); the run can be resumed after a fix. Not part
            of the saved options.
        progress: show a tqdm bar over the sources.

    Returns:
        The run's summary: ``{"sources", "processed", "skipped_done", "failed", "filtered",
        "clips_written", "clips_already_done", "dropped": {kind: n}, "clips_total",
        "seconds", "metadata", "report"}`` (counts of this run, except ``clips_total``).
    """
    from tqdm.auto import tqdm

    config = PrepareConfig() if config is None else config
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.is_dir():
        raise ValueError(f"SRC {src} is not a folder; pass the folder that holds the videos")
    if dst == src or dst in src.parents:
        raise ValueError(f"DST {dst} must not be SRC or a folder above it; pick a new folder")
    started = time.perf_counter()

    # 1. The options: a re-run must match the ones DST was made with.
    dst.mkdir(parents=True, exist_ok=True)
    options = {"src": str(src), **config.to_dict()}
    config_path = dst / CONFIG_FILE
    if config_path.exists():
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(saved) | set(options) if saved.get(k) != options.get(k))
        if changed:
            diff = ", ".join(f"{k}: {saved.get(k)!r} -> {options.get(k)!r}" for k in changed)
            raise ValueError(
                f"{dst} was prepared with other options ({diff}); rerun with the same options "
                "to resume, or prepare into a new DST folder"
            )
    else:
        _write_json_if_changed(config_path, options)
    (dst / CLIPS_DIR).mkdir(exist_ok=True)
    for leftover in (dst / CLIPS_DIR).glob("*.partial.mp4"):  # from a killed run (ours)
        leftover.unlink()

    # 2. What earlier runs decided.
    state = _State(dst)
    index = NearDuplicateIndex(config.dedup_distance) if config.dedup_distance is not None else None
    if index is not None:
        for event in state.clips.values():
            index.add(event["entry"]["file_path"], [int(h, 16) for h in event["hash"]])
    captions = _Captions(src, config)

    # 3. Every source, in sorted order.
    videos = find_videos(src, exclude=dst)
    counts: Counter = Counter()
    bar = tqdm(videos, desc="prepare", unit="video", disable=not progress)
    try:
        for path in bar:
            rel = path.relative_to(src).as_posix()
            bar.set_postfix_str(rel[-40:])
            done = state.sources.get(rel)
            if done is not None:
                if done["status"] == "done" or done["fingerprint"] == _fingerprint(path):
                    counts["skipped_done"] += 1
                    continue
                state.append(dict(event="reset", source=rel))  # changed since it failed
            counts["processed"] += 1
            try:
                _process_source(path, rel, dst, config, state, index, captions, caption_fn,
                                counts)
            except (ValueError, OSError, RuntimeError, EOFError, MemoryError) as err:
                # av's errors subclass ValueError/OSError: corrupt, empty, truncated files.
                reason = str(err) or type(err).__name__
                state.append(dict(event="source", source=rel, status="failed",
                                  fingerprint=_fingerprint(path), reason=reason))
                counts["failed"] += 1
            _write_json_if_changed(dst / METADATA_FILE, state.metadata())
    finally:
        bar.close()
        state.close()

    # 4. Outputs and the summary.
    _write_json_if_changed(dst / METADATA_FILE, state.metadata())
    _write_json_if_changed(dst / REPORT_FILE, _report(state, src, dst))
    dropped = {k[len("dropped_"):]: v for k, v in sorted(counts.items())
               if k.startswith("dropped_")}
    return {
        "sources": len(videos),
        "processed": counts["processed"],
        "skipped_done": counts["skipped_done"],
        "failed": counts["failed"],
        "filtered": counts["sources_filtered"],
        "clips_written": counts["clips_written"],
        "clips_already_done": counts["clips_already_done"],
        "dropped": dropped,
        "clips_total": len(state.clips),
        "seconds": round(time.perf_counter() - started, 2),
        "metadata": str(dst / METADATA_FILE),
        "report": str(dst / REPORT_FILE),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A few human lines for the end of ``cogfun prepare``."""
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "none"
    return "\n".join([
        f"sources: {summary['sources']} found, {summary['processed']} processed, "
        f"{summary['skipped_done']} already done, {summary['failed']} failed, "
        f"{summary['filtered']} filtered",
        f"clips: {summary['clips_written']} written, {summary['clips_already_done']} already "
        f"decided, dropped: {dropped}; {summary['clips_total']} in the metadata",
        f"metadata: {summary['metadata']}",
        f"report:   {summary['report']}  ({summary['seconds']} s)",
    ])


# ================================================================================================
#                                            CLI
# ================================================================================================


def _run_prepare(args: argparse.Namespace) -> int:
    config = PrepareConfig(
        clip_seconds=args.clip_seconds,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        min_size=args.min_size,
        motion_min=args.motion_min,
        motion_max=args.motion_max,
        motion_method=args.motion_method,
        scene_threshold=args.scene_threshold,
        min_scene_frames=args.min_scene_frames,
        dedup_distance=None if args.no_dedup else args.dedup_distance,
        resize_short_side=args.resize_short_side,
        max_seconds_per_source=args.max_seconds_per_source,
        caption_sidecar=args.caption_sidecar,
        captions=str(Path(args.captions).resolve()) if args.captions else None,
        require_caption=args.require_caption,
        crf=args.crf,
    )
    from ..pipelines.validation import discard_new_folder

    existed = Path(args.dst).exists()
    try:
        summary = prepare_videos(args.src, args.dst, config, progress=not args.quiet)
    except ValueError:
        discard_new_folder(args.dst, existed)  # a refused run leaves no empty DST
        raise
    print(format_summary(summary))
    return 0


def add_prepare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``cogfun prepare SRC DST [options]`` on an argparse subparsers object."""
    d = PrepareConfig()
    p = subparsers.add_parser(
        "prepare", help="real videos -> scene-split, filtered, captioned clips + metadata.json",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("src", help="folder of source videos (searched recursively, never modified)")
    p.add_argument("dst", help="output folder (clips/, metadata.json, report.json); resumable")
    p.add_argument("--clip-seconds", type=float, default=d.clip_seconds,
                   help="fixed clip length (default: split scenes into pieces <= --max-seconds)")
    p.add_argument("--min-seconds", type=float, default=d.min_seconds, help="shortest clip (3)")
    p.add_argument("--max-seconds", type=float, default=d.max_seconds, help="longest clip (10)")
    p.add_argument("--min-size", type=int, default=d.min_size,
                   help="drop sources whose short side is below this (64)")
    p.add_argument("--motion-min", type=float, default=d.motion_min,
                   help="lowest motion score, source pixels per ~0.5 s (2)")
    p.add_argument("--motion-max", type=float, default=d.motion_max, help="highest (20)")
    p.add_argument("--motion-method", default=d.motion_method, choices=MOTION_METHODS,
                   help="optical flow 'lk' (default), 'tvl1', 'ilk', or grey-level 'diff'")
    p.add_argument("--scene-threshold", type=float, default=d.scene_threshold,
                   help="content-detector threshold (27)")
    p.add_argument("--min-scene-frames", type=int, default=d.min_scene_frames,
                   help="shortest scene in frames (15)")
    p.add_argument("--dedup-distance", type=float, default=d.dedup_distance,
                   help="near-duplicate at or below this mean dHash distance in bits (4)")
    p.add_argument("--no-dedup", action="store_true", help="keep near-duplicates")
    p.add_argument("--resize-short-side", type=int, default=d.resize_short_side,
                   help="resize clips to this short side (default: source size)")
    p.add_argument("--max-seconds-per-source", type=float, default=d.max_seconds_per_source,
                   help="only the first seconds of each source (quick looks, tests)")
    p.add_argument("--caption-sidecar", action=argparse.BooleanOptionalAction,
                   default=d.caption_sidecar, help="read <video>.txt next to each video")
    p.add_argument("--captions", default=None, help="JSON map {video path or name: caption}")
    p.add_argument("--require-caption", action="store_true", help="drop uncaptioned clips")
    p.add_argument("--crf", type=int, default=d.crf, help="H.264 quality, lower is better (18)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_prepare)
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m cogfun.data.prepare SRC DST [options]``."""
    parser = argparse.ArgumentParser(prog="cogfun")
    sub = parser.add_subparsers(dest="command", required=True)
    add_prepare_parser(sub)
    args = parser.parse_args(["prepare", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ValueError as error:
        print(f"cogfun prepare: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
