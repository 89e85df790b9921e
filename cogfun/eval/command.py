"""``cogfun eval``: benchmark a pipeline on held-out toy prompts, seeds and photos (``cogfun.eval.benchmark``).

Examples::

    cogfun eval                                   # the default model, the "full" suite
    cogfun eval --model path/to/checkpoint --out experiments/runs/eval
    cogfun eval --model tiny --suite smoke --subset vae t2v --set num_prompts=4 --set "seeds=[1, 2]"
    cogfun eval --suite experiments/runs/eval/<run>/config.yaml   # rerun a recorded config

``--model`` is a checkpoint folder (released diffusers layout), a component preset (``tiny``, ``toy``:
random weights) or nothing (the trained default model). ``--suite`` is ``full``, ``quick``, ``smoke`` or a
YAML file of ``EvalConfig`` fields; ``--set key=value`` overrides any field.

Every run writes into a **new** folder ``OUT/<time>-<suite>/`` (``-2``, ``-3``... when taken; an existing
run is never overwritten):

- ``metrics.json``: ``metrics`` (flat ``"subset/metric"`` floats, each mean with its standard error
  ``"subset/metric_se"``; ``null`` where undefined), ``errors``
  (what could not be measured and why, e.g. ``"unseen/truncate"`` at a grid larger than its table), ``targets``
  (issue 5's targets met or not), ``records`` (one per generated item), the resolved ``config``, ``model``,
  ``commit`` and ``dirty`` (``cogfun.source_state`` of the cogfun source tree before the run), ``seconds`` per subset,
  ``device``, ``torch`` and ``started``;
- ``config.yaml``: the resolved config (``--suite`` reads it back);
- ``results.md``: the headline table (also printed) and the full table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ..source_state import source_state

DEFAULT_OUT = "experiments/runs/eval"


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``eval`` on an argparse subparsers object; its func(args) returns an exit code."""
    p = subparsers.add_parser(
        "eval", help="benchmark a model on held-out toy prompts, seeds and photos", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=None, help="checkpoint folder or component preset (default: the toy model)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"root of run folders (default {DEFAULT_OUT})")
    p.add_argument("--suite", default="full", help="full, quick, smoke, or a YAML file of EvalConfig fields")
    p.add_argument("--subset", nargs="+", default=None,
                   help="run only these subsets (vae, i2v, start_end, t2v, long, unseen, photos)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an EvalConfig field (repeatable), e.g. --set num_prompts=4")
    p.add_argument("--device", default="auto", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--model-seed", type=int, default=0, help="init seed of a component preset's random weights")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_eval)
    return p


# ------------------------------------------------------------------------------------------------
# Run records
# ------------------------------------------------------------------------------------------------


def new_run_folder(root: str | Path, name: str) -> Path:
    """Create and return ``root/<YYYYmmdd-HHMMSS>-<name>``, or ``...-2``, ``-3``, ... if taken."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    for k in range(1, 10_000):
        folder = root / (stem if k == 1 else f"{stem}-{k}")
        try:
            folder.mkdir()  # atomic: two runs never share a folder
            return folder
        except FileExistsError:
            continue
    raise ValueError(f"could not find a free run folder for {stem!r} in {root}; clean up or choose another --out")


def _json_safe(value: Any) -> Any:
    """NaN and infinities become ``null`` (strict JSON); tuples become lists; numpy scalars floats."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _resolve_model(model: str | None) -> str:
    from ..pipelines.components import COMPONENT_PRESETS, DEFAULT_MODEL_DIR

    if model is None:
        return str(DEFAULT_MODEL_DIR) if (DEFAULT_MODEL_DIR / "model_index.json").exists() else "tiny"
    if model in COMPONENT_PRESETS:
        return model
    return str(Path(model).resolve())


def weights_sha256(model: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every ``*.safetensors`` under a model folder ({} for a preset): which
    weights a recorded run measured, whatever folder they sit in now."""
    import hashlib

    folder = Path(model)
    if not folder.is_dir():
        return {}
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*.safetensors"))}


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------


def run_eval(args: argparse.Namespace) -> int:
    """``cogfun eval``: resolve the config, load the model, run the benchmark, write the run folder."""
    import torch

    from ..pipelines.components import load_pipeline
    from .benchmark import (EVAL_SUBSETS, check_targets, config_to_dict, evaluate, format_table, headline,
                            resolve_config)

    config = resolve_config(args.suite, args.overrides)
    if args.subset:
        unknown = sorted(set(args.subset) - set(EVAL_SUBSETS))
        if unknown:
            raise ValueError(f"unknown subsets {unknown}; choose from {list(EVAL_SUBSETS)}")
        config = dataclasses.replace(config, subsets=tuple(s for s in EVAL_SUBSETS if s in args.subset))
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model = _resolve_model(args.model)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")

    pipe = load_pipeline(args.model, seed=args.model_seed, quiet=True)
    pipe.to(device)
    if args.dtype != "float32":
        pipe.to(dtype=getattr(torch, args.dtype))
    source = source_state(Path(__file__).resolve().parent.parent)  # before the run: the code that is about to run
    result = evaluate(pipe, config, progress=not args.quiet)

    folder = new_run_folder(args.out, config.name)
    record = dict(
        metrics=result["metrics"], errors=result["errors"], targets=check_targets(result["metrics"]), model=model,
        weights_sha256=weights_sha256(model),
        **source, config=config_to_dict(config), size=result["size"], seconds=result["seconds"],
        device=device, dtype=args.dtype, torch=torch.__version__, started=started, records=result["records"],
    )
    (folder / "metrics.json").write_text(json.dumps(_json_safe(record), indent=1))
    (folder / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    short = format_table(headline(result["metrics"]))
    errors = "".join(f"- `{key}`: {why}\n" for key, why in result["errors"].items())
    (folder / "results.md").write_text(
        f"# cogfun eval: {config.name}\n\nmodel: `{model}`, commit: `{record['commit']}`, size: "
        f"{result['size'][0]}x{result['size'][1]}x{config.num_frames}, steps: {config.steps}\n\n## Headline\n\n"
        f"{short}\n\n## All metrics\n\n{format_table(result['metrics'])}\n"
        + (f"\n## Not measured\n\n{errors}" if errors else "")
    )
    print(short)
    if errors:
        print(f"\nnot measured:\n{errors}", end="")
    print(f"\n{sum(result['seconds'].values()):.1f}s -> {folder / 'metrics.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cogfun.eval.command [options]``: the same as ``cogfun eval [options]``."""
    parser = argparse.ArgumentParser(prog="cogfun")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ValueError as error:
        print(f"cogfun eval: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
