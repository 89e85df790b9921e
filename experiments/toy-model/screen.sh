#!/usr/bin/env bash
# Screen a training lever in a short run, against the recorded short run of the shipped recipe.
#
#   bash experiments/toy-model/screen.sh NAME [--set key=value ...]
#   bash experiments/toy-model/screen.sh object-weight-5 --set object_weight=5
#
# Trains the recipe's transformer (dit.yaml) for 1500 steps (its cosine schedule compressed to 1500) with the given
# overrides on the recipe's initial model and latent cache (experiments/runs/toy-init and toy-cache, built on the
# shipped VAE when missing: the recipe's stages 1, 3 and 4, about 6 min idle, 15 on a slow evening), ships it to
# experiments/runs/candidate-screen1500-NAME, evaluates the `t2v` and `i2v` subsets of the full suite (where what it
# is told shows: object, colour, shape, direction) and compares it item by item with the baseline record
# results/pilots/eval-screen1500-uniform.json (the same 1500 steps with no override: NAME=uniform and no --set).
# About 36 min of training and 10 min of evaluation on a slow evening of this 2-core CPU (1.4 s a step), about half
# that on an idle one. Resumable: rerun the same command.
# A screen tells which levers deserve a full 7000-step pilot; it does not replace one (DIAGNOSIS.md section 14).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
HERE=experiments/toy-model
RUNS=experiments/runs
if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
  echo "usage: bash $HERE/screen.sh NAME [--set key=value ...]" >&2
  exit 2
fi
NAME=$1
shift
INIT=$RUNS/toy-init/model
if [ ! -f $INIT/model_index.json ]; then  # the recipe's stages 1 and 3, on the shipped VAE
  if [ ! -f $HERE/data/metadata.json ]; then
    $PY -c "from cogfun.data.toy import write_toy_dataset; write_toy_dataset('$HERE/data', 2400, sizes=((64, 96, 17), (96, 64, 17), (64, 96, 17), (64, 64, 17)), seed=0, ext='.png', photos=(), kinds=('shape',))"
  fi
  mkdir -p $RUNS/toy-vae/reused && cp -r cogfun/assets/toy-model/vae $RUNS/toy-vae/reused/
  $PY -c "from cogfun.pipelines.components import write_initial_model; write_initial_model('$INIT', 'toy-p1', vae_path='$RUNS/toy-vae/reused', num_layers=8)"
fi
if [ ! -f $RUNS/toy-cache/cache.json ]; then  # the recipe's stage 4 (resumable shard by shard)
  $PY -m cogfun.cli cache $HERE/data/metadata.json $RUNS/toy-cache --model $INIT --budget 150 --base-size 64 80 \
    --max-frames 17 --num-ratios 5 --min-ratio 0.5 --max-ratio 2.0 --store-std --inpaint-masks 3 \
    --mask-probabilities 0.1 0 0.35 0.25 0.1 0 0 0.1 0.05 0.05 --shard-size 200
fi
RUN=screen1500-$NAME
if [ ! -f $RUNS/toy-dit/$RUN/model/model_index.json ]; then  # trained already: skip
  $PY -m cogfun.training.command $HERE/dit.yaml --set run_name=$RUN --set max_steps=1500 \
    --set pretrained=$RUNS/toy-init/model --set latent_cache=$RUNS/toy-cache "$@" --resume
fi
CANDIDATE=$RUNS/candidate-$RUN
if [ ! -f $CANDIDATE/model_index.json ]; then
  $PY $HERE/ship.py $RUNS/toy-dit/$RUN/model $CANDIDATE --run $RUN --no-quick-eval
fi
$PY -m cogfun.cli eval --model $CANDIDATE --suite full --subset t2v i2v --out $RUNS/eval-$RUN
RECORD=$(ls -d $RUNS/eval-$RUN/*-full | tail -1)/metrics.json
echo "eval record: $RECORD"
BASELINE=$HERE/results/pilots/eval-screen1500-uniform.json
if [ "$NAME" = uniform ]; then
  [ -f $BASELINE ] || cp "$RECORD" $BASELINE  # the first baseline becomes the record
elif [ -f $BASELINE ]; then
  $PY $HERE/compare_evals.py $BASELINE "$RECORD" --names uniform "$NAME"
fi
