"""What a model folder was trained for, and how it likes to be sampled: ``generation_defaults.json``.

Released CogVideoX-Fun checkpoints generate 49 frames at 480x720 (or their V1.5 sizes) with 50 steps and
guidance 6 (docs/design.md, "Checkpoints and defaults"); a toy model trained on 17-frame 64x96 clips is a
different animal. A model folder may carry a ``generation_defaults.json`` beside ``model_index.json``::

    {"height": 64, "width": 96, "num_frames": 17,          # used when the caller gives none
     "num_inference_steps": 25, "guidance_scale": 6.0, "sampler": "ddim",
     "trained_sizes": [[64, 96, 17], [96, 64, 17], [64, 64, 17]]}   # (height, width, frames) seen in training

``CogVideoXFunPipeline.from_pretrained`` reads it into ``pipe.generation_defaults``; ``__call__`` (and so every
mode, ``cogfun generate`` and the panels) fills arguments left at ``None`` from it, and warns when asked for a
size or a length outside ``trained_sizes``. A folder without the file keeps the released checkpoints'
defaults (:data:`RELEASED_DEFAULTS`) and no warnings.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

FILE_NAME = "generation_defaults.json"


@dataclass(frozen=True)
class GenerationDefaults:
    """Defaults of one model folder (see the module docstring).

    Attributes:
        height, width: output size in pixels (None: the transformer's sample size).
        num_frames: frames (4k+1).
        num_inference_steps, guidance_scale, guidance_rescale, sampler: the sampling recipe (a file without
            ``guidance_rescale`` means 0, plain guidance).
        trained_sizes: ``(height, width, num_frames)`` triples the model was trained on; empty = unknown.
    """

    height: int | None = None
    width: int | None = None
    num_frames: int = 49
    num_inference_steps: int = 50
    guidance_scale: float = 6.0
    guidance_rescale: float = 0.0
    sampler: str = "ddim"
    trained_sizes: tuple[tuple[int, int, int], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        from .samplers import SAMPLERS

        if self.num_frames < 1 or (self.num_frames - 1) % 4:
            raise ValueError(f"num_frames must be 4k+1 (got {self.num_frames}) in {FILE_NAME}")
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1 (got {self.num_inference_steps}) in {FILE_NAME}")
        if not 0 <= self.guidance_rescale <= 1:
            raise ValueError(f"guidance_rescale must be in [0, 1] (got {self.guidance_rescale}) in {FILE_NAME}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler {self.sampler!r} in {FILE_NAME} is none of {sorted(SAMPLERS)}")
        for side in (self.height, self.width):
            if side is not None and (side < 16 or side % 16):
                raise ValueError(f"height and width in {FILE_NAME} must be multiples of 16 (got {side})")
        object.__setattr__(self, "trained_sizes", tuple(tuple(int(v) for v in s) for s in self.trained_sizes))
        if any(len(s) != 3 for s in self.trained_sizes):
            raise ValueError(f"trained_sizes in {FILE_NAME} must be [height, width, num_frames] triples")

    def untrained(self, height: int, width: int, num_frames: int) -> str | None:
        """A sentence naming what of ``(height, width, num_frames)`` training never saw, or None."""
        if not self.trained_sizes or (height, width, num_frames) in self.trained_sizes:
            return None
        sizes = sorted({(h, w) for h, w, _ in self.trained_sizes})
        lengths = sorted({f for _, _, f in self.trained_sizes})
        parts = []
        if (height, width) not in sizes:
            parts.append(f"size {height}x{width} (trained: {', '.join(f'{h}x{w}' for h, w in sizes)})")
        if num_frames not in lengths:
            parts.append(f"{num_frames} frames (trained: {', '.join(map(str, lengths))})")
        if not parts:
            parts.append(f"{height}x{width} at {num_frames} frames")
        return "this model was never trained on " + " and ".join(parts) + "; expect weaker results"


RELEASED_DEFAULTS = GenerationDefaults()


def load_generation_defaults(folder: str | os.PathLike) -> GenerationDefaults | None:
    """``folder/generation_defaults.json`` as :class:`GenerationDefaults`, or None when absent.

    Unknown keys and bad values raise ``ValueError`` naming the file.
    """
    path = Path(folder) / FILE_NAME
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); fix or delete it") from None
    known = {f.name for f in fields(GenerationDefaults)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    return GenerationDefaults(**values)


def save_generation_defaults(folder: str | os.PathLike, defaults: GenerationDefaults) -> Path:
    """Write ``folder/generation_defaults.json``."""
    path = Path(folder) / FILE_NAME
    values = asdict(defaults)
    values["trained_sizes"] = [list(s) for s in defaults.trained_sizes]
    path.write_text(json.dumps(values, indent=1) + "\n")
    return path
