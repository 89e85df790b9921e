"""Experiments: papermill runs of the numbered notebooks into their own folders, and what notebooks record there.

- ``spec``: ``experiments/<name>.yaml`` files (notebook + full-size parameters) and typed ``key=value`` overrides
  checked against the notebook's ``parameters`` cell.
- ``runner``: ``run_experiment(name, overrides) -> run_dir``: papermill into
  ``experiments/runs/<name>/<run>/`` (executed notebook, ``parameters.json``, ``status.json``), never overwriting.
- ``recording``: the notebook side: ``resolve_run_dir``/``default_run_dir`` (a temporary folder when run as
  committed, e.g. by nbval), ``record_metrics`` (``metrics.json``), ``save_figure``, ``save_video``.
- ``conventions``: the house rules of a notebook, checked without running it.
- ``command``: ``cogfun experiment list | run``.

The pattern follows the papermill-run notebooks of microsoft/recommenders and spaemis (STYLE.md). Importing this
package is cheap (papermill and nbformat load only when a run or a check needs them), so notebooks can import the
recording helpers freely.
"""

from .command import add_experiment_parser
from .conventions import check_experiment_file, check_notebook
from .recording import default_run_dir, no_progress_bars, read_metrics, record_metrics, resolve_run_dir, save_figure, \
    save_video
from .runner import ExperimentFailed, list_runs, new_run_dir, read_status, run_experiment
from .spec import ExperimentSpec, coerce_value, list_experiments, load_experiment, notebook_parameters, \
    resolve_parameters

__all__ = [
    "ExperimentFailed", "ExperimentSpec", "add_experiment_parser", "check_experiment_file", "check_notebook",
    "coerce_value", "default_run_dir", "list_experiments", "list_runs", "load_experiment", "new_run_dir", "no_progress_bars",
    "notebook_parameters", "read_metrics", "read_status", "record_metrics", "resolve_parameters",
    "resolve_run_dir", "run_experiment", "save_figure", "save_video",
]
