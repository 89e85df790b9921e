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
source $HERE/stages.sh
transformer_data  # the recipe's stages 1, 3 and 4 on the shipped VAE
VAE=$RUNS/toy-vae/reused
if [ ! -f $VAE/vae/config.json ]; then mkdir -p $VAE && cp -r cogfun/assets/toy-model/vae $VAE/; fi
initial_model $VAE
[ -f $RUNS/toy-cache/cache.json ] || latent_cache
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
