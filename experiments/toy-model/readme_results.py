"""Rewrite the numbers of the README's results table from a recorded full benchmark (after the recipe reships).

Each row of the table names its metric key in backticks (``(`t2v/colour_acc`)``); the measured value, its standard
error and the "met?" column are rewritten from ``metrics.json`` in the row's own unit (``%`` or `` dB``), the row's
label and target are kept. ``tests/test_toy_model.py`` checks the table against the same file.

    .venv/bin/python experiments/toy-model/readme_results.py [experiments/toy-model/results/metrics.json] [README.md]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROW = re.compile(r"^\| (?P<label>[^|]*\(`(?P<key>[a-z0-9_/]+)`[^|]*\)) \| (?P<value>-?[0-9.]+)(?P<unit>%| dB)? \| "
                 r"(?P<se>[^|]*)\| (?P<target>[^|]*)\| (?P<met>[^|]*)\|$", re.M)
TARGET = re.compile(r">= (-?[0-9.]+)(%| dB)?")


def formatted(value: float, unit: str | None, decimals: int) -> str:
    return f"{value * (100 if unit == '%' else 1):.{decimals}f}"


def rewrite(readme: str, metrics: dict) -> str:
    def row(match: re.Match) -> str:
        key, unit = match["key"], match["unit"]
        value = metrics[key]
        if value is None:
            raise ValueError(f"{key} is null in the recorded benchmark; the README row cannot quote it")
        decimals = len(match["value"].split(".")[1]) if "." in match["value"] else 0
        text = formatted(value, unit, decimals) + (unit or "")
        se = metrics.get(f"{key}_se")
        se_text = f"{formatted(se, unit, decimals)}{unit or ''} " if match["se"].strip() and se is not None else match["se"]
        met = match["met"]
        target = TARGET.match(match["target"].strip())
        if target:
            goal = float(target[1])
            shown = float(formatted(value, unit, decimals))
            if shown >= goal:
                met = "yes "
            else:
                gap, unit_text = shown - goal, " points" if target[2] == "%" else (target[2] or "")
                met = f"no ({gap:.{decimals if not target[2] else 1}f}{unit_text}) "
        return f"| {match['label']} | {text} | {se_text}| {match['target']}| {met}|"

    return ROW.sub(row, readme)


def main() -> None:
    metrics_path = Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/toy-model/results/metrics.json")
    readme_path = Path(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    metrics = json.loads(metrics_path.read_text())["metrics"]
    readme_path.write_text(rewrite(readme_path.read_text(), metrics))


if __name__ == "__main__":
    main()
