"""The ``cogfun train`` command: ``cogfun train CONFIG.yaml [--set key=value ...] [--resume [RUN_DIR]]``.

A thin shell over ``cogfun.training.trainer.train`` (the loop of VideoX-Fun
``scripts/cogvideox_fun/train.py``). The YAML holds ``kind: transformer`` (the inpaint DiT) or
``kind: vae`` (the small VAE) plus any fields of ``TransformerTrainConfig`` /
``VAETrainConfig``; ``--set`` overrides them with type checks. Runs also work under
``accelerate launch ... -m cogfun.training.command CONFIG.yaml``.

A toy transformer config::

    kind: transformer
    name: toy-dit
    metadata: data/toy/metadata.json
    transformer_preset: toy
    vae_path: experiments/runs/toy-vae/RUN/model/vae
    stages: [[0, 80]]          # 64x64x17 = 5 x 4 x 4 latent patches
    base_sizes: [64]
    max_frames: 17
    batch_size: 4
    learning_rate: 2.0e-4
    max_steps: 1000
    checkpointing_steps: 100
    cpu: true

A toy VAE config::

    kind: vae
    name: toy-vae
    metadata: data/toy/metadata.json
    vae_preset: toy
    crop_frames: 9
    crop_height: 32
    crop_width: 32
    batch_size: 4
    max_steps: 500
    cpu: true
"""

from __future__ import annotations

import argparse
import sys


def _run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .trainer import train

    config = load_config(args.config, args.set or [])
    run_dir = train(config, resume=args.resume)
    print(run_dir)
    return 0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config with kind: transformer|vae and its fields")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", default=[],
        help="override a config field (repeatable), e.g. --set max_steps=20 --set lora=true",
    )
    parser.add_argument(
        "--resume", nargs="?", const="latest", default=None, metavar="RUN_DIR",
        help="resume the latest checkpoint of the run named run_name (or of the latest run), or of RUN_DIR",
    )
    parser.set_defaults(func=_run)


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``train`` on a ``cogfun`` sub-parser set (``parser.add_subparsers()``).

    Args:
        subparsers: the object ``argparse.ArgumentParser.add_subparsers`` returned.

    Returns:
        the ``train`` parser; its ``func`` default runs the training.
    """
    parser = subparsers.add_parser(
        "train", help="train the inpaint transformer or the small VAE from a YAML config",
        description=__doc__.splitlines()[0],
    )
    _add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m cogfun.training.command CONFIG.yaml [--set ...] [--resume]``."""
    parser = argparse.ArgumentParser(prog="cogfun train", description=__doc__.splitlines()[0])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as error:
        print(f"cogfun train: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
