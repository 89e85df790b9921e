"""Training curves of the toy-model recipe's two runs, for the README (part of the recipe).

    .venv/bin/python experiments/toy-model/training_curves.py docs/media

Reads the ``metrics.jsonl`` of the recipe's runs in ``experiments/runs``: ``toy-vae/recipe`` (the VAE on mixed clips),
``toy-vae/recipe-plain`` (the VAE on the transformer's clips) and ``toy-dit/recipe`` (the transformer), and writes
``toy_vae_training.png`` and ``toy_vae_plain_training.png`` (reconstruction L1 per step) and ``toy_dit_training.png``
(v-prediction loss per step, coloured by bucket). A VAE run whose weights were carried over from an earlier recipe
(``VAE_FROM``) has no log here: its existing figure is kept.
"""

import sys
from pathlib import Path

from cogfun.training.metrics_log import plot_loss_curve, read_metrics_log

out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/media")
out.mkdir(parents=True, exist_ok=True)
runs = Path("experiments/runs")

for run, figure, what in (("recipe", "toy_vae_training.png", "mixed clips"),
                          ("recipe-plain", "toy_vae_plain_training.png", "the transformer's clips")):
    log = runs / "toy-vae" / run / "metrics.jsonl"
    if log.is_file():
        vae = read_metrics_log(log)
        fig = plot_loss_curve(vae, key="l1", window=100, by_bucket=False, log_scale=True,
                              title=f"toy VAE on {what}: reconstruction L1 per step ({len(vae)} steps)")
        fig.savefig(out / figure, dpi=110)
        print(f"wrote {out / figure}")
    else:  # the weights were carried over from an earlier recipe run: its curve is already in docs/media
        print(f"no VAE run in {log.parent}: keeping the existing {figure}")

dit = read_metrics_log(runs / "toy-dit/recipe/metrics.jsonl")
fig = plot_loss_curve(dit, key="loss", window=100, by_bucket=True, log_scale=True,
                      title=f"toy inpaint transformer: v-prediction MSE per step ({len(dit)} steps)")
fig.savefig(out / "toy_dit_training.png", dpi=110)
print(f"wrote {out / 'toy_dit_training.png'}")
