"""The overfitting check of the toy recipe's method (issue 11): six fixed clips, one per colour; the transformer must
reach a low loss on them and regenerate each recognisably from its prompt. If it cannot, the fault is in the
method (data path, conditioning, sampler), not in the budget.

    .venv/bin/python experiments/toy-model/overfit_check.py [--steps 600] [--threads 1] [--init adaln-zero]
        [--lr 5e-4] [--max-grad-norm 1.0] [--t2v-prob 0.35] [--loss-weighting capped-snr] [--ema]

Uses the recipe's VAE and T5 (experiments/runs/toy-init/model) with a fresh transformer (seed 0, the given
initialisation) and the recipe's cache path (3 cached masks per clip). Writes into
experiments/runs/overfit-check/<init>-lr<lr>-clip<clip>-t2v<p>[-<weighting>]/: the run and, at every
step count of ``--eval-at`` and ``--steps``, ``result-<steps>.json`` (loss by block; the text-to-video x0 error by
timestep beside a background-only prediction's; per clip the detector's scores and PSNRs of text-to-video and
image-to-video) and ``grid-<steps>.png`` (per clip: the clip, text-to-video, image-to-video; frames 0, 8, 16).
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
from cogfun.models.initialisation import INITIALISATIONS
from cogfun.pipelines import CogVideoXFunPipeline
from cogfun.pipelines.components import write_initial_model
from cogfun.training.loss import LOSS_WEIGHTINGS
from cogfun.training.config import TransformerTrainConfig
from cogfun.training.trainer import train

DATA = Path("experiments/toy-model/data")
INIT = Path("experiments/runs/toy-init/model")
MASKS = [0.1, 0, 0.35, 0.25, 0.1, 0, 0, 0.1, 0.05, 0.05]  # the recipe's cached mask kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-at", type=int, nargs="*", default=[], help="also measure at these step counts")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init", choices=INITIALISATIONS, default="default")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--t2v-prob", type=float, default=0.35)
    parser.add_argument("--loss-weighting", choices=LOSS_WEIGHTINGS, default="uniform")
    parser.add_argument("--ema", action="store_true", help="export the EMA weights (diffusers' EMAModel, decay "
                        "min(0.9999, (1 + step) / (10 + step)))")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path("experiments/runs/overfit-check") / (
        f"{args.init}-lr{args.lr:g}-clip{args.max_grad_norm:g}-t2v{args.t2v_prob:g}"
        + ("" if args.loss_weighting == "uniform" else f"-{args.loss_weighting}") + ("-ema" if args.ema else ""))
    out.mkdir(parents=True, exist_ok=True)
    init = out / "init"  # the recipe's VAE and T5, a fresh transformer with the asked initialisation
    if not (init / "model_index.json").exists():
        write_initial_model(init, "toy-p1", vae_path=INIT / "vae", init=args.init)

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

    # 2. Their cache, and the transformer trained on it until it should know them by heart; measured at each of
    #    --eval-at (the run resumes from the previous stage's checkpoint: constant lr, so one run).
    cache_latents(out / "metadata.json", out / "cache", model=init, budget=150, base_size=[64, 80], max_frames=17,
                  store_std=True, inpaint_masks=3, mask_probabilities=MASKS, num_ratios=5, min_ratio=0.5,
                  max_ratio=2.0, progress=False)
    for steps in sorted(set(args.eval_at + [args.steps])):
        if (out / f"result-{steps}.json").exists():
            continue
        config = TransformerTrainConfig(
            name="run", output_dir=str(out), run_name="r", pretrained=str(init), latent_cache=str(out / "cache"),
            batch_size=6, max_steps=steps, learning_rate=args.lr, lr_scheduler="constant_with_warmup",
            lr_warmup_steps=20, max_grad_norm=args.max_grad_norm, t2v_prob=args.t2v_prob,
            loss_weighting=args.loss_weighting, use_ema=args.ema, checkpointing_steps=steps, num_threads=args.threads, cpu=True)
        run = train(config, resume=True)
        model = run / f"model-{steps}"
        (run / "model").rename(model)
        summary = measure(model, picked, out / f"grid-{steps}.png")
        losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()][:steps]
        block = max(1, len(losses) // 10)
        summary = dict(steps=steps, init=args.init, lr=args.lr, max_grad_norm=args.max_grad_norm,
                       t2v_prob=args.t2v_prob, loss_weighting=args.loss_weighting, ema=args.ema,
                       loss_blocks=[round(float(np.mean(losses[i:i + block])), 4) for i in range(0, len(losses), block)],
                       x0_error_by_timestep=x0_error_by_timestep(model, out / "cache"), **summary)
        (out / f"result-{steps}.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps({k: v for k, v in summary.items() if k != "clips"}, indent=1), flush=True)


def x0_error_by_timestep(model: Path, cache: Path) -> dict[str, float]:
    """Text-to-video x0 error of the six clips at fixed timesteps (one fixed noise draw), beside the error of the
    best prediction that knows only the background (``generalisation_gap.x0_errors``): at t = 999 the model sees
    pure noise and the prompt, so there it can only know what the prompt and memory give."""
    from safetensors.torch import load_file

    from cogfun.models.transformer import CogVideoXFunTransformer3DModel
    from generalisation_gap import x0_errors  # this folder's script: on sys.path when run as a script

    transformer = CogVideoXFunTransformer3DModel.from_pretrained(model / "transformer").eval()
    shard = load_file(next((cache).glob("*/shard-*.safetensors")))
    return x0_errors(transformer, shard["latents"], shard["prompt_embeds"], timesteps=(10, 100, 250, 500, 750, 900, 999))


def measure(model: Path, picked: list[dict], grid_path: Path) -> dict:
    """Regenerate each clip from its prompt (text-to-video) and from its first frame (image-to-video)."""
    pipe = CogVideoXFunPipeline.from_pretrained(model)
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
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(grid_path)
    return dict(t2v_colour=float(np.mean([r["t2v"]["colour_correct"] for r in results])),
                t2v_all=float(np.mean([r["t2v"]["all_correct"] for r in results])),
                i2v_direction=float(np.mean([r["i2v"]["direction_correct"] for r in results])),
                i2v_first_frame_psnr=float(np.mean([r["i2v_first_frame_psnr"] for r in results])),
                clips=results)


if __name__ == "__main__":
    main()
