"""Animated GIFs of every mode from the default model, for the README (part of the toy-model recipe).

    .venv/bin/python experiments/toy-model/readme_media.py docs/media

Each GIF shows the input beside the output where there is one (the given frame or video, with the inpaint hole
drawn), upscaled 3x with nearest-neighbour pixels so a 64x96 clip is 288 px wide. Held-out render seeds; the
model's own defaults (64x96, 17 frames, 25 DDIM steps, guidance 6).
"""

import sys
from pathlib import Path

import numpy as np
import torch

from cogfun.data.toy import ToyClipSpec, render_clip
from cogfun.data.video_io import write_video
from cogfun.eval.benchmark import HeldOutClip, inpaint_box
from cogfun.pipelines.components import load_pipeline

SCALE = 3
out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/media")
out.mkdir(parents=True, exist_ok=True)
pipe = load_pipeline()
pipe.set_progress_bar_config(disable=True)
H, W, F = 64, 96, 17
spec = ToyClipSpec(kind="shape", shape="circle", colour="red", direction="right", background="grey", size=0.35)
clip = render_clip(spec, H, W, F, seed=10_000)  # held-out seed
top, bottom, left, right = inpaint_box(HeldOutClip(spec, 10_000), H, W, F)  # a box around the circle's whole path
mask = np.zeros((H, W), np.float32)
mask[top:bottom, left:right] = 1
hole = clip.copy()
hole[:, top:bottom, left:right] = 0.0  # what the model is given: the box blanked (the pipeline uses -1 = black)


def side_by_side(*videos: np.ndarray) -> np.ndarray:
    """Videos of one length next to each other with a 2-px white gap, upscaled SCALE x (nearest)."""
    gap = np.ones((F, H, 2, 3), np.float32)
    row = np.concatenate([part for v in videos for part in (v, gap)][:-1], axis=2)
    return row.repeat(SCALE, axis=1).repeat(SCALE, axis=2)


still = lambda image: np.repeat(image[None], F, axis=0)  # noqa: E731  a frame shown for the whole clip
prompt = "a red circle moving right on a grey background"
runs = {
    "text_to_video": (lambda g: pipe.text_to_video("a yellow triangle moving down on a black background", generator=g),
                      []),
    "image_to_video": (lambda g: pipe.image_to_video(prompt, clip[0], generator=g), [still(clip[0])]),
    "start_end_to_video": (lambda g: pipe.image_to_video(prompt, clip[0], end_image=clip[-1], generator=g),
                           [still(clip[0]), still(clip[-1])]),
    "video_to_video": (lambda g: pipe.video_to_video("a blue square moving right on a black background", clip,
                                                     strength=0.7, generator=g), [clip]),
    "inpaint": (lambda g: pipe.inpaint(prompt, clip, mask, generator=g), [hole]),
}
for name, (run, inputs) in runs.items():
    frames = run(torch.Generator().manual_seed(0)).frames[0]
    write_video(out / f"{name}.gif", side_by_side(*inputs, frames), fps=8)
    print(name, frames.shape)
long = pipe.long_video("a green cross moving left on a white background", 41, segment_frames=17, overlap=4,
                       height=H, width=W, generator=torch.Generator().manual_seed(0))
write_video(out / "long_video.gif", long.repeat(SCALE, axis=1).repeat(SCALE, axis=2), fps=8)
print("long_video", long.shape)
