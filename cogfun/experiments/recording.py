"""What a notebook writes into its run folder: metrics, figures, videos, and where that folder is.

Notebooks run in two ways (STYLE.md rules 4, 5 and 11):

- by ``cogfun experiment run`` (papermill), which injects ``run_dir`` = the absolute run folder
  ``experiments/runs/<name>/<run>/``;
- as committed, by nbval in CI or by a person in JupyterLab, where ``run_dir`` keeps its empty default: the
  notebook then writes into a fresh temporary folder, never into the repository or the current directory.

The idiom in a notebook::

    # parameters cell
    run_dir: str = ""  # run folder (set by `cogfun experiment run`; empty: a temporary folder)

    from cogfun.experiments import record_metrics, resolve_run_dir, save_figure
    out = resolve_run_dir(run_dir, "embedding_resize")
    record_metrics(out, final_loss=0.12)
    save_figure(fig, out, "loss_curve")

This module imports nothing heavy at import time, so notebooks pay only for what they use.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
FIGURE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")


def default_run_dir(name: str) -> Path:
    """A fresh temporary folder for a notebook run outside the runner (nbval, JupyterLab).

    Args:
        name: a label for the folder (the notebook or experiment name).

    Returns:
        a new, empty folder under the system's temporary directory (``cogfun-<name>-XXXX``).
    """
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    return Path(tempfile.mkdtemp(prefix=f"cogfun-{label}-"))


def resolve_run_dir(run_dir: str | os.PathLike | None, name: str) -> Path:
    """The folder a notebook writes into: ``run_dir`` when the runner set it, else ``default_run_dir(name)``.

    Args:
        run_dir: the notebook's ``run_dir`` parameter (``""`` when run as committed).
        name: label for the temporary folder.
    """
    if run_dir:
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return default_run_dir(name)


def _check_run_dir(run_dir: str | os.PathLike) -> Path:
    if not run_dir or not str(run_dir).strip():
        raise ValueError("run_dir is empty; pass resolve_run_dir(run_dir, name), which falls back to a temporary "
                         "folder, so nothing is written into the current directory")
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(value: Any) -> Any:
    """numpy / torch scalars and arrays -> Python numbers and lists; everything JSON can hold passes through."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy array/scalar, torch tensor
        return _plain(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"metric value {value!r} of type {type(value).__name__} is not JSON; record numbers, "
                     f"strings, lists or dicts of them")


def record_metrics(run_dir: str | os.PathLike, /, **metrics: Any) -> dict[str, Any]:
    """Merge metrics into ``<run_dir>/metrics.json`` (later calls add keys and replace equal ones).

    numpy and torch values are converted to Python numbers and lists. NaN and infinity are written as JSON's
    common extension ``NaN``/``Infinity`` (Python's ``json`` reads them back).

    Args:
        run_dir: the run folder (see ``resolve_run_dir``).
        **metrics: ``name=value`` pairs, e.g. ``final_loss=0.12, losses=[...]``.

    Returns:
        every metric in the file after the merge.
    """
    folder = _check_run_dir(run_dir)
    path = folder / METRICS_FILE
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged.update({k: _plain(v) for k, v in metrics.items()})
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)  # atomic: a crash mid-write never leaves half a file
    return merged


def read_metrics(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The metrics recorded in a run folder (``{}`` when none).

    Args:
        run_dir: the run folder.
    """
    path = Path(run_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _output_path(run_dir: str | os.PathLike, sub: str, name: str, suffixes: tuple[str, ...]) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"name must be a plain file name such as 'loss_curve' (got {name!r})")
    path = _check_run_dir(run_dir) / sub / name
    if path.suffix.lower() not in suffixes:
        path = path.with_name(name + suffixes[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, run_dir: str | os.PathLike, name: str, dpi: int = 120) -> Path:
    """Save a matplotlib figure as ``<run_dir>/figures/<name>.png`` (or the suffix given in ``name``).

    Args:
        fig: a ``matplotlib.figure.Figure``.
        run_dir: the run folder.
        name: file name, ``loss_curve`` or ``loss_curve.svg``; png when no known suffix.
        dpi: resolution of raster formats (default 120).

    Returns:
        the path written (a re-run of the same cell in the same run replaces it).
    """
    path = _output_path(run_dir, "figures", name, FIGURE_SUFFIXES)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def save_video(frames, run_dir: str | os.PathLike, name: str, fps: float = 8) -> Path:
    """Save frames as ``<run_dir>/videos/<name>.mp4`` (or ``.webm``/``.gif`` given in ``name``).

    Args:
        frames: ``(F, H, W, 3)`` float in [0, 1] or uint8 (``cogfun.data.video_io.write_video``).
        run_dir: the run folder.
        name: file name; mp4 when no known suffix (odd sizes are padded to even for H.264).
        fps: frames per second (default 8, the CogVideoX default).

    Returns:
        the path written.
    """
    from ..data.video_io import write_video

    path = _output_path(run_dir, "videos", name, VIDEO_SUFFIXES)
    return write_video(path, frames, fps=fps, pad_to_even=path.suffix == ".mp4")


__all__ = ["default_run_dir", "resolve_run_dir", "record_metrics", "read_metrics", "save_figure", "save_video",
           "METRICS_FILE"]


class no_progress_bars:  # noqa: N801 - used like a function: ``with no_progress_bars(): ...``
    """A context in which tqdm bars (the trainer's, transformers' and diffusers' "Writing model shards", ...)
    are never drawn.

    A bar drawn in a notebook is saved into it as a frozen widget ("0%", a black box without the widget state),
    so committed notebooks run long calls inside this. ``TQDM_DISABLE`` cannot do it: tqdm reads it once at import,
    and an explicit ``disable=False`` in the call wins. Here ``tqdm.auto.tqdm`` (imported by the trainer at call
    time) becomes a subclass that always disables itself, and transformers' and diffusers' own switches are off.
    Log lines and prints are untouched.
    """

    def __enter__(self):
        import tqdm.auto
        import tqdm.std

        class _Silent(tqdm.std.tqdm):
            def __init__(self, *args, **kwargs):
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)

        self._saved = tqdm.auto.tqdm
        tqdm.auto.tqdm = _Silent
        self._switches = []
        for module in ("diffusers.utils.logging", "transformers.utils.logging"):
            try:
                logging = __import__(module, fromlist=["is_progress_bar_enabled"])
            except ImportError:
                continue
            self._switches.append((logging, logging.is_progress_bar_enabled()))
            logging.disable_progress_bar()
        return self

    def __exit__(self, *exc) -> None:
        import tqdm.auto

        tqdm.auto.tqdm = self._saved
        for logging, enabled in self._switches:
            if enabled:
                logging.enable_progress_bar()
