"""Why does inpainting miss the named object? The benchmark's inpaint items, each failure taken apart.

The ``inpaint`` subset of ``cogfun eval --suite full`` regenerates a box that covers the object's whole track, so
nothing of the object is left outside the hole: only the caption says what belongs there. For the same items (same
clips, boxes, seeds and settings) this script runs the caption and, as a control, the empty prompt, and reads each
generated hole with the benchmark's detector: is any object there, in the caption's colour, in enough frames, inside
the box? An object in the named colour far more often with the caption than without means the text is used in the
hole; no object at all means the model fills the hole with background.

    .venv/bin/python experiments/toy-model/inpaint_check.py cogfun/assets/toy-model --out results/pilots/inpaint-check.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cogfun.eval.benchmark import EVAL_SUITES, _generator, eval_size, held_out_shape_specs, inpaint_box, read_hole
from cogfun.pipelines.components import load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model folder, e.g. cogfun/assets/toy-model")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the per-item readings and summary")
    parser.add_argument("--limit", type=int, default=None, help="only the first N items (a quick look)")
    args = parser.parse_args()

    config = EVAL_SUITES["full"]
    pipe = load_pipeline(args.model, quiet=True)
    pipe.set_sampler(config.sampler)
    pipe.set_progress_bar_config(disable=True)
    height, width = eval_size(pipe, config)
    clips = held_out_shape_specs(config.num_prompts, config.prompt_seed)
    items = [(i, clip, seed) for i, clip in enumerate(clips) for seed in config.seeds]
    items = items[: args.limit]
    records = []
    for index, clip, seed in tqdm(items, desc="inpaint check"):
        reference = clip.render(height, width, config.num_frames)
        box = inpaint_box(clip, height, width, config.num_frames)
        mask = np.zeros((height, width), np.float32)
        mask[box[0]:box[1], box[2]:box[3]] = 1.0
        row = dict(index=index, seed=seed, caption=clip.caption, box=list(box),
                   box_fraction=round(float(mask.mean()), 3))
        for name, prompt in (("caption", clip.caption), ("empty", "")):
            out = pipe.inpaint(prompt, reference, mask, num_frames=config.num_frames, height=height, width=width,
                               num_inference_steps=config.steps, guidance_scale=config.guidance, output_type="np",
                               generator=_generator(pipe, seed))
            row[name] = read_hole(out.frames[0], box, clip.spec.colour)
        records.append(row)

    def rate(name: str, key: str) -> float:
        return round(float(np.mean([r[name][key] for r in records])), 3)

    summary = {name: {key: rate(name, key) for key in ("found", "right_colour", "passed")}
               for name in ("caption", "empty")}
    for name in ("caption", "empty"):
        found = [r[name] for r in records if r[name]["found"]]
        summary[name]["right_colour_given_found"] = round(float(np.mean([f["right_colour"] for f in found])), 3) if found else None
        summary[name]["seen_given_found"] = round(float(np.mean([f["seen"] for f in found])), 3) if found else None
        summary[name]["inside_given_found"] = round(float(np.mean([f["inside"] for f in found])), 3) if found else None
    summary["n"] = len(records)
    summary["mean_box_fraction"] = round(float(np.mean([r["box_fraction"] for r in records])), 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(model=str(args.model), summary=summary, records=records), indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
