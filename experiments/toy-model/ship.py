"""Ship a trained toy model as the default model (step 6 of recipe.sh).

    .venv/bin/python experiments/toy-model/ship.py RUN/model cogfun/assets/toy-model [--recipe-start EPOCH]
    .venv/bin/python experiments/toy-model/ship.py experiments/runs/toy-dit/NAME/model experiments/runs/candidate-NAME \
        --run NAME --no-quick-eval      # a pilot, as a model folder to evaluate

Writes the model folder (transformer weights in float16 to keep the folder small; they load as float32), its
``generation_defaults.json`` (the cache's bucket sizes as ``trained_sizes``; 64x96x17, 25 DDIM steps, guidance 6),
the training configs (with ``--run``, also that run's resolved ``config.yaml`` as ``dit-run.yaml``),
``provenance.json`` (commit, seeds, steps, minutes, sizes) and the quick-eval record ``eval_quick.json``.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from cogfun.eval.benchmark import evaluate_suite
from cogfun.pipelines import CogVideoXFunPipeline
from cogfun.pipelines.generation_defaults import GenerationDefaults
from cogfun.source_state import source_state
from cogfun.training.metrics_log import read_metrics_log

HERE = Path(__file__).resolve().parent
RUNS = Path("experiments/runs")
QUICK_OVERRIDES = ["subsets=[vae, i2v, start_end, t2v]"]


def run_summary(name: str, part: str, run: str = "recipe") -> dict:
    """Steps and summed step time of a recipe training run (``RUNS/name/run``), from its metrics.jsonl; for a stage
    whose weights were carried over from an earlier recipe run (no metrics here), that run's record ``part`` from the
    shipped provenance, marked ``"reused"``."""
    path = RUNS / name / run / "metrics.jsonl"
    if not path.is_file():
        previous = json.loads((Path("cogfun/assets/toy-model") / "provenance.json").read_text())
        record = previous[part]
        return {**record, "reused": record.get("reused", f"weights of the recipe run at commit {previous['commit']}")}
    rows = read_metrics_log(path)
    return {"run": f"{name}/{run}", "steps": rows[-1]["step"],
            "train_minutes": round(sum(r["seconds"] for r in rows) / 60, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the trained model folder (RUN/model)")
    parser.add_argument("out", help="where the default model goes (replaced)")
    parser.add_argument("--recipe-start", type=int, default=None, help="recipe start time (epoch seconds)")
    parser.add_argument("--run", default="recipe",
                        help="the transformer's run name under experiments/runs/toy-dit (default: recipe)")
    parser.add_argument("--no-quick-eval", action="store_true", help="skip the quick-eval record")
    args = parser.parse_args()
    out = Path(args.out)
    run_config = RUNS / "toy-dit" / args.run / "config.yaml"
    if args.run != "recipe" and not run_config.is_file():
        raise SystemExit(f"{run_config} is missing: --run names a folder of experiments/runs/toy-dit that holds a run")
    runs = {"vae": run_summary("toy-vae", "vae"),  # before the old folder goes
            "vae_plain": run_summary("toy-vae", "vae_plain", "recipe-plain"),
            "transformer": run_summary("toy-dit", "transformer", args.run)}

    pipe = CogVideoXFunPipeline.from_pretrained(args.model)
    runs["transformer"]["parameters_millions"] = round(sum(p.numel() for p in pipe.transformer.parameters()) / 1e6, 1)
    runs["transformer"]["num_layers"] = int(pipe.transformer.config.num_layers)
    cache = json.loads((RUNS / "toy-cache" / "cache.json").read_text())
    sizes = [[int(v) for v in key.split("x")] for key in cache["buckets"]]  # HxWxF
    pipe.generation_defaults = GenerationDefaults(
        height=64, width=96, num_frames=17, num_inference_steps=25, guidance_scale=6.0, sampler="ddim",
        trained_sizes=tuple(tuple(s) for s in sizes),
    )
    pipe.transformer.to(torch.float16)
    if out.exists():
        shutil.rmtree(out)
    pipe.save_pretrained(out)
    for name in ("vae.yaml", "vae-plain.yaml", "dit.yaml"):
        shutil.copy(HERE / name, out / name)
    if args.run != "recipe":
        shutil.copy(run_config, out / "dit-run.yaml")

    source = source_state(HERE)  # the commit, and whether the checkout differed from it
    provenance = dict(
        recipe="experiments/toy-model/recipe.sh", commit=source["commit"], commit_dirty=source["dirty"], seed=0,
        data=dict(clips=cache["clips"], buckets=cache["buckets"], world="shapes over plain backgrounds"),
        **runs,
        cache=dict(inpaint_masks=cache.get("inpaint_masks"), mask_probabilities=cache.get("mask_probabilities")),
        transformer_weights="float16 on disk, loaded as float32",
    )
    if args.recipe_start:
        provenance["recipe_minutes_to_ship"] = round((time.time() - args.recipe_start) / 60, 1)
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n")

    if args.no_quick_eval:
        print(f"shipped {args.model} -> {out} (no quick-eval record)")
        return
    shipped = CogVideoXFunPipeline.from_pretrained(out)
    result = evaluate_suite(shipped, "quick", QUICK_OVERRIDES)
    (out / "eval_quick.json").write_text(json.dumps(
        {"suite": "quick", "overrides": QUICK_OVERRIDES, "metrics": result["metrics"]}, indent=1) + "\n")
    print(f"shipped {args.model} -> {out}")


if __name__ == "__main__":
    main()
