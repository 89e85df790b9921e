"""``cogfun generate``: every mode from the command line, one pipeline underneath.

The mode follows from what is given (docs/design.md 1.2):

=====================================  =====================
given                                  mode
=====================================  =====================
only ``--prompt``                      text-to-video
``--image``                            image-to-video
``--image`` + ``--end-image``          start+end to video
``--video``                            video-to-video (``--strength``, default 0.70)
``--video`` + ``--mask``               video inpainting
``--num-frames`` above ``--segment-frames`` with ``--long``   long video by continuation
=====================================  =====================

Each run writes ``video.<ext>`` and ``config.json`` (every resolved option, the model, the seed) into a new
folder ``outputs/generate/<time>-<mode>/`` unless ``--out`` names a file; an existing file is never
overwritten.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_PROMPT = "a red circle moving right on a grey background"


def add_generate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "generate", help="generate a video in any mode", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=None, help="pipeline folder or preset name (default: the toy model)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--image", help="start image (image-to-video)")
    p.add_argument("--end-image", help="end image (start+end); needs --image")
    p.add_argument("--video", help="input video (video-to-video, or inpaint with --mask)")
    p.add_argument("--mask", help="mask image or video: white = regenerate (inpaint)")
    p.add_argument("--mask-threshold", type=int, default=240,
                   help="8-bit value from which a mask pixel is regenerated (the reference's 240)")
    p.add_argument("--strength", type=float, default=None, help="video-to-video strength in (0, 1] (default 0.70)")
    p.add_argument("--height", type=int, default=None, help="multiple of 16 (default: input's or model's size)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--size-from-image", type=int, default=None, metavar="BASE",
                   help="pick height/width from the start image's aspect ratio around BASE px (e.g. 512)")
    p.add_argument("--num-frames", type=int, default=None,
                   help="4k+1 (default: the video's length, else the model's default: 17 for the toy model, 49 "
                        "for released checkpoints; long video: 49)")
    p.add_argument("--long", action="store_true", help="long video: segments with overlap and cross-fade")
    p.add_argument("--segment-frames", type=int, default=None,
                   help="long video: frames per segment (default the model's num_frames; the reference uses 25)")
    p.add_argument("--overlap", type=int, default=4)
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default the model's: 25 toy, 50 released)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default the model's, 6.0)")
    p.add_argument("--sampler", default=None, help="sampler name (default the model's, ddim)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--out", default=None, help="output file (.mp4, .webm, .gif); default a new run folder")
    p.set_defaults(func=run_generate)
    return p


def _mode(args: argparse.Namespace) -> str:
    if args.end_image and not args.image:
        raise ValueError("--end-image needs --image (the start image)")
    if args.mask and not args.video:
        raise ValueError("--mask needs --video (the video to inpaint)")
    if args.image and args.video:
        raise ValueError("give either --image or --video, not both")
    if args.long:
        return "long_video"
    if args.image:
        return "start_end_to_video" if args.end_image else "image_to_video"
    if args.video:
        return "inpaint" if args.mask else "video_to_video"
    if args.strength is not None:
        raise ValueError("--strength applies to video-to-video; give --video")
    return "text_to_video"


def _output_path(args: argparse.Namespace, mode: str) -> Path:
    if args.out:
        out = Path(args.out)
        if out.exists():
            raise ValueError(f"{out} exists; choose another --out (runs never overwrite)")
        out.parent.mkdir(parents=True, exist_ok=True)
        return out
    folder = Path("outputs") / "generate" / f"{time.strftime('%Y%m%d-%H%M%S')}-{mode}"
    suffix = 1
    while folder.exists():
        folder = folder.with_name(f"{folder.name.split('~')[0]}~{suffix}")
        suffix += 1
    folder.mkdir(parents=True)
    return folder / "video.mp4"


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from ..data.video_io import write_video
    from .components import load_pipeline
    from .inputs import size_from_image

    mode = _mode(args)
    pipe = load_pipeline(args.model)
    if args.sampler is not None:
        pipe.set_sampler(args.sampler)
    height, width = args.height, args.width
    if args.size_from_image:
        if not args.image:
            raise ValueError("--size-from-image needs --image")
        height, width = size_from_image(args.image, base_size=args.size_from_image)
    generator = torch.Generator().manual_seed(args.seed)
    common = dict(negative_prompt=args.negative_prompt, num_inference_steps=args.steps,
                  guidance_scale=args.guidance, generator=generator, height=height, width=width)
    start = time.perf_counter()
    if mode == "long_video":
        segment_frames = args.segment_frames or pipe.generation_defaults.num_frames
        frames = pipe.long_video(args.prompt, args.num_frames or 49, segment_frames=segment_frames,
                                 overlap=args.overlap, image=args.image, end_image=args.end_image, **common)
    else:
        if mode in ("image_to_video", "start_end_to_video"):
            out = pipe.image_to_video(args.prompt, args.image, end_image=args.end_image,
                                      num_frames=args.num_frames, **common)
        elif mode == "video_to_video":
            out = pipe.video_to_video(args.prompt, args.video, strength=args.strength or 0.70,
                                      num_frames=args.num_frames, **common)
        elif mode == "inpaint":
            out = pipe.inpaint(args.prompt, args.video, args.mask, num_frames=args.num_frames,
                               mask_threshold=args.mask_threshold, **common)
        else:
            out = pipe.text_to_video(args.prompt, num_frames=args.num_frames, **common)
        frames = out.frames[0]
    seconds = time.perf_counter() - start
    path = _output_path(args, mode)
    write_video(path, frames, fps=args.fps)
    config = {k: v for k, v in vars(args).items() if k != "func"}
    config.update(mode=mode, model=str(args.model or "default"), sampler=pipe.sampler, seconds=round(seconds, 2),
                  frames=list(frames.shape))
    path.with_name(path.stem + ".json" if args.out else "config.json").write_text(json.dumps(config, indent=2))
    print(f"{mode}: {frames.shape[0]} frames {frames.shape[1]}x{frames.shape[2]} in {seconds:.1f}s -> {path}")
    return 0
