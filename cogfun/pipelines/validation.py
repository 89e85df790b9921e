"""Checks of what a user hands ``cogfun generate`` and the pipeline, run before any model loads.

Every check raises one ``ValueError`` that names the rule and the fix (docs/design.md 2, rules of the house);
none turns a value into a default. ``None`` always means "the default"; any other value is either valid or an error
(``num_frames=0`` is an error, never 49). The pipeline's entry points call the same checks, so the Python API
and the command line refuse the same inputs with the same words.

The checks are cheap: files are opened (an image is decoded, a video only probed), model folders have their
JSON files parsed and their safetensors headers read, and no weights are loaded.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import shutil
from pathlib import Path
from typing import Any

import torch

#: what ``write_video`` can write
OUTPUT_EXTENSIONS = (".mp4", ".webm", ".gif")
#: what the pipeline reads as an image (everything else is read as a video)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


# ------------------------------------------------------------------------------------------------
# Numbers
# ------------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_size(name: str, value: Any, multiple: int = 16) -> None:
    """``height``/``width``: None (default) or a positive multiple of ``multiple`` (16 for CogVideoX)."""
    if value is None:
        return
    if not _is_int(value):
        raise ValueError(f"{name} must be a whole number of pixels (got {value!r}); e.g. {name}=64")
    if value <= 0:
        raise ValueError(f"{name} must be a positive multiple of {multiple} (got {value}); e.g. {name}=64, "
                         f"or leave it out for the default")
    if value % multiple:
        low = max(multiple, value // multiple * multiple)
        raise ValueError(f"{name} must be a multiple of {multiple} (got {value}); try {low} or {low + multiple}")


def check_input_size(height: int, width: int, what: str = "image") -> None:
    """An input's own size, used when no height/width is given, must itself be multiples of 16."""
    if height % 16 or width % 16:
        h, w = max(16, round(height / 16) * 16), max(16, round(width / 16) * 16)
        raise ValueError(
            f"the {what} is {height}x{width} and the output takes its size when height/width are not given, but "
            f"they must be multiples of 16; pass height={h}, width={w} (--height {h} --width {w}; the {what} is "
            f"resized and centre cropped), or pick a size with its aspect ratio: size_from_image / --size-from-image"
        )


def check_num_frames(value: Any, name: str = "num_frames") -> None:
    """None (default) or 4k+1 >= 1 (the VAE compresses time 4x and keeps frame 0 on its own)."""
    if value is None:
        return
    if not _is_int(value):
        raise ValueError(f"{name} must be a whole number of frames (got {value!r}); e.g. {name}=17")
    if value < 1:
        raise ValueError(f"{name} must be 4k+1 and >= 1 (got {value}); e.g. 17 or 49, or leave it out for the "
                         "model's default")
    if (value - 1) % 4:
        k = (value - 1) // 4
        raise ValueError(f"{name} must be 4k+1 (got {value}); try {4 * k + 1} or {4 * k + 5}")


def check_steps(value: Any) -> None:
    """``num_inference_steps``: None (default) or a whole number >= 1."""
    if value is None:
        return
    if not _is_int(value) or value < 1:
        raise ValueError(f"num_inference_steps (--steps) must be a whole number >= 1 (got {value!r}); e.g. 25")


def check_guidance(value: Any) -> None:
    """``guidance_scale``: None (default) or a finite number >= 1 (1 switches classifier-free guidance off)."""
    if value is None:
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"guidance_scale (--guidance) must be a finite number >= 1 (got {value!r}); e.g. 6")
    if value < 1:
        raise ValueError(f"guidance_scale (--guidance) must be >= 1 (got {value}); 1 switches classifier-free "
                         "guidance off, the released checkpoints use 6")


def check_guidance_rescale(value: Any) -> None:
    """``guidance_rescale``: None (default) or a number in [0, 1] (0: plain classifier-free guidance)."""
    if value is None:
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"guidance_rescale (--guidance-rescale) must be a number in [0, 1] (got {value!r}); 0 is "
                         "plain guidance, 0.7 the value Lin et al. 2024 suggest")


def check_strength(value: Any) -> None:
    """``strength``: None (default) or a number in (0, 1]; 1 starts from pure noise."""
    if value is None:
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 < value <= 1:
        raise ValueError(f"strength must be in (0, 1] (got {value!r}); 1 starts from pure noise, "
                         "video-to-video uses 0.7")


def check_strength_steps(strength: float, steps: int) -> None:
    """SDEdit runs the last ``int(steps * strength)`` steps: at least one must be left."""
    if int(steps * strength) < 1:
        need = math.ceil(1 / strength)
        raise ValueError(f"strength={strength:g} with {steps} steps leaves no denoising step (int(steps * strength) "
                         f"= 0); raise --steps to at least {need} or --strength to at least {1 / steps:.2g}")


def check_fps(value: Any, name: str = "fps") -> None:
    """A frame rate: None (default) or a finite number > 0."""
    if value is None:
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a frame rate > 0 (got {value!r}); e.g. 8 or 25")


def check_seed(value: Any) -> None:
    """A seed: a whole number in [0, 2**64) (what ``torch.Generator.manual_seed`` takes)."""
    if not _is_int(value) or not 0 <= value < 2**64:
        raise ValueError(f"seed must be a whole number in [0, 2**64) (got {value!r}); e.g. --seed 42")


def check_frame_window(start: Any = 0, stride: Any = None, sample_fps: Any = None) -> None:
    """Frame selection from a video: ``start`` >= 0, ``stride`` >= 1, ``sample_fps`` > 0, not both of the last."""
    if not _is_int(start) or start < 0:
        raise ValueError(f"start (--start) is the index of the first frame used, a whole number >= 0 "
                         f"(got {start!r})")
    if stride is not None and (not _is_int(stride) or stride < 1):
        raise ValueError(f"stride (--stride) takes every n-th frame, a whole number >= 1 (got {stride!r})")
    check_fps(sample_fps, "sample_fps (--sample-fps)")
    if stride is not None and sample_fps is not None:
        raise ValueError("give either stride (--stride) or sample_fps (--sample-fps), not both: each sets the "
                         "step between the frames used")


# ------------------------------------------------------------------------------------------------
# Prompts and tensors
# ------------------------------------------------------------------------------------------------


def check_prompt(prompt: Any, name: str = "prompt", required: bool = True) -> None:
    """A prompt: a string or a non-empty list of strings (None only where embeddings are given)."""
    if prompt is None:
        if required:
            raise ValueError(f"give a {name} (text) or precomputed {name}_embeds")
        return
    if isinstance(prompt, str):
        return
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
        return
    raise ValueError(f"{name} must be a string or a list of strings (got {type(prompt).__name__}: {prompt!r:.60}); "
                     f"e.g. {name}=\"a red circle moving right on a grey background\"")


def check_finite(name: str, tensor: Any) -> None:
    """Given latents and embeddings must hold no NaN or infinity (they would turn every frame into NaN)."""
    if tensor is None:
        return
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (got {type(tensor).__name__})")
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite values; pass finite values (check what produced "
                         f"them, e.g. torch.nan_to_num or a fresh torch.randn)")


def check_mask_coverage(mask: torch.Tensor, threshold: float = 0.5) -> None:
    """An inpaint mask must regenerate something: all-keep (all black) would re-synthesise for nothing.

    Args:
        mask: the mask as ``as_mask`` returns it (1 = regenerate; floats are binarised at ``threshold``).
    """
    if not bool((mask.float() >= threshold).any()):
        raise ValueError("the mask keeps everything (no pixel is white): nothing to regenerate; paint white "
                         "(255) where the video is to be regenerated (mask 1 = regenerate, 0 = keep), or use "
                         "video-to-video (no mask) to change the whole video")


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------


def check_output_path(path: str | os.PathLike | None) -> None:
    """``--out``: a new file with a video extension, in a folder that can be created and written."""
    if path is None:
        return
    out = Path(path)
    if out.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise ValueError(f"--out {out}: unknown video extension {out.suffix!r}; use one of "
                         f"{', '.join(OUTPUT_EXTENSIONS)} (e.g. {out.with_suffix('.mp4')})")
    if out.exists():
        raise ValueError(f"--out {out} exists; choose another --out (runs never overwrite)")
    for parent in [out.parent, *out.parent.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {out}: {parent} is a file, not a folder; choose an --out in a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"--out {out}: the folder {parent} is not writable; choose another --out")
            break


def check_image_file(path: str | os.PathLike, name: str = "image") -> None:
    """An image input exists and decodes to one frame (an animated GIF or a video is refused)."""
    from ..data.video_io import probe_video, read_image

    file = Path(path)
    if not file.exists():
        raise ValueError(f"{name} file not found: {file}; check the path")
    if file.is_dir():
        raise ValueError(f"{name} {file} is a folder; give an image file (png, jpg, ...)")
    if file.suffix.lower() in IMAGE_SUFFIXES:
        read_image(file)  # raises a ValueError naming the file when it does not decode
        return
    info = probe_video(file)  # gif, mp4, ...: one frame is an image, more is a video
    if info["num_frames"] != 1:
        raise ValueError(f"{name} {file} has {info['num_frames']} frames, an image has one; give a single "
                         "image (e.g. one frame saved as png), or pass the clip as --video")


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file (read from its header; call ``check_image_file`` first)."""
    from PIL import Image

    from ..data.video_io import probe_video

    file = Path(path)
    if file.suffix.lower() in IMAGE_SUFFIXES:
        with Image.open(file) as image:
            return image.height, image.width
    info = probe_video(file)
    return info["height"], info["width"]


def check_video_file(path: str | os.PathLike, name: str = "video") -> dict:
    """A video input exists and can be probed; returns ``probe_video``'s dict (frames, fps, size)."""
    from ..data.video_io import probe_video

    file = Path(path)
    if not file.exists():
        raise ValueError(f"{name} file not found: {file}; check the path")
    return probe_video(file)


def check_model_folder(folder: str | os.PathLike) -> None:
    """A model folder's JSON files parse and its safetensors files are complete (headers only, no weights).

    A truncated download or a hand-edited config otherwise fails deep inside diffusers with a message that
    names neither the file nor the fix.
    """
    from safetensors import SafetensorError, safe_open

    root = Path(folder)
    for file in sorted(root.rglob("*.json")):
        try:
            json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{file} is not valid JSON ({error}); fix it or copy the model folder again") from None
    for file in sorted(root.rglob("*.safetensors")):
        try:
            with safe_open(str(file), "pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{file} is not a complete safetensors file ({error}); it is probably truncated: "
                             "copy or download the model folder again") from None


def check_array_image(x: Any, name: str = "image") -> None:
    """An in-memory image: ``(H, W, 3)`` / ``(H, W, 4)`` array or ``(3, H, W)`` tensor (not ``(H, W)``)."""
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) < 3:
        raise ValueError(f"an {name} array must be (H, W, 3) RGB (got shape {tuple(shape)}); for a grey image "
                         "use np.repeat(x[..., None], 3, axis=-1)")


# ------------------------------------------------------------------------------------------------
# Outputs
# ------------------------------------------------------------------------------------------------


def discard_new_folder(folder: str | os.PathLike, existed: bool) -> None:
    """After a refused run, remove ``folder`` if this run created it and wrote no data into it.

    "No data" means: nothing but small JSON bookkeeping (options, empty metadata) and empty folders. A folder that
    existed before, or that holds data (clips, shards), is left alone: resumable commands keep their work.
    """
    folder = Path(folder)
    if existed or not folder.is_dir():
        return
    files = [f for f in folder.rglob("*") if f.is_file()]
    if all(f.suffix == ".json" and f.stat().st_size < 65536 for f in files):
        shutil.rmtree(folder, ignore_errors=True)
