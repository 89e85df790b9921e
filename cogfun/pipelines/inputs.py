"""Turning what users hand the pipeline (paths, PIL images, numpy arrays, tensors) into pixel tensors.

Pixels reach ``cogfun.masks`` as ``(3, H, W)`` images or ``(B, 3, F, H, W)`` videos in [-1, 1]. When an
image or video's size disagrees with the requested ``height x width`` it is **resized to cover and centre
cropped, with a warning** (never silently, never refused): users mostly want "make it fit", and the warning
says how to avoid it (``size_from_image`` picks a size with the image's own aspect ratio).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..buckets import aspect_ratio_buckets, nearest_bucket, resize_crop_box


def _load(x: Any, max_frames: int | None = None) -> Any:
    """A path -> ``(H, W, 3)`` image or ``(F, H, W, 3)`` frames in [0, 1] (at most ``max_frames`` decoded)."""
    if isinstance(x, (str, os.PathLike)):
        from ..data.video_io import probe_video, read_image, read_video_frames
        from .validation import IMAGE_SUFFIXES

        path = str(x)
        if path.lower().endswith(IMAGE_SUFFIXES):
            return read_image(path)  # (H, W, 3) in [0, 1]
        total = probe_video(path)["num_frames"]
        return read_video_frames(path, num_frames=min(total, max_frames or total))[0]  # (F, H, W, 3) in [0, 1]
    return x


def _to_unit_tensor(x: Any, max_frames: int | None = None) -> torch.Tensor:
    """Anything image-like -> float tensor (..., 3, H, W) in [-1, 1]."""
    x = _load(x, max_frames)
    if hasattr(x, "convert") and hasattr(x, "size"):  # PIL image
        x = np.asarray(x.convert("RGB"))
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "convert"):  # list of PIL frames
        x = np.stack([np.asarray(f.convert("RGB")) for f in x])
    if isinstance(x, np.ndarray):  # channels last, [0, 1] float or uint8
        if x.ndim < 3 or x.shape[-1] not in (3, 4):
            raise ValueError(f"an image array must be (H, W, 3) and a video array (F, H, W, 3), RGB channels last "
                             f"(got shape {x.shape}); for grey pixels use np.repeat(x[..., None], 3, axis=-1)")
        x = x[..., :3]  # an alpha channel is dropped, as read_image does
        array = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        tensor = torch.from_numpy(np.ascontiguousarray(array)).movedim(-1, -3)  # (..., 3, H, W)
        return tensor * 2 - 1
    if isinstance(x, torch.Tensor):  # channels first, already in [-1, 1]
        if x.ndim < 3:
            raise ValueError(f"an image tensor must be (3, H, W) and a video (B, 3, F, H, W), in [-1, 1] "
                             f"(got shape {tuple(x.shape)})")
        return x.float()
    raise ValueError(f"cannot read an image/video from {type(x).__name__}; give a path, PIL image, array or tensor")


def fit_to_size(pixels: torch.Tensor, height: int, width: int, what: str = "image") -> torch.Tensor:
    """Resize-to-cover and centre-crop the last two dims to ``height x width`` (warns when it changes)."""
    src_h, src_w = pixels.shape[-2:]
    if (src_h, src_w) == (height, width):
        return pixels
    warnings.warn(
        f"the {what} is {src_h}x{src_w} but height x width is {height}x{width}: resized to cover and centre "
        f"cropped; pass height/width from cogfun.pipelines.size_from_image to keep its aspect ratio",
        stacklevel=3,
    )
    box = resize_crop_box(src_h, src_w, height, width)
    lead = pixels.shape[:-3]
    flat = pixels.reshape(-1, *pixels.shape[-3:])
    flat = F.interpolate(flat, size=(box.resize_h, box.resize_w), mode="bilinear", align_corners=False, antialias=True)
    flat = flat[..., box.top : box.top + height, box.left : box.left + width]
    return flat.reshape(*lead, *flat.shape[-3:])


def as_image(image: Any, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """An image as ``(3, H, W)`` in [-1, 1], fitted to ``height x width`` when given."""
    if isinstance(image, (str, os.PathLike)):
        from .validation import check_image_file

        check_image_file(image)  # an animated GIF or a video is refused, not cut to its first frame
    pixels = _to_unit_tensor(image)
    if pixels.ndim == 4 and pixels.shape[0] == 1:
        pixels = pixels[0]
    if pixels.ndim != 3 or pixels.shape[0] != 3:
        raise ValueError(f"an image must be (H, W, 3) or (3, H, W) (got shape {tuple(pixels.shape)})")
    return fit_to_size(pixels, height, width) if height and width else pixels


def as_video(video: Any, height: int | None = None, width: int | None = None,
             max_frames: int | None = None) -> torch.Tensor:
    """A video as ``(1, 3, F, H, W)`` in [-1, 1] (tensors may already be ``(B, 3, F, H, W)``).

    A video file is decoded only up to ``max_frames`` frames (``read_video_frames``; pick a window of a long clip
    with its ``start``/``stride``/``sample_fps`` and pass the frames).
    """
    pixels = _to_unit_tensor(video, max_frames)
    if isinstance(video, torch.Tensor) and pixels.ndim == 5:
        out = pixels  # (B, 3, F, H, W) as the pipeline's own layout
    elif pixels.ndim == 4 and pixels.shape[1] == 3:  # (F, 3, H, W) from channels-last frames
        out = pixels.permute(1, 0, 2, 3)[None]
    else:
        raise ValueError(
            f"a video must be (F, H, W, 3) frames, a video file, or a (B, 3, F, H, W) tensor "
            f"(got shape {tuple(pixels.shape)})"
        )
    if out.shape[2] == 0:
        raise ValueError("the video has no frames; check the file")
    if height and width:
        out = fit_to_size(out.transpose(1, 2), height, width, "video").transpose(1, 2)
    return out


def fit_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize a mask with its video: the same cover-and-centre-crop box, nearest pixels (values stay 0/1).

    A mask drawn at the source video's size thus stays on the same pixels when the video is resized to
    ``height x width``.
    """
    src_h, src_w = mask.shape[-2:]
    if (src_h, src_w) == (height, width):
        return mask
    box = resize_crop_box(src_h, src_w, height, width)
    lead = mask.shape[:-2]
    flat = mask.float().reshape(-1, 1, src_h, src_w)
    flat = F.interpolate(flat, size=(box.resize_h, box.resize_w), mode="nearest-exact")
    flat = flat[..., box.top : box.top + height, box.left : box.left + width]
    return flat.reshape(*lead, height, width)


#: VideoX-Fun binarises mask images at 240 of 255 (``get_video_to_video_latent``): a grey, anti-aliased or
#: JPEG-softened edge below it is kept, not regenerated.
MASK_IMAGE_THRESHOLD = 240


def as_mask(mask: Any, threshold: int = MASK_IMAGE_THRESHOLD) -> torch.Tensor:
    """A user mask (path, PIL, array or tensor; white = regenerate) as a float tensor for ``masks.inpaint``.

    8-bit masks (image and video files, PIL images, uint8 arrays) are binarised as the reference does: 1 where
    the value is ``>= threshold`` (default 240 of 255), else 0. Float arrays and tensors are taken as given on the
    [0, 1] scale (``masks.inpaint`` binarises them at 0.5).

    Args:
        mask: the mask.
        threshold: the 8-bit value from which a pixel is regenerated (1..255).
    """
    if not 1 <= threshold <= 255:
        raise ValueError(f"the mask threshold is an 8-bit value in 1..255 (got {threshold}); the reference uses 240")
    from_file = isinstance(mask, (str, os.PathLike))
    mask = _load(mask)
    if from_file:  # read as floats k / 255: back to 8-bit values
        mask = np.round(np.asarray(mask) * 255.0).astype(np.uint8)
    if hasattr(mask, "convert"):
        mask = np.asarray(mask.convert("L"))
    if isinstance(mask, np.ndarray):
        if mask.ndim >= 3 and mask.shape[-1] == 3:  # colour frames: use the first channel
            mask = mask[..., 0]
        if mask.dtype == np.uint8:
            mask = torch.from_numpy((mask >= threshold).astype(np.float32))
        else:
            mask = torch.from_numpy(mask.astype(np.float32))
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"cannot read a mask from {type(mask).__name__}")
    return mask.float()


def size_from_image(image: Any, base_size: int = 512, multiple: int = 16) -> tuple[int, int]:
    """"Resize to the start image": the aspect-ratio bucket nearest the image's, around ``base_size``.

    Args:
        image: the start image (or video: its first frame decides).
        base_size: side of the square of the bucket area (e.g. 512, 768, 1024; toy model: 64).
        multiple: the sides' multiple (16 for CogVideoX).

    Returns:
        ``(height, width)``, multiples of ``multiple``.
    """
    if not isinstance(base_size, int) or isinstance(base_size, bool) or base_size < multiple:
        raise ValueError(f"base_size (--size-from-image) is the side of the square around which the size is "
                         f"picked, a whole number >= {multiple} (got {base_size!r}); e.g. 512, or 64 for the toy model")
    pixels = _to_unit_tensor(image)
    h, w = pixels.shape[-2:]
    return nearest_bucket(h, w, aspect_ratio_buckets(base_size=base_size, multiple=multiple))
