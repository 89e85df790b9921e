"""Animated GIFs of every mode from the default model, for the README (part of the toy-model recipe).

    .venv/bin/python experiments/toy-model/readme_media.py docs/media
"""

import sys
from pathlib import Path

import numpy as np
import torch

from cogfun.data.toy import ToyClipSpec, render_clip
from cogfun.data.video_io import write_video
from cogfun.pipelines.components import load_pipeline

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/media")
out.mkdir(parents=True, exist_ok=True)
pipe = load_pipeline()
pipe.set_progress_bar_config(disable=True)
H, W, F, STEPS = 64, 96, 17, 25
spec = ToyClipSpec(kind="shape", shape="circle", colour="red", direction="right", background="grey")
clip = render_clip(spec, H, W, F, seed=10_000)  # held-out seed
end = render_clip(ToyClipSpec(kind="shape", shape="square", colour="blue", direction="left", background="black"),
                  H, W, F, seed=10_001)
mask = np.zeros((H, W), np.float32)
mask[16:48, 32:64] = 1

runs = {
    "text_to_video": lambda g: pipe.text_to_video("a yellow triangle moving down on a black background",
                                                  num_frames=F, height=H, width=W, generator=g),
    "image_to_video": lambda g: pipe.image_to_video("a red circle moving right on a grey background", clip[0],
                                                    num_frames=F, generator=g),
    "start_end_to_video": lambda g: pipe.image_to_video("a red circle moving right on a grey background", clip[0],
                                                        end_image=clip[-1], num_frames=F, generator=g),
    "video_to_video": lambda g: pipe.video_to_video("a blue square moving left on a black background", clip,
                                                    strength=0.7, generator=g),
    "inpaint": lambda g: pipe.inpaint("a red circle moving right on a grey background", clip, mask, generator=g),
}
for name, run in runs.items():
    frames = run(torch.Generator().manual_seed(0)).frames[0]
    write_video(out / f"{name}.gif", frames, fps=8)
    print(name, frames.shape)
long = pipe.long_video("a green cross moving left on a white background", 41, segment_frames=17, overlap=4,
                       height=H, width=W, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0))
write_video(out / "long_video.gif", long, fps=8)
print("long_video", long.shape)
