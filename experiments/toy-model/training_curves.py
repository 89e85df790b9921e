"""Training curves of the toy-model recipe's two runs, for the README (part of the recipe).

    .venv/bin/python experiments/toy-model/training_curves.py docs/media

Reads ``experiments/runs/toy-vae/recipe/metrics.jsonl`` and ``experiments/runs/toy-dit/recipe/metrics.jsonl``
and writes ``toy_vae_training.png`` (reconstruction L1 per step) and ``toy_dit_training.png``
(v-prediction loss per step, coloured by bucket).
"""

import sys
from pathlib import Path

from cogfun.training.metrics_log import plot_loss_curve, read_metrics_log

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/media")
out.mkdir(parents=True, exist_ok=True)
runs = Path("experiments/runs")

if (runs / "toy-vae/recipe/metrics.jsonl").is_file():
    vae = read_metrics_log(runs / "toy-vae/recipe/metrics.jsonl")
    fig = plot_loss_curve(vae, key="l1", window=100, by_bucket=False, log_scale=True,
                          title=f"toy VAE: reconstruction L1 per step ({len(vae)} steps)")
    fig.savefig(out / "toy_vae_training.png", dpi=110)
else:  # the VAE's weights were carried over from an earlier recipe run: its curve is already in docs/media
    print("no VAE run in experiments/runs/toy-vae/recipe: keeping the existing toy_vae_training.png")

dit = read_metrics_log(runs / "toy-dit/recipe/metrics.jsonl")
fig = plot_loss_curve(dit, key="loss", window=100, by_bucket=True, log_scale=True,
                      title=f"toy inpaint transformer: v-prediction MSE per step ({len(dit)} steps)")
fig.savefig(out / "toy_dit_training.png", dpi=110)
print(f"wrote {out / 'toy_vae_training.png'} and {out / 'toy_dit_training.png'}")
