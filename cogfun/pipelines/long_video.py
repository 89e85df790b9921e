"""Unlimited-length video by continuation: overlapping segments, cross-faded (docs/design.md 1.2).

Each segment is one ordinary pipeline call whose first ``overlap`` frames are the previous segment's last
frames, kept by the mask (``cogfun.masks.continuation``). The overlap is blended linearly,
``prev * (1 - i / overlap) + new * (i / overlap)``, and each segment is decoded before the next starts, so
working memory does not grow with the length (only the output frames accumulate; pass ``on_segment`` to
stream them out instead). An end image, if any, is kept at the very last frame of the last segment: that
segment keeps as many previous frames as it needs to end exactly at ``num_frames``.

The reference's long-video path crashes on its first segment (it indexes the previous segment before one
exists); here the first segment is a plain text- or image-to-video call.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import masks as M
from .inputs import as_image


def _round_up_4k1(n: int) -> int:
    return n if (n - 1) % 4 == 0 else n + (4 - (n - 1) % 4)


def plan_segments(num_frames: int, segment_frames: int = 25, overlap: int = 4) -> list[tuple[int, int]]:
    """The ``(length, overlap)`` of each segment; lengths are 4k+1 and add up to ``num_frames``.

    The first segment has no overlap. The last one may reuse more previous frames (a larger overlap) so
    that it ends exactly at ``num_frames``.
    """
    if (segment_frames - 1) % 4 or segment_frames < 5:
        raise ValueError(f"segment_frames must be 4k+1 and >= 5 (got {segment_frames}); try 25")
    if not 1 <= overlap < segment_frames - 1:
        raise ValueError(f"overlap must be in [1, segment_frames - 1) (got {overlap}); try 4")
    if num_frames <= segment_frames:
        if (num_frames - 1) % 4:
            raise ValueError(f"a single segment needs num_frames = 4k+1 (got {num_frames}); try {_round_up_4k1(num_frames)}")
        return [(num_frames, 0)]
    plan, done = [(segment_frames, 0)], segment_frames
    while done < num_frames:
        new = min(segment_frames - overlap, num_frames - done)
        length = _round_up_4k1(new + overlap)
        plan.append((length, length - new))
        done += new
    return plan


def generate_long_video(
    pipe: Any,
    prompt: str,
    num_frames: int,
    segment_frames: int = 25,
    overlap: int = 4,
    image: Any = None,
    end_image: Any = None,
    height: int | None = None,
    width: int | None = None,
    generator: torch.Generator | None = None,
    on_segment: Callable[[int, np.ndarray], None] | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """Generate ``num_frames`` frames (any count) by overlapping segments.

    Args:
        pipe: a ``CogVideoXFunPipeline``.
        prompt: the text for every segment.
        num_frames: total frames of the result.
        segment_frames: frames per segment (4k+1; reference default 25).
        overlap: frames carried from one segment to the next and cross-faded (reference default 4).
        image: optional start image (first segment is image-to-video).
        end_image: optional end image, kept at the last frame of the last segment only.
        height, width: size (default: the start image's, else the model's sample size).
        generator: one generator drives every segment, so a seed gives the same video.
        on_segment: called as ``on_segment(index, new_frames)`` after each segment is decoded and blended.
        **kwargs: passed to every pipeline call (steps, guidance, negative prompt, ...).

    Returns:
        ``(num_frames, H, W, 3)`` float32 in [0, 1].
    """
    if end_image is not None and image is None:
        raise ValueError("end_image needs a start image (image=...); for text-to-video give only a prompt")
    if image is not None:
        start = as_image(image)
        height, width = height or start.shape[-2], width or start.shape[-1]
        start = as_image(start, height, width)
    plan = plan_segments(num_frames, segment_frames, overlap)
    end = None if end_image is None else as_image(end_image, height, width)
    quiet = bool(getattr(pipe, "_progress_bar_config", {}).get("disable", False))
    kwargs = {**kwargs, "output_type": "np", "height": height, "width": width, "generator": generator}

    output: np.ndarray | None = None
    for index, (length, ov) in enumerate(tqdm(plan, desc="segments", disable=len(plan) == 1 or quiet)):
        last = index == len(plan) - 1
        if index == 0:
            if image is None:
                frames = pipe(prompt=prompt, num_frames=length, **kwargs).frames[0]
            else:
                cond = M.image_to_video(start, length, end_image=end if last else None)
                frames = pipe(prompt=prompt, video=cond.video, mask_video=cond.mask, num_frames=length,
                              **kwargs).frames[0]
            output = frames
        else:
            previous = torch.from_numpy(output[-ov:]).permute(3, 0, 1, 2)[None] * 2 - 1  # (1, 3, ov, H, W)
            cond = M.continuation(previous, length, overlap=ov)
            video, mask = cond.video, cond.mask
            if last and end is not None:
                video = video.clone()
                mask = mask.clone()
                video[:, :, -1] = end
                mask[:, :, -1] = 0
            frames = pipe(prompt=prompt, video=video, mask_video=mask, num_frames=length, **kwargs).frames[0]
            weights = (np.arange(ov, dtype=np.float32) / ov)[:, None, None, None]  # i / overlap
            blended = output[-ov:] * (1 - weights) + frames[:ov] * weights
            output = np.concatenate([output[:-ov], blended, frames[ov:]])
        if on_segment is not None:
            on_segment(index, frames)
    return output[:num_frames].astype(np.float32)
