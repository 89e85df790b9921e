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
overwritten, and a failed run leaves nothing behind.

Real footage: ``--start`` (first frame), ``--stride`` (every n-th frame) or ``--sample-fps`` (sample the clip
at that rate), and ``--num-frames`` pick the frames of ``--video``; only those are decoded. Without
``--num-frames`` a clip longer than the model's length (17 frames for the toy model, 49 for released
checkpoints) is cut to it, with a message. The output plays at ``--fps``, by default the rate of the frames
used (the source's divided by the step: 25 fps with ``--stride 2`` gives 12.5), else 8.

Every option is checked before the model loads; a bad one exits with status 2 and one ``error:`` line that
names the rule and the fix.
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
    p.add_argument("--mask", help="mask image or video: white = regenerate (inpaint); resized with the video")
    p.add_argument("--mask-threshold", type=int, default=240,
                   help="8-bit value from which a mask pixel is regenerated (the reference's 240)")
    p.add_argument("--paste-kept", action="store_true",
                   help="paste the kept pixels of the input (mask black, start/end images) back into the output")
    p.add_argument("--strength", type=float, default=None, help="video-to-video strength in (0, 1] (default 0.70)")
    p.add_argument("--height", type=int, default=None, help="multiple of 16 (default: input's or model's size)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--size-from-image", type=int, default=None, metavar="BASE",
                   help="pick height/width from the start image's aspect ratio around BASE px (e.g. 512)")
    p.add_argument("--num-frames", type=int, default=None,
                   help="4k+1 (default: the model's: 17 for the toy model, 49 for released checkpoints; a longer "
                        "--video is cut to it; long video: 49)")
    p.add_argument("--start", type=int, default=0, help="--video: index of the first frame used (default 0)")
    step = p.add_mutually_exclusive_group()
    step.add_argument("--stride", type=int, default=None, help="--video: use every n-th frame (default 1)")
    step.add_argument("--sample-fps", type=float, default=None,
                      help="--video: sample the clip at this frame rate (at most the source's), e.g. 8")
    p.add_argument("--long", action="store_true", help="long video: segments with overlap and cross-fade")
    p.add_argument("--segment-frames", type=int, default=None,
                   help="long video: frames per segment (default the model's num_frames; the reference uses 25)")
    p.add_argument("--overlap", type=int, default=4)
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default the model's: 25 toy, 50 released)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance >= 1 (1: off; default the model's, 6.0)")
    p.add_argument("--guidance-rescale", type=float, default=None,
                   help="guidance rescale in [0, 1] (Lin et al. 2024; 0: plain guidance; default the model's)")
    p.add_argument("--sampler", default=None, help="sampler name (default the model's, ddim)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of the output (default: the rate of the --video frames used, else 8)")
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
    if not args.video and (args.start or args.stride is not None or args.sample_fps is not None):
        raise ValueError("--start, --stride and --sample-fps pick frames of --video; give --video")
    if args.long:
        if args.video:
            raise ValueError("--long continues from an image or from nothing, not from --video; pick the frames "
                             "of the clip with --start/--stride/--num-frames instead")
        return "long_video"
    if args.image:
        return "start_end_to_video" if args.end_image else "image_to_video"
    if args.video:
        return "inpaint" if args.mask else "video_to_video"
    if args.strength is not None:
        raise ValueError("--strength applies to video-to-video; give --video")
    return "text_to_video"


def _model_defaults(model: str | None):
    """The generation defaults of ``--model`` without loading weights (checking its files on the way)."""
    from .components import COMPONENT_PRESETS, DEFAULT_MODEL_DIR
    from .generation_defaults import RELEASED_DEFAULTS, load_generation_defaults
    from .validation import check_model_folder

    if model is None:
        model = str(DEFAULT_MODEL_DIR) if (DEFAULT_MODEL_DIR / "model_index.json").exists() else "tiny"
    if model in COMPONENT_PRESETS:
        return RELEASED_DEFAULTS
    folder = Path(model)
    if not folder.is_dir():
        raise ValueError(f"--model {model} is neither a model folder nor a preset ({', '.join(COMPONENT_PRESETS)}); "
                         "check the path")
    check_model_folder(folder)
    return load_generation_defaults(folder) or RELEASED_DEFAULTS


def _check_values(args: argparse.Namespace) -> None:
    """Every number and the output path, before any file is read or model loaded."""
    from . import validation as V

    V.check_size("--height", args.height)
    V.check_size("--width", args.width)
    if args.long:  # any length: segments of 4k+1 frames
        if args.num_frames is not None and args.num_frames < 1:
            raise ValueError(f"--num-frames must be >= 1 (got {args.num_frames}); e.g. --long --num-frames 120")
    else:
        V.check_num_frames(args.num_frames, "--num-frames")
    V.check_steps(args.steps)
    V.check_guidance(args.guidance)
    V.check_guidance_rescale(args.guidance_rescale)
    V.check_strength(args.strength)
    V.check_fps(args.fps, "--fps")
    V.check_seed(args.seed)
    V.check_frame_window(args.start, args.stride, args.sample_fps)
    V.check_prompt(args.prompt, "--prompt")
    if not 1 <= args.mask_threshold <= 255:
        raise ValueError(f"--mask-threshold is an 8-bit value in 1..255 (got {args.mask_threshold}); the reference "
                         "uses 240")
    if args.size_from_image is not None:
        if not args.image:
            raise ValueError("--size-from-image needs --image")
        if args.size_from_image < 16:
            raise ValueError(f"--size-from-image is the side around which the size is picked, >= 16 (got "
                             f"{args.size_from_image}); e.g. 512, or 64 for the toy model")
        if args.height is not None or args.width is not None:
            raise ValueError("give either --size-from-image or --height/--width, not both")
    if args.long:
        V.check_num_frames(args.segment_frames, "--segment-frames")
    V.check_output_path(args.out)
    if args.sampler is not None:
        from .samplers import SAMPLERS

        if args.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {args.sampler!r}; choose one of {sorted(SAMPLERS)}")


def _read_inputs(args: argparse.Namespace, model_frames: int) -> dict:
    """Check and read the input files: images whole, only the frames used of a video (and of a mask clip).

    Returns:
        ``dict(video=(F, H, W, 3) frames or None, mask=tensor (1 = regenerate) or None, fps=rate of the frames
        used or None)``.
    """
    import numpy as np

    from ..data.video_io import frame_indices, read_video_frames
    from . import validation as V
    from .inputs import as_mask

    sized = args.height is not None or args.width is not None or args.size_from_image is not None
    for name in ("image", "end_image"):
        if getattr(args, name):
            V.check_image_file(getattr(args, name), f"--{name.replace('_', '-')}")
    if args.image and not sized:  # the output takes the image's size: it must be usable
        V.check_input_size(*V.image_size(args.image), "image")
    if not args.video:
        return dict(video=None, mask=None, fps=None)
    info = V.check_video_file(args.video, "--video")
    mask_info = None
    if args.mask:  # checked before any frame is decoded
        mask_path = Path(args.mask)
        if mask_path.suffix.lower() in V.IMAGE_SUFFIXES:
            V.check_image_file(mask_path, "--mask")
        else:
            mask_info = V.check_video_file(mask_path, "--mask")
    if not sized:
        V.check_input_size(info["height"], info["width"], "video")
    indices, fps = frame_indices(info["num_frames"], info["fps"], args.start, args.stride, args.sample_fps,
                                 args.num_frames)
    if args.num_frames is None:
        used = (min(len(indices), model_frames) - 1) // 4 * 4 + 1  # 4k+1, at most the model's length
        if used != len(indices):
            print(f"--video {args.video}: {len(indices)} frames from frame {args.start} at {fps:g} fps; using the "
                  f"first {used} (the model takes 4k+1 frames, {model_frames} by default); choose others with "
                  f"--start, --stride/--sample-fps and --num-frames")
        indices = indices[:used]
    window = dict(start=args.start, stride=args.stride, sample_fps=args.sample_fps, num_frames=len(indices))
    video = read_video_frames(args.video, **window)[0]  # (F, H, W, 3) in [0, 1]
    mask = None
    if args.mask:
        if mask_info is None:  # one mask image for every frame
            mask = as_mask(mask_path, args.mask_threshold)
        else:  # a mask clip: the same frames as the video (a one-frame clip, e.g. a still GIF, for every frame)
            frames = read_video_frames(mask_path, num_frames=1)[0] if mask_info["num_frames"] == 1 else \
                read_video_frames(mask_path, **window)[0]
            mask = as_mask(np.round(frames * 255).astype(np.uint8), args.mask_threshold)
        V.check_mask_coverage(mask)
    return dict(video=video, mask=mask, fps=fps)


def _planned_output(args: argparse.Namespace, mode: str) -> Path:
    """Where the video will go; nothing is created until it is written (see ``_write``)."""
    if args.out:
        return Path(args.out)
    folder = Path("outputs") / "generate" / f"{time.strftime('%Y%m%d-%H%M%S')}-{mode}"
    suffix = 1
    while folder.exists():
        folder = folder.with_name(f"{folder.name.split('~')[0]}~{suffix}")
        suffix += 1
    return folder / "video.mp4"


def _write(path: Path, frames, fps: float, config: dict, own_folder: bool) -> None:
    """Write the video and its config; on failure remove what this run created (no empty run folders)."""
    import shutil

    from ..data.video_io import write_video

    created = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
    config_path = path.with_name("config.json" if own_folder else path.stem + ".json")
    try:
        write_video(path, frames, fps=fps)
        config_path.write_text(json.dumps(config, indent=2))
    except BaseException:
        for file in (path, config_path):
            file.unlink(missing_ok=True)
        if created:
            shutil.rmtree(created[-1], ignore_errors=True)  # the outermost folder this run made
        raise


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from .components import load_pipeline
    from .inputs import size_from_image

    # 1. Everything the user typed, then the files they named, then the model folder: no weights load before.
    mode = _mode(args)
    _check_values(args)
    defaults = _model_defaults(args.model)
    if mode == "long_video":
        from .long_video import plan_segments

        plan_segments(args.num_frames or 49, args.segment_frames or defaults.num_frames, args.overlap)
    if mode == "video_to_video":
        from .validation import check_strength_steps

        check_strength_steps(0.70 if args.strength is None else args.strength,
                             defaults.num_inference_steps if args.steps is None else args.steps)
    inputs = _read_inputs(args, defaults.num_frames)
    height, width = args.height, args.width
    if args.size_from_image:
        height, width = size_from_image(args.image, base_size=args.size_from_image)
    fps = args.fps or inputs["fps"] or 8.0
    if args.fps is None and inputs["fps"] is not None:
        print(f"output at {fps:g} fps, the rate of the frames used (--fps sets another)")

    # 2. Generate.
    pipe = load_pipeline(args.model)
    if args.sampler is not None:
        pipe.set_sampler(args.sampler)
    generator = torch.Generator().manual_seed(args.seed)
    common = dict(negative_prompt=args.negative_prompt, num_inference_steps=args.steps,
                  guidance_scale=args.guidance, guidance_rescale=args.guidance_rescale, generator=generator,
                  height=height, width=width)
    start = time.perf_counter()
    if mode == "long_video":
        segment_frames = args.segment_frames or pipe.generation_defaults.num_frames
        frames = pipe.long_video(args.prompt, args.num_frames or 49, segment_frames=segment_frames,
                                 overlap=args.overlap, image=args.image, end_image=args.end_image, **common)
    else:
        kept = dict(paste_kept=args.paste_kept)
        if mode in ("image_to_video", "start_end_to_video"):
            out = pipe.image_to_video(args.prompt, args.image, end_image=args.end_image,
                                      num_frames=args.num_frames, **kept, **common)
        elif mode == "video_to_video":
            strength = 0.70 if args.strength is None else args.strength
            out = pipe.video_to_video(args.prompt, inputs["video"], strength=strength, **common)
        elif mode == "inpaint":
            out = pipe.inpaint(args.prompt, inputs["video"], inputs["mask"], **kept, **common)
        else:
            out = pipe.text_to_video(args.prompt, num_frames=args.num_frames, **common)
        frames = out.frames[0]
    seconds = time.perf_counter() - start

    # 3. Write (the folder appears only now, and is removed again if writing fails).
    path = _planned_output(args, mode)
    config = {k: v for k, v in vars(args).items() if k != "func"}
    config.update(mode=mode, model=str(args.model or "default"), sampler=pipe.sampler, seconds=round(seconds, 2),
                  frames=list(frames.shape), output_fps=fps)
    _write(path, frames, fps, config, own_folder=not args.out)
    print(f"{mode}: {frames.shape[0]} frames {frames.shape[1]}x{frames.shape[2]} at {fps:g} fps in {seconds:.1f}s "
          f"-> {path}")
    return 0
