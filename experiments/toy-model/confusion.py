"""What the detector read against what the prompt asked, from a `cogfun eval` record: confusion tables.

Every `t2v`, `i2v` and `start_end` record of `cogfun eval` carries the asked spec (``spec``) and the detector's
reading (``detected_direction``, ``detected_colour``, ``detected_shape``); this counts them, rows asked, columns
read (``none``: nothing found). A default guess shows as one column filled in every row (DIAGNOSIS.md section 13:
the shipped model reads "left" in 18 of 48 text-to-video videos).

    .venv/bin/python experiments/toy-model/confusion.py experiments/toy-model/results/metrics.json \\
        [--subset t2v i2v] [--attribute direction] [--drift] [--centre-pull] [--out table.md]

``--drift`` adds the mean fitted motion per asked direction (``displacement`` of the records) and the motion across
the asked axis: a drift the model adds to every video, whatever it was asked. ``--centre-pull`` (subsets whose first
frame is given: ``i2v``, ``start_end``) fits that across-axis motion against where the object starts: a mean drift
can be only the held-out items' start positions seen through a model that pulls objects to the centre
(DIAGNOSIS.md section 16).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from cogfun.data.toy import COLOURS, DIRECTIONS, SHAPES, ToyClipSpec, shape_track

#: The values an attribute can take, in table order.
VALUES = {"direction": tuple(DIRECTIONS), "colour": tuple(COLOURS), "shape": tuple(SHAPES)}
#: The subsets whose records carry detector readings.
READ_SUBSETS = ("t2v", "i2v", "start_end")
#: The subsets whose first frame is given, so where the object starts is known.
GIVEN_START_SUBSETS = ("i2v", "start_end")


def confusion(records: list[dict], subset: str, attribute: str = "direction") -> dict[str, Counter]:
    """``{asked: Counter(read)}`` over one subset's records (``read`` is ``"none"`` where nothing was found)."""
    if attribute not in VALUES:
        raise ValueError(f"attribute must be one of {sorted(VALUES)} (got {attribute!r})")
    rows = [r for r in records if r.get("subset") == subset and "spec" in r]
    if not rows:
        raise ValueError(f"no {subset!r} records with a spec; subsets with detector readings: {READ_SUBSETS}")
    if f"detected_{attribute}" not in rows[0]:
        raise ValueError(f"the {subset!r} records carry no detected_{attribute}: rerun `cogfun eval` with this "
                         "version (older records lack the detector's readings)")
    table: dict[str, Counter] = {value: Counter() for value in VALUES[attribute]}
    for r in rows:
        table.setdefault(r["spec"][attribute], Counter())[r[f"detected_{attribute}"] or "none"] += 1
    return {asked: counts for asked, counts in table.items() if counts}


def markdown(table: dict[str, Counter], subset: str, attribute: str) -> str:
    """The table as markdown: one row per asked value (with its count), one column per read value."""
    columns = list(VALUES[attribute]) + (["none"] if any(c["none"] for c in table.values()) else [])
    lines = [f"| asked \\ read ({subset}) | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for asked, counts in table.items():
        lines.append(f"| {asked} ({sum(counts.values())}) | " + " | ".join(str(counts[c]) for c in columns) + " |")
    read = Counter()
    for counts in table.values():
        read.update(counts)
    lines.append(f"| read in all ({sum(read.values())}) | " + " | ".join(str(read[c]) for c in columns) + " |")
    return "\n".join(lines)


def drift(records: list[dict], subset: str) -> dict[str, dict]:
    """Mean fitted motion per asked direction, and the drift across the asked axis, from the records' ``displacement``.

    ``displacement`` is the detector's motion ``[dx, dy]`` over the clip as fractions of the short side (x right, y
    down; records without an object have none and are skipped). Per asked direction: ``n`` and the mean and standard
    error of ``dx`` and ``dy``. ``"across"``: a motion the prompt did not ask for, pooled: ``dx`` of the clips asked
    to go up, down or stand still and ``dy`` of those asked to go left, right or stand still. A drift the model adds
    to every video shows there as a mean away from 0.
    """
    rows = [r for r in records if r.get("subset") == subset and "spec" in r]
    if not rows:
        raise ValueError(f"no {subset!r} records with a spec; subsets with detector readings: {READ_SUBSETS}")
    if "displacement" not in rows[0]:
        raise ValueError(f"the {subset!r} records carry no displacement: rerun `cogfun eval` with this version (records "
                         "before 2026-12-07 lack it)")
    moved = [(r["spec"]["direction"], r["displacement"]) for r in rows if r["displacement"] is not None]
    out: dict[str, dict] = {}
    for asked in VALUES["direction"]:
        values = [d for a, d in moved if a == asked]
        if values:
            out[asked] = dict(n=len(values), dx=_mean_se([d[0] for d in values]), dy=_mean_se([d[1] for d in values]))
    across_x = [d[0] for a, d in moved if a in ("up", "down", "still")]
    across_y = [d[1] for a, d in moved if a in ("left", "right", "still")]
    out["across"] = dict(n=len(moved), dx=_mean_se(across_x), dy=_mean_se(across_y))
    out["no object"] = dict(n=len(rows) - len(moved))
    return out


def _mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n), the estimator of `cogfun eval`'s ``_se``; nan where undefined)."""
    x = np.asarray(values, np.float64)
    mean = float(x.mean()) if len(x) else float("nan")
    return mean, float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def drift_markdown(table: dict[str, dict], subset: str) -> str:
    """:func:`drift`'s table as markdown, motions in fractions of the short side."""
    lines = [f"| asked ({subset}) | videos with an object | mean dx (right +) | mean dy (down +) |", "|---|---|---|---|"]
    for asked, row in table.items():
        if asked == "no object":
            continue
        label = "across the asked axis" if asked == "across" else asked
        lines.append(f"| {label} | {row['n']} | {row['dx'][0]:+.3f} +- {row['dx'][1]:.3f} | "
                     f"{row['dy'][0]:+.3f} +- {row['dy'][1]:.3f} |")
    return "\n".join(lines)


def centre_pull(records: list[dict], subset: str) -> dict[str, dict]:
    """The motion across the asked axis fitted against the object's start offset from the centre, by least squares.

    For clips asked to go up, down or stand still, ``dx`` against the start's horizontal offset from the frame's
    centre; for clips asked to go left, right or stand still, ``dy`` against the vertical offset (both in fractions of
    the short side, like ``displacement``; the start is the ground truth's first frame, ``shape_track`` of the
    record's spec, render seed and size, which is the frame the model was given). The true motion across the axis is
    0 whatever the start, so a model that keeps the object on its line has slope 0 and intercept 0; slope -1 means
    it takes the object all the way back to the centre; the intercept is a drift left over once that is accounted
    for. Returns ``{"dx": fit, "dy": fit}``, each ``fit`` with ``n``, ``intercept`` and ``slope`` (each ``(value,
    standard error)``) and ``mean`` (the plain mean, :func:`drift`'s ``across``).
    """
    if subset not in GIVEN_START_SUBSETS:
        raise ValueError(f"the centre pull needs a given first frame: subset must be one of {GIVEN_START_SUBSETS} "
                         f"(got {subset!r}; in t2v the model chooses where the object starts)")
    rows = [r for r in records if r.get("subset") == subset and "spec" in r]
    if not rows:
        raise ValueError(f"no {subset!r} records with a spec; subsets with detector readings: {READ_SUBSETS}")
    if "displacement" not in rows[0] or "render_seed" not in rows[0]:
        raise ValueError(f"the {subset!r} records carry no displacement or render_seed: rerun `cogfun eval` with this "
                         "version (records before 2026-12-07 lack the displacement)")
    points: dict[str, list[tuple[float, float]]] = {"dx": [], "dy": []}
    for r in rows:
        if r["displacement"] is None:
            continue
        spec = ToyClipSpec.from_dict(r["spec"])
        height, width = r["height"], r["width"]
        start = shape_track(spec, height, width, r["num_frames"], r["render_seed"])[0][0]  # (x, y) in pixels
        short = min(height, width)
        if spec.direction in ("up", "down", "still"):
            points["dx"].append(((start[0] - width / 2) / short, r["displacement"][0]))
        if spec.direction in ("left", "right", "still"):
            points["dy"].append(((start[1] - height / 2) / short, r["displacement"][1]))
    return {axis: _line_fit(values) for axis, values in points.items()}


def _line_fit(points: list[tuple[float, float]]) -> dict:
    """Least-squares ``y = intercept + slope * x`` with standard errors (ordinary least squares, n - 2 dof)."""
    if len(points) < 3:
        return dict(n=len(points), intercept=(float("nan"),) * 2, slope=(float("nan"),) * 2,
                    mean=_mean_se([y for _, y in points]))
    xy = np.asarray(points, np.float64)
    design = np.column_stack([np.ones(len(xy)), xy[:, 0]])
    coef, *_ = np.linalg.lstsq(design, xy[:, 1], rcond=None)
    residual = xy[:, 1] - design @ coef
    cov = residual @ residual / (len(xy) - 2) * np.linalg.inv(design.T @ design)
    se = np.sqrt(np.diag(cov))
    return dict(n=len(xy), intercept=(float(coef[0]), float(se[0])), slope=(float(coef[1]), float(se[1])),
                mean=_mean_se(xy[:, 1].tolist()))


def centre_pull_markdown(fits: dict[str, dict], subset: str) -> str:
    """:func:`centre_pull`'s fits as markdown."""
    lines = [f"| across the asked axis ({subset}) | videos | mean | intercept (drift) | slope (-1: back to the centre) |",
             "|---|---|---|---|---|"]
    names = {"dx": "dx against the start's x offset (asked up, down, still)",
             "dy": "dy against the start's y offset (asked left, right, still)"}
    for axis, fit in fits.items():
        lines.append(f"| {names[axis]} | {fit['n']} | {fit['mean'][0]:+.3f} +- {fit['mean'][1]:.3f} | "
                     f"{fit['intercept'][0]:+.3f} +- {fit['intercept'][1]:.3f} | "
                     f"{fit['slope'][0]:+.2f} +- {fit['slope'][1]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("record", help="a `cogfun eval` metrics.json")
    parser.add_argument("--subset", nargs="+", default=["t2v", "i2v"], choices=READ_SUBSETS)
    parser.add_argument("--attribute", default="direction", choices=sorted(VALUES))
    parser.add_argument("--drift", action="store_true",
                        help="also the mean fitted motion per asked direction and across the asked axis")
    parser.add_argument("--centre-pull", action="store_true",
                        help="also fit the across-axis motion against the start's offset from the centre "
                             f"(subsets {', '.join(GIVEN_START_SUBSETS)})")
    parser.add_argument("--out", help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    records = json.loads(Path(args.record).read_text())["records"]
    tables = [markdown(confusion(records, s, args.attribute), s, args.attribute) for s in args.subset]
    if args.drift:
        tables += [drift_markdown(drift(records, s), s) for s in args.subset]
    if args.centre_pull:
        tables += [centre_pull_markdown(centre_pull(records, s), s) for s in args.subset if s in GIVEN_START_SUBSETS]
    text = "\n\n".join(tables)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
