"""The overfitting check of the toy recipe's method (issue 11): six fixed clips, one per colour; the transformer must
reach a low loss on them and regenerate each recognisably from its prompt. If it cannot, the fault is in the
method (data path, conditioning, sampler), not in the budget.

    .venv/bin/python experiments/toy-model/overfit_check.py [--steps 600] [--threads 1]

Uses the recipe's initial model (experiments/runs/toy-init/model: the recipe's VAE and T5, a fresh transformer)
and the recipe's cache path (3 cached masks per clip, 35% text-to-video). Writes into
experiments/runs/overfit-check/<steps>/: the run, ``result.json`` (loss by block, per clip the detector's scores
and PSNRs of text-to-video and image-to-video) and ``grid.png`` (per clip: the clip, text-to-video,
image-to-video; frames 0, 8, 16).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cogfun.data.latent_cache import cache_latents
from cogfun.data.video_io import read_video
from cogfun.eval import metrics as M
from cogfun.eval.toy_detector import score_against_caption
from cogfun.pipelines import CogVideoXFunPipeline
from cogfun.training.config import TransformerTrainConfig
from cogfun.training.trainer import train

DATA = Path("experiments/toy-model/data")
INIT = Path("experiments/runs/toy-init/model")
MASKS = [0.1, 0, 0.35, 0.25, 0.1, 0, 0, 0.1, 0.05, 0.05]  # the recipe's cached mask kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path("experiments/runs/overfit-check") / str(args.steps)
    out.mkdir(parents=True, exist_ok=True)

    # 1. Six 64x96 moving clips of the recipe's data, one per colour.
    picked, colours = [], set()
    for entry in json.loads((DATA / "metadata.json").read_text()):
        spec = entry["spec"]
        if (entry["height"], entry["width"]) == (64, 96) and spec["direction"] != "still" and spec["colour"] not in colours:
            colours.add(spec["colour"])
            picked.append(dict(entry, file_path=str((DATA / entry["file_path"]).resolve())))
        if len(picked) == 6:
            break
    (out / "metadata.json").write_text(json.dumps(picked, indent=1))

    # 2. Their cache, and the transformer trained on it until it should know them by heart.
    cache_latents(out / "metadata.json", out / "cache", model=INIT, budget=150, base_size=[64, 80], max_frames=17,
                  store_std=True, inpaint_masks=3, mask_probabilities=MASKS, num_ratios=5, min_ratio=0.5,
                  max_ratio=2.0, progress=False)
    config = TransformerTrainConfig(
        name="run", output_dir=str(out), run_name="r", pretrained=str(INIT), latent_cache=str(out / "cache"),
        batch_size=6, max_steps=args.steps, learning_rate=5e-4, lr_scheduler="constant_with_warmup",
        lr_warmup_steps=20, max_grad_norm=1.0, t2v_prob=0.35, checkpointing_steps=10**6,
        num_threads=args.threads, cpu=True)
    run = train(config, resume=True)
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    block = max(1, len(losses) // 10)
    loss_blocks = [round(float(np.mean(losses[i:i + block])), 4) for i in range(0, len(losses), block)]

    # 3. Regenerate each clip from its prompt (text-to-video) and from its first frame (image-to-video).
    pipe = CogVideoXFunPipeline.from_pretrained(run / "model")
    pipe.set_progress_bar_config(disable=True)
    results, rows = [], []
    for entry in picked:
        clip, _ = read_video(entry["file_path"])
        common = dict(height=64, width=96, num_frames=17, num_inference_steps=25, guidance_scale=6.0)
        t2v = pipe.text_to_video(entry["text"], generator=torch.Generator().manual_seed(0), **common).frames[0]
        i2v = pipe.image_to_video(entry["text"], clip[0], generator=torch.Generator().manual_seed(0),
                                  **common).frames[0]
        results.append(dict(
            text=entry["text"],
            t2v={k: bool(v) for k, v in score_against_caption(t2v, entry["spec"]).items()},
            t2v_psnr=round(M.psnr(t2v, clip), 2),
            i2v={k: bool(v) for k, v in score_against_caption(i2v, entry["spec"]).items()},
            i2v_psnr=round(M.psnr(i2v, clip), 2), i2v_first_frame_psnr=round(M.first_frame_psnr(i2v, clip[0]), 2),
        ))
        rows.append(np.concatenate([np.concatenate([v[k] for k in (0, 8, 16)], 1) for v in (clip, t2v, i2v)], 1))
    grid = (np.concatenate(rows, 0) * 255).clip(0, 255).astype(np.uint8)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out / "grid.png")
    summary = dict(steps=args.steps, loss_blocks=loss_blocks, clips=results,
                   t2v_colour=float(np.mean([r["t2v"]["colour_correct"] for r in results])),
                   t2v_all=float(np.mean([r["t2v"]["all_correct"] for r in results])),
                   i2v_direction=float(np.mean([r["i2v"]["direction_correct"] for r in results])))
    (out / "result.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "clips"}, indent=1))


if __name__ == "__main__":
    main()
