"""Two `cogfun eval` runs of the same items side by side, with paired standard errors of the differences.

Both runs must have evaluated the same held-out items (same suite config: prompts, seeds, size): every record is
matched by (subset, positional-embedding mode, index, seed), so a difference is measured item by item and its
standard error is that of the per-item differences (tighter than two independent standard errors when both
models find the same items easy or hard).

    .venv/bin/python experiments/toy-model/compare_evals.py experiments/toy-model/results/metrics.json \\
        experiments/runs/pilots/eval-objbox-7000/<run>/metrics.json [--names shipped objbox] [--out table.md]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

#: The per-item values compared, by subset (the benchmark's headline scores).
COMPARED = {
    "vae": ("psnr",),
    "i2v": ("first_frame_psnr", "last_present_acc", "direction_acc"),
    "start_end": ("last_frame_psnr", "last_present_acc"),
    "t2v": ("present_acc", "colour_acc", "shape_acc", "direction_acc", "all_acc"),
    "inpaint": ("kept_psnr", "object_in_hole_acc"),
    "long": ("seam_ratio",),
    "photos": ("first_frame_psnr",),
}


def _key(record: dict) -> tuple:
    return record["subset"], record.get("pos_embed_mode"), record["index"], record["seed"]


def paired_differences(first: dict, second: dict) -> list[dict]:
    """Rows ``{subset, metric, n, a, b, diff, se}`` for every compared value both runs measured on the same items."""
    a_records = {_key(r): r for r in first["records"]}
    b_records = {_key(r): r for r in second["records"]}
    common = sorted(set(a_records) & set(b_records), key=str)
    for key in common:
        a, b = a_records[key], b_records[key]
        if (a["caption"], a["render_seed"]) != (b["caption"], b["render_seed"]):
            raise ValueError(f"item {key} differs between the runs ({a['caption']!r} vs {b['caption']!r}); "
                             "compare runs of the same suite config")
    rows = []
    for subset, metrics in COMPARED.items():
        keys = [k for k in common if k[0] == subset and k[1] is None]
        for metric in metrics:
            pairs = [(a_records[k].get(metric), b_records[k].get(metric)) for k in keys]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None and not (
                math.isnan(x) or math.isnan(y))]
            if not pairs:
                continue
            x, y = np.array(pairs, np.float64).T
            d = y - x
            se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
            rows.append(dict(subset=subset, metric=metric, n=len(d), a=float(x.mean()), b=float(y.mean()),
                             diff=float(d.mean()), se=se))
    return rows


def table(rows: list[dict], names: tuple[str, str]) -> str:
    """A markdown table; accuracies in percent, the difference also in paired standard errors."""
    lines = [f"| metric | n | {names[0]} | {names[1]} | difference | in paired s.e. |", "|---|---|---|---|---|---|"]
    for r in rows:
        scale, unit = (100.0, "%") if r["metric"].endswith("_acc") else (1.0, "")
        z = r["diff"] / r["se"] if r["se"] and r["se"] > 0 else float("nan")
        lines.append(f"| {r['subset']}/{r['metric']} | {r['n']} | {scale * r['a']:.1f}{unit} | {scale * r['b']:.1f}{unit} "
                     f"| {scale * r['diff']:+.1f}{unit} | {z:+.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="metrics.json of the first run (the baseline)")
    parser.add_argument("second", type=Path, help="metrics.json of the second run")
    parser.add_argument("--names", nargs=2, default=("first", "second"))
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    first, second = (json.loads(p.read_text()) for p in (args.first, args.second))
    text = table(paired_differences(first, second), tuple(args.names))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
