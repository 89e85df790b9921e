#!/usr/bin/env bash
# The toy-model recipe: data -> VAE -> inpaint transformer -> cogfun/assets/toy-model, with cogfun alone.
# Deterministic for its seeds (data seed 0, model seeds 0). Measured on a 2-core CPU: 70 minutes in all; 63 of
# them training (VAE 5000 steps 25 min, transformer 4000 steps 37 min, two threads each), then evaluation and
# media (~6 min). Started 22:37:34, finished 23:47:00 on 2026-12-01, with a 24-item full benchmark (5.0 min); the
# 96-item one it now runs measured 14.6 min, so about 80 minutes in all.
#   bash experiments/toy-model/recipe.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
HERE=experiments/toy-model

# 1. Data: 1500 captioned toy clips of 17 frames at 64x64 / 64x96 / 96x64 / 96x96 / 128x128 (300 each); a quarter of
#    the shapes over photos. Inside the 150-token budget they train as 17-frame (64 px), 13-frame (96x96) and
#    5-frame (128x128) buckets.
if [ ! -f $HERE/data/metadata.json ]; then
  $PY -c "from cogfun.data.toy import write_toy_dataset; write_toy_dataset('$HERE/data', 1500, sizes=((64, 64, 17), (64, 96, 17), (96, 64, 17), (96, 96, 17), (128, 128, 17)), seed=0, photo_background_prob=0.25)"
fi

# 2. The small VAE.
$PY -m cogfun.training.command $HERE/vae.yaml --set run_name=recipe
VAE=experiments/runs/toy-vae/recipe/model

# 3. The inpaint transformer on the frozen VAE and T5.
$PY -m cogfun.training.command $HERE/dit.yaml --set run_name=recipe --set vae_path=$VAE
MODEL=experiments/runs/toy-dit/recipe/model

# 4. Ship it as the default model (transformer weights stored in float16 to stay under 25 MB; they load as
#    float32), with its provenance, and measure it.
rm -rf cogfun/assets/toy-model
$PY -c "import torch; from cogfun.pipelines import CogVideoXFunPipeline as P; p = P.from_pretrained('$MODEL'); p.transformer.to(torch.float16); p.save_pretrained('cogfun/assets/toy-model')"
cp $HERE/vae.yaml $HERE/dit.yaml cogfun/assets/toy-model/
$PY - "$(git rev-parse HEAD)" <<'EOF'
import json, sys
from pathlib import Path
from cogfun.training.metrics_log import read_metrics_log
def run(name):  # steps and summed step seconds of a training run, from its metrics.jsonl
    rows = read_metrics_log(f"experiments/runs/{name}/recipe/metrics.jsonl")
    return {"run": f"{name}/recipe", "steps": rows[-1]["step"], "train_minutes": round(sum(r["seconds"] for r in rows) / 60, 1)}
Path("cogfun/assets/toy-model/provenance.json").write_text(json.dumps(dict(
    recipe="experiments/toy-model/recipe.sh", commit=sys.argv[1], seed=0, vae=run("toy-vae"), transformer=run("toy-dit"),
    transformer_weights="float16 on disk, loaded as float32"), indent=1))
EOF
du -sh cogfun/assets/toy-model
$PY -c "import json; from cogfun.eval.benchmark import evaluate_suite; from cogfun.pipelines.components import load_pipeline; r = evaluate_suite(load_pipeline(), 'quick', ['subsets=[vae, i2v, start_end, t2v]']); json.dump({'suite': 'quick', 'overrides': ['subsets=[vae, i2v, start_end, t2v]'], 'metrics': r['metrics']}, open('cogfun/assets/toy-model/eval_quick.json', 'w'), indent=1)"
$PY -m cogfun.cli eval --suite full --out experiments/runs/eval

# 5. Keep the full benchmark beside the recipe (the README's results table), the training curves and media.
RUN=$(ls -d experiments/runs/eval/*-full | tail -1)
mkdir -p $HERE/results && cp $RUN/metrics.json $RUN/results.md $HERE/results/
$PY $HERE/training_curves.py docs/media
$PY $HERE/readme_media.py docs/media
