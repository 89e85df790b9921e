"""Running an experiment: papermill executes the notebook into a new run folder that is never overwritten.

A run of ``<name>`` lives in ``<runs_dir>/<name>/<YYYYmmdd-HHMMSS>-<ms>-<4 hex>/`` and holds:

- ``<notebook>.ipynb``: the executed notebook (kept when a cell fails: papermill saves it after every cell and
  marks the failing one);
- ``parameters.json``: the injected and the resolved parameters, the command line's overrides, the git commit
  (and whether the tree had uncommitted changes), the start time, the kernel;
- ``status.json``: ``{"status": "running" | "ok" | "failed", ...}`` with the failing cell's error;
- whatever the notebook writes through ``cogfun.experiments.recording`` (``metrics.json``, ``figures/``,
  ``videos/``) given the ``run_dir`` parameter the runner injects when the notebook declares it.

The kernel starts in the run folder, so a stray relative write lands there and not in the repository.
Same layout as the reference papermill setups in recommenders/spaemis (STYLE.md).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ..source_state import source_state
from .spec import RUN_DIR_PARAMETER, ExperimentSpec, find_experiments_dir, load_experiment, notebook_parameters, \
    resolve_parameters

STATUS_FILE = "status.json"
PARAMETERS_FILE = "parameters.json"
DEFAULT_KERNEL = "python3"


class ExperimentFailed(RuntimeError):
    """A notebook cell raised (or the kernel died); ``run_dir`` holds the executed notebook and ``status.json``."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


# ---------------------------------------------------------------------------------------------------------------
# Run folders
# ---------------------------------------------------------------------------------------------------------------


def default_runs_dir(experiments_dir: str | os.PathLike | None = None) -> Path:
    """``<experiments folder>/runs`` (git-ignored)."""
    return find_experiments_dir(experiments_dir) / "runs"


def new_run_dir(runs_dir: str | os.PathLike, name: str) -> Path:
    """Create ``<runs_dir>/<name>/<YYYYmmdd-HHMMSS>-<milliseconds>-<4 hex>/``; an existing folder is never reused.

    Names sort in creation order (``list_runs`` relies on it): a run started in the same millisecond
    as an earlier one of this experiment waits for the next millisecond.

    Args:
        runs_dir: the folder of all runs.
        name: the experiment's name.
    """
    parent = Path(runs_dir).resolve() / name
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(1000):
        now = datetime.now()
        stamp = f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}"
        if any(parent.glob(f"{stamp}-*")):
            time.sleep(0.001)
            continue
        path = parent / f"{stamp}-{secrets.token_hex(2)}"
        try:
            path.mkdir()  # fails if it exists: two runs never share a folder
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {parent}")


def list_runs(runs_dir: str | os.PathLike, name: str) -> list[Path]:
    """The run folders of one experiment, oldest first."""
    parent = Path(runs_dir) / name
    return sorted(p for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``status.json`` of a run (``{"status": "unknown"}`` when missing)."""
    path = Path(run_dir) / STATUS_FILE
    return json.loads(path.read_text()) if path.exists() else {"status": "unknown"}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _kernel_name(spec: ExperimentSpec) -> str:
    if spec.kernel:
        return spec.kernel
    metadata = json.loads(spec.notebook.read_text()).get("metadata", {})
    return (metadata.get("kernelspec") or {}).get("name") or DEFAULT_KERNEL


def _kernel_command(kernel: str) -> list[str] | None:
    """The command that starts the kernel (``python`` there means this interpreter), or None if unknown."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return list(KernelSpecManager().get_kernel_spec(kernel).argv)
    except Exception:  # noqa: BLE001 - a missing kernel is papermill's error to report
        return None


def _failure_message(error: BaseException) -> tuple[str, dict[str, Any]]:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(error, PapermillExecutionError):
        source = error.source.strip().splitlines()
        detail = {"ename": error.ename, "evalue": error.evalue, "cell_index": error.cell_index,
                  "execution_count": error.exec_count, "source": error.source}
        shown = "\n".join("    " + line for line in source[-6:])
        text = f"cell In [{error.exec_count}] raised {error.ename}: {error.evalue}\n{shown}"
        return text, detail
    return f"{type(error).__name__}: {error}", {"ename": type(error).__name__, "evalue": str(error)}


# ---------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------


def plan_run(
    name: str,
    overrides: dict[str, Any] | None = None,
    experiments_dir: str | os.PathLike | None = None,
) -> tuple[ExperimentSpec, dict[str, Any], dict[str, Any], bool]:
    """Everything checked before a run starts: ``(spec, inject, resolved, declares_run_dir)``.

    Args:
        name: experiment name or path of its ``.yaml``.
        overrides: ``{key: value}`` over the file's parameters (text values are parsed to the declared type).
        experiments_dir: see ``find_experiments_dir``.

    Raises:
        ValueError: unknown experiment, unknown parameter, wrong type (see ``resolve_parameters``), no such
            Jupyter kernel.
    """
    spec = load_experiment(name, experiments_dir)
    declared = notebook_parameters(spec.notebook)
    inject, resolved = resolve_parameters(spec, overrides, declared)
    kernel = _kernel_name(spec)
    if _kernel_command(kernel) is None:
        from jupyter_client.kernelspec import KernelSpecManager

        available = ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "none"
        raise ValueError(f"no Jupyter kernel named '{kernel}' (available: {available}); set 'kernel:' in "
                         f"{spec.path.name}, or install one: python -m ipykernel install --user --name {kernel}")
    return spec, inject, resolved, RUN_DIR_PARAMETER in declared


def run_experiment(
    name: str,
    overrides: dict[str, Any] | None = None,
    runs_dir: str | os.PathLike | None = None,
    experiments_dir: str | os.PathLike | None = None,
    progress_bar: bool = True,
    log_output: bool = False,
) -> Path:
    """Execute an experiment's notebook with papermill into a new run folder.

    Args:
        name: experiment name (``experiments/<name>.yaml``) or path of a ``.yaml`` file.
        overrides: ``{key: value}`` over the file's parameters; text values (``"3"``) are parsed to the
            declared type, typed values are checked against it.
        runs_dir: the folder of all runs (default ``<experiments folder>/runs``).
        experiments_dir: see ``find_experiments_dir``.
        progress_bar: papermill's per-cell tqdm bar (default True).
        log_output: stream the cells' output to the log (default False).

    Returns:
        the run folder.

    Raises:
        ValueError: bad input, before anything runs and before a folder is created.
        ExperimentFailed: a cell raised; its ``run_dir`` keeps the executed notebook and ``status.json``.
    """
    import papermill

    # 1. Check everything before creating a folder.
    spec, inject, resolved, declares_run_dir = plan_run(name, overrides, experiments_dir)
    kernel = _kernel_name(spec)
    runs_dir = default_runs_dir(experiments_dir) if runs_dir is None else Path(runs_dir)

    # 2. A new run folder; the runner's own record first, so a crash still leaves a trace.
    run_dir = new_run_dir(runs_dir, spec.name)
    if declares_run_dir:
        inject[RUN_DIR_PARAMETER] = str(run_dir)
        resolved[RUN_DIR_PARAMETER] = str(run_dir)
    started = time.time()
    started_at = datetime.fromtimestamp(started).isoformat(timespec="seconds")
    _write_json(run_dir / PARAMETERS_FILE, {
        "experiment": spec.name,
        "experiment_file": str(spec.path),
        "description": spec.description,
        "notebook": str(spec.notebook),
        "parameters": resolved,
        "injected": inject,
        "overrides": {k: v for k, v in inject.items() if overrides and k in overrides},
        "git": source_state(spec.path.parent),
        "started_at": started_at,
        "kernel": kernel,
        "kernel_command": _kernel_command(kernel),
        "timeout_per_cell_s": spec.timeout,
        "python": platform.python_version(),
        "argv": sys.argv,
    })
    _write_json(run_dir / STATUS_FILE, {"status": "running", "started_at": started_at})

    # 3. Execute; papermill saves the notebook after every cell, so a failure keeps it.
    output = run_dir / spec.notebook.name
    try:
        papermill.execute_notebook(
            str(spec.notebook), str(output), parameters=inject, kernel_name=kernel, cwd=str(run_dir),
            progress_bar=progress_bar, log_output=log_output, execution_timeout=spec.timeout,
        )
    except BaseException as error:  # noqa: BLE001 - also a kernel death or Ctrl-C: record, then re-raise
        message, detail = _failure_message(error)
        _write_json(run_dir / STATUS_FILE, {
            "status": "failed", "seconds": round(time.time() - started, 3), "error": detail,
            "executed_notebook": str(output) if output.exists() else None,
        })
        if not isinstance(error, Exception):
            raise
        raise ExperimentFailed(f"experiment '{spec.name}' failed: {message}\nexecuted notebook kept in "
                               f"{output if output.exists() else run_dir}", run_dir) from error
    _write_json(run_dir / STATUS_FILE, {"status": "ok", "seconds": round(time.time() - started, 3),
                                        "executed_notebook": str(output)})
    return run_dir
