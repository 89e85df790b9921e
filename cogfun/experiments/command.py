"""``cogfun experiment``: list experiments, and run one with papermill into its own run folder.

    cogfun experiment list
    cogfun experiment run NAME [-p key=value ...] [--runs-dir DIR] [--dry-run]

``NAME`` is an ``experiments/<NAME>.yaml`` file (or a path to one). ``-p`` overrides a parameter of the
notebook's ``parameters`` cell; the value is parsed as YAML and checked against the declared type
(``-p seeds=[0,1,2] -p lr=1e-4 -p use_ema=true -p prompt="a red ball"``). Bad input (unknown experiment,
unknown or mistyped parameter, wrong type) exits with 2 before anything runs; a failing notebook exits with 1
and keeps its executed notebook in the run folder.
"""

from __future__ import annotations

import argparse
import json
import sys

from .recording import read_metrics
from .runner import ExperimentFailed, default_runs_dir, list_runs, plan_run, read_status, run_experiment
from .spec import find_experiments_dir, list_experiments, load_experiment, parse_assignments

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def add_experiment_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``experiment`` (with ``list`` and ``run``) on an argparse subparsers object.

    Args:
        subparsers: the result of ``parser.add_subparsers()``.

    Returns:
        the ``experiment`` parser; each action sets ``func(args) -> exit code``.
    """
    p = subparsers.add_parser("experiment", help="list or run papermill experiments", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiments-dir", default=None,
                   help="folder of <name>.yaml files (default ./experiments, else the checkout's)")
    actions = p.add_subparsers(dest="experiment_command", required=True)

    listing = actions.add_parser("list", help="the experiments, their notebooks and runs")
    listing.add_argument("--runs-dir", default=None, help="folder of runs (default <experiments>/runs)")
    listing.set_defaults(func=list_command)

    run = actions.add_parser("run", help="execute an experiment's notebook into a new run folder")
    run.add_argument("name", help="experiment name (experiments/<name>.yaml) or a path to a .yaml file")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                     help="override a notebook parameter (repeatable); the value is YAML")
    run.add_argument("--runs-dir", default=None, help="folder of runs (default <experiments>/runs)")
    run.add_argument("--dry-run", action="store_true", help="check and print the parameters; run nothing")
    run.add_argument("--log-output", action="store_true", help="stream the cells' output")
    run.add_argument("--no-progress", action="store_true", help="hide papermill's progress bar")
    run.set_defaults(func=run_command)
    return p


def _bad_input(error: ValueError) -> int:
    print(f"cogfun experiment: error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT


def list_command(args: argparse.Namespace) -> int:
    """``cogfun experiment list``: name, notebook, runs and description of every experiment file."""
    try:
        experiments = list_experiments(args.experiments_dir)
        runs_dir = args.runs_dir or default_runs_dir(args.experiments_dir)
    except ValueError as error:
        return _bad_input(error)
    if not experiments:
        print(f"no experiments in {find_experiments_dir(args.experiments_dir)} (add <name>.yaml files)")
        return 0
    for name in experiments:
        try:
            spec = load_experiment(name, args.experiments_dir)
        except ValueError as error:  # one broken file does not hide the others
            print(f"{name}: BROKEN: {error}")
            continue
        runs = list_runs(runs_dir, name)
        last = f", last {runs[-1].name} {read_status(runs[-1])['status']}" if runs else ""
        print(f"{name}: {spec.notebook.name}, {len(runs)} run(s){last}")
        if spec.description:
            print(f"    {spec.description.splitlines()[0]}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """``cogfun experiment run``: 0 when the notebook ran, 1 when a cell failed, 2 on bad input."""
    try:
        overrides = parse_assignments(args.parameter)
        spec, _, resolved, declares_run_dir = plan_run(args.name, overrides, args.experiments_dir)
    except ValueError as error:
        return _bad_input(error)
    print(f"experiment {spec.name}: {spec.notebook}")
    for key, value in resolved.items():
        if key == "run_dir" and declares_run_dir:
            print("  run_dir = <the new run folder>")
            continue
        mark = " (-p)" if key in overrides else " (file)" if key in spec.parameters else ""
        print(f"  {key} = {value!r}{mark}")
    if not declares_run_dir:
        print("  note: the notebook declares no run_dir parameter; only the executed notebook is recorded")
    if args.dry_run:
        return 0
    try:
        run_dir = run_experiment(args.name, overrides, runs_dir=args.runs_dir, experiments_dir=args.experiments_dir,
                                 progress_bar=not args.no_progress, log_output=args.log_output)
    except ValueError as error:
        return _bad_input(error)
    except ExperimentFailed as error:
        print(f"cogfun experiment: {error}", file=sys.stderr)
        return EXIT_FAILED
    metrics = read_metrics(run_dir)
    print(f"ok in {read_status(run_dir).get('seconds', 0):.1f}s: {run_dir}")
    if metrics:
        print("metrics: " + json.dumps(metrics, default=str)[:2000])
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cogfun.experiments ...``: the same as ``cogfun experiment ...``."""
    parser = argparse.ArgumentParser(prog="cogfun")
    add_experiment_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["experiment", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
