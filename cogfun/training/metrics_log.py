"""Reading a training run's ``metrics.jsonl`` back: records, loss curves per bucket, and their figure.

``cogfun.training.trainer.train`` (and the VAE trainer) append one JSON line per optimiser step to
``<run_dir>/metrics.jsonl`` (``MetricsLog``): ``step``, ``loss``, ``lr``, ``tokens``, ``bucket``
(``"HxWxF"`` of the step's batch), ``seconds``, ``stage``, ``budget``, ``epoch``. In a token-bucketed run
(docs/design.md 1.4) each step's batch has one shape, so the curve is a mix of buckets whose losses differ by
shape: :func:`loss_by_bucket` splits it, :func:`running_mean` smooths it, :func:`plot_loss_curve` draws
both (as the reference's TensorBoard scalars do, but from the file, so a notebook can assert on them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["METRICS_LOG", "loss_by_bucket", "plot_loss_curve", "read_metrics_log", "running_mean"]

#: The file name the trainers write.
METRICS_LOG = "metrics.jsonl"


def read_metrics_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a run's metrics log, in file order.

    Args:
        path: a run folder (holding ``metrics.jsonl``) or the ``.jsonl`` file itself.

    Returns:
        one dict per logged step (blank lines skipped).
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_LOG
    if not path.is_file():
        raise ValueError(f"no metrics log at {path}; pass a run folder of cogfun train (it writes {METRICS_LOG})")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number} is not a JSON line ({error.msg}); was the file cut while written?")
    return records


def running_mean(values: Sequence[float], window: int = 10) -> np.ndarray:
    """Trailing mean over the last ``window`` values (shorter at the start), same length as ``values``.

    Args:
        values: a curve, e.g. losses per step.
        window: values averaged (>= 1).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 (got {window})")
    x = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.concatenate([[0.0], x]))  # (N + 1,)
    idx = np.arange(1, len(x) + 1)
    start = np.maximum(0, idx - window)
    return (sums[idx] - sums[start]) / (idx - start)


def loss_by_bucket(records: Sequence[Mapping[str, Any]], key: str = "loss") -> dict[str, dict[str, list]]:
    """Split a curve by the step's bucket.

    Args:
        records: from :func:`read_metrics_log` (each with ``step``, ``bucket`` and ``key``).
        key: the value to split (default ``"loss"``).

    Returns:
        ``{bucket: {"step": [...], key: [...]}}`` in order of first appearance. A step that accumulated
        micro-batches of several buckets (``"64x64x17,48x96x13"``) counts under that joined name.
    """
    out: dict[str, dict[str, list]] = {}
    for r in records:
        group = out.setdefault(str(r.get("bucket", "all")), {"step": [], key: []})
        group["step"].append(r["step"])
        group[key].append(r[key])
    return out


def plot_loss_curve(
    records: Sequence[Mapping[str, Any]],
    key: str = "loss",
    window: int = 10,
    by_bucket: bool = True,
    log_scale: bool = False,
    title: str | None = None,
    size=(7.0, 3.0),
):
    """A training curve: every step as a dot (coloured by bucket) and the running mean as a line.

    Args:
        records: from :func:`read_metrics_log`.
        key: the value plotted (default ``"loss"``).
        window: steps of the running mean.
        by_bucket: colour the dots by bucket (else one colour).
        log_scale: logarithmic y axis.
        title: axes title.
        size: figure size in inches.

    Returns:
        the ``Figure`` (built without pyplot); ``fig.axes[0].lines[0]`` is the running mean.
    """
    from matplotlib.figure import Figure

    if not records:
        raise ValueError("no records to plot; did the run log any step?")
    steps = [r["step"] for r in records]
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, running_mean([r[key] for r in records], window), color="black", linewidth=1.5,
            label=f"running mean ({window} steps)")
    groups = loss_by_bucket(records, key) if by_bucket else {"steps": {"step": steps, key: [r[key] for r in records]}}
    for bucket, group in groups.items():
        ax.scatter(group["step"], group[key], s=10, alpha=0.7, label=bucket)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    if log_scale:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
