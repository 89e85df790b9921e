# The recipe's stages that other scripts share, as shell functions (sourced by recipe.sh and screen.sh; run from the
# repository root with PY, HERE and RUNS set). Each skips what is already done, so a rerun resumes.

# The transformer's 2400 clips of shapes over plain backgrounds, 17 frames at 64x96 (half), 96x64 and 64x64, as
# lossless PNG frames (seed 0).
transformer_data() {
  if [ ! -f $HERE/data/metadata.json ]; then
    $PY -c "from cogfun.data.toy import write_toy_dataset; write_toy_dataset('$HERE/data', 2400, sizes=((64, 96, 17), (96, 64, 17), (64, 96, 17), (64, 64, 17)), seed=0, ext='.png', photos=(), kinds=('shape',))"
  fi
}

# The initial model folder $RUNS/toy-init/model from the VAE in folder $1: that VAE + the toy T5 and tokenizer + a
# random transformer (seed 0; the toy-p1 preset with 8 layers). An existing folder holding another VAE stops the
# script (its cache was encoded with that VAE).
initial_model() {
  local vae=$1 init=$RUNS/toy-init/model
  if [ -f $init/model_index.json ] && ! cmp -s "$vae/vae/diffusion_pytorch_model.safetensors" "$init/vae/diffusion_pytorch_model.safetensors"; then
    echo "$init (and the cache $RUNS/toy-cache encoded with it) hold another VAE than $vae; move both aside to rebuild" >&2
    exit 2
  fi
  if [ ! -f $init/model_index.json ]; then
    $PY -c "from cogfun.pipelines.components import write_initial_model; write_initial_model('$init', 'toy-p1', vae_path='$vae', num_layers=8)"
  fi
}

# The latent cache $RUNS/toy-cache of the transformer's clips, encoded with the initial model's VAE and T5: latents
# (posterior mean and std), prompt embeddings and the inpaint latents of 3 random masks per clip (kinds: box, keep
# first frames, keep first and last, box over a span, ellipse, circle, random frames). Resumable shard by shard.
latent_cache() {
  $PY -m cogfun.cli cache $HERE/data/metadata.json $RUNS/toy-cache --model $RUNS/toy-init/model --budget 150 \
    --base-size 64 80 --max-frames 17 --num-ratios 5 --min-ratio 0.5 --max-ratio 2.0 --store-std --inpaint-masks 3 \
    --mask-probabilities 0.1 0 0.35 0.25 0.1 0 0 0.1 0.05 0.05 --shard-size 200
}
