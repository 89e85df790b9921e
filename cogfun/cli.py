"""The ``cogfun`` command: generate, smoke (and, as the kit grows, prepare, cache, train, eval, experiment).

Each subcommand is a thin shell over a package function; ``cogfun SUBCOMMAND --help`` documents it.
"""

from __future__ import annotations

import argparse
import sys
import time


def _smoke(args: argparse.Namespace) -> int:
    """Build a transformer preset with random weights and run one forward at a non-base grid."""
    import torch

    from .models.presets import build_transformer, count_parameters

    if args.height % 16 or args.width % 16:
        raise ValueError(f"height and width must be multiples of 16 (got {args.height}x{args.width}); try "
                         f"{args.height // 16 * 16}x{args.width // 16 * 16}")
    if (args.num_frames - 1) % 4:
        raise ValueError(f"num_frames must be 4k+1 (got {args.num_frames}); try {(args.num_frames - 1) // 4 * 4 + 1}")
    model = build_transformer(args.preset, meta=False, pos_embed_mode=args.pos_embed_mode)
    cfg = model.config
    frames = (args.num_frames - 1) // 4 + 1
    latents = torch.randn(1, frames, cfg.out_channels, args.height // 8, args.width // 8)
    inpaint = torch.zeros(1, frames, cfg.in_channels - cfg.out_channels, args.height // 8, args.width // 8)
    text = torch.randn(1, cfg.max_text_seq_length, cfg.text_embed_dim)
    start = time.perf_counter()
    with torch.no_grad():
        out = model(latents, text, torch.tensor([500]), inpaint_latents=inpaint).sample
    print(
        f"{args.preset}: {count_parameters(model) / 1e6:.2f}M parameters, pos_embed_mode={args.pos_embed_mode}, "
        f"{args.height}x{args.width}x{args.num_frames} -> latents {tuple(out.shape)} in "
        f"{time.perf_counter() - start:.2f}s"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cogfun", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (anywhere on the line; default: one error line)")
    sub = parser.add_subparsers(dest="command", required=True)

    smoke = sub.add_parser("smoke", help="one forward of a random transformer preset")
    smoke.add_argument("--preset", default="tiny")
    smoke.add_argument("--height", type=int, default=96)
    smoke.add_argument("--width", type=int, default=64)
    smoke.add_argument("--num-frames", type=int, default=9)
    smoke.add_argument("--pos-embed-mode", default="interpolate")
    smoke.set_defaults(func=_smoke)

    from .pipelines.command import add_generate_parser

    add_generate_parser(sub)
    from .experiments import add_experiment_parser

    add_experiment_parser(sub)
    from .eval.command import add_eval_parser

    add_eval_parser(sub)
    from .data.prepare import add_prepare_parser

    add_prepare_parser(sub)
    from .data.latent_cache import add_cache_parser

    add_cache_parser(sub)
    from .training.command import add_train_parser

    add_train_parser(sub)
    return parser


def _yaml_file(args: argparse.Namespace) -> str:
    """The YAML file a subcommand was given (train's config, eval's suite, experiment's name), for messages."""
    for name in ("config", "suite", "name"):
        value = getattr(args, name, None)
        if isinstance(value, str) and value.lower().endswith((".yaml", ".yml")):
            return value
    return "the YAML file"


def user_error(error: BaseException, args: argparse.Namespace) -> ValueError | None:
    """A user-caused failure as one ``ValueError`` naming the file (and the line, for YAML); None otherwise.

    ``ValueError`` passes as it is. A YAML syntax error names the file and line; a truncated safetensors file
    is named where the loader knows it (``cogfun.pipelines.validation.check_model_folder`` checks model folders
    before loading, so this is the fallback).
    """
    import yaml

    if isinstance(error, ValueError):
        return error
    if isinstance(error, yaml.YAMLError):
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        return ValueError(f"{_yaml_file(args)} is not valid YAML: {problem} at {where}; fix that line")
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - safetensors is a dependency
        SafetensorError = ()
    if isinstance(error, SafetensorError):
        return ValueError(f"a safetensors file could not be read ({error}); it is probably truncated: copy or "
                          "download it again")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run ``cogfun``; a bad input exits with 2 and one ``error:`` line (``--debug`` shows the traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, e.g. cogfun generate --debug ...
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as raised:  # noqa: BLE001 - only user errors are caught, the rest re-raised
        error = user_error(raised, args)
        if error is None or debug:
            raise
        print(f"cogfun {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
