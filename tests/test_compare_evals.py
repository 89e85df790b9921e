"""experiments/toy-model/compare_evals.py: two eval runs matched item by item, paired standard errors."""

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "toy-model" / "compare_evals.py"
spec = importlib.util.spec_from_file_location("compare_evals", SCRIPT)
compare_evals = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_evals)


def _run(values, subset="t2v", metric="colour_acc"):
    return {"records": [dict(subset=subset, index=i, seed=10_000, caption=f"item {i}", render_seed=i, **{metric: v})
                        for i, v in enumerate(values)]}


def test_differences_are_paired_item_by_item():
    first = _run([1, 0, 1, 0, 1, 1])
    second = _run([1, 1, 1, 0, 1, 0])  # per-item differences 0, +1, 0, 0, 0, -1
    [row] = compare_evals.paired_differences(first, second)
    assert (row["subset"], row["metric"], row["n"]) == ("t2v", "colour_acc", 6)
    assert row["a"] == pytest.approx(4 / 6) and row["b"] == pytest.approx(4 / 6) and row["diff"] == 0.0
    assert row["se"] == pytest.approx(math.sqrt(2 / 5) / math.sqrt(6))  # sample std of (0, 1, 0, 0, 0, -1) / sqrt(n)
    assert "| t2v/colour_acc | 6 | 66.7% | 66.7% | +0.0% | +0.0 |" in compare_evals.table([row], ("a", "b"))


def test_only_shared_items_count_and_different_items_are_refused():
    first = _run([20.0, 22.0, 24.0], subset="vae", metric="psnr")
    second = _run([21.0, 23.0], subset="vae", metric="psnr")
    [row] = compare_evals.paired_differences(first, second)
    assert row["n"] == 2 and row["diff"] == pytest.approx(1.0) and row["se"] == 0.0
    second["records"][0]["caption"] = "another prompt"
    with pytest.raises(ValueError, match="compare runs of the same suite config"):
        compare_evals.paired_differences(first, second)
