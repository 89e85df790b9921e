"""Tests for cogfun.training.metrics_log: reading metrics.jsonl back, per-bucket curves, the figure."""

import json

import numpy as np
import pytest

from cogfun.training.metrics_log import loss_by_bucket, plot_loss_curve, read_metrics_log, running_mean

RECORDS = [
    {"step": 1, "loss": 2.0, "bucket": "64x64x17", "tokens": 160},
    {"step": 2, "loss": 1.0, "bucket": "48x96x13", "tokens": 144},
    {"step": 3, "loss": 1.5, "bucket": "64x64x17", "tokens": 160},
    {"step": 4, "loss": 0.5, "bucket": "96x96x5", "tokens": 144},
]


def _write(folder, records, extra=""):
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + extra)
    return folder


def test_reads_a_run_folder_or_the_file_and_skips_blank_lines(tmp_path):
    _write(tmp_path, RECORDS, extra="\n")
    assert read_metrics_log(tmp_path) == RECORDS
    assert read_metrics_log(tmp_path / "metrics.jsonl") == RECORDS


def test_missing_or_cut_logs_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="no metrics log"):
        read_metrics_log(tmp_path)
    _write(tmp_path, RECORDS[:1], extra='{"step": 2, "lo')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2 is not a JSON line"):
        read_metrics_log(tmp_path)


def test_running_mean_is_trailing_and_shorter_at_the_start():
    assert running_mean([1, 2, 3, 4], window=2) == pytest.approx([1.0, 1.5, 2.5, 3.5])
    assert running_mean([1, 2, 3, 4], window=10) == pytest.approx([1.0, 1.5, 2.0, 2.5])
    assert running_mean([5.0], window=1) == pytest.approx([5.0])
    with pytest.raises(ValueError, match="window"):
        running_mean([1.0], window=0)


def test_loss_by_bucket_keeps_steps_and_first_appearance_order():
    groups = loss_by_bucket(RECORDS)
    assert list(groups) == ["64x64x17", "48x96x13", "96x96x5"]
    assert groups["64x64x17"] == {"step": [1, 3], "loss": [2.0, 1.5]}
    assert loss_by_bucket(RECORDS, key="tokens")["96x96x5"] == {"step": [4], "tokens": [144]}


def test_plot_has_the_running_mean_and_one_dot_series_per_bucket():
    fig = plot_loss_curve(RECORDS, window=2)
    ax = fig.axes[0]
    assert np.allclose(ax.lines[0].get_ydata(), [2.0, 1.5, 1.25, 1.0])
    assert len(ax.collections) == 3  # one scatter per bucket
    assert np.allclose(ax.collections[0].get_offsets(), [[1, 2.0], [3, 1.5]])
    assert len(plot_loss_curve(RECORDS, by_bucket=False).axes[0].collections) == 1
    with pytest.raises(ValueError, match="no records"):
        plot_loss_curve([])


def test_reads_what_the_trainer_writes(tmp_path):
    from cogfun.training.trainer import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    for record in RECORDS:
        log.write(record)
    assert read_metrics_log(tmp_path) == RECORDS
