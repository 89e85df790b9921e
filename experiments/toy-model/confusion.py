"""What the detector read against what the prompt asked, from a `cogfun eval` record: confusion tables.

Every `t2v`, `i2v` and `start_end` record of `cogfun eval` carries the asked spec (``spec``) and the detector's
reading (``detected_direction``, ``detected_colour``, ``detected_shape``); this counts them, rows asked, columns
read (``none``: nothing found). A default guess shows as one column filled in every row (DIAGNOSIS.md section 13:
the shipped model reads "left" in 18 of 48 text-to-video videos).

    .venv/bin/python experiments/toy-model/confusion.py experiments/toy-model/results/metrics.json \\
        [--subset t2v i2v] [--attribute direction] [--out table.md]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from cogfun.data.toy import COLOURS, DIRECTIONS, SHAPES

#: The values an attribute can take, in table order.
VALUES = {"direction": tuple(DIRECTIONS), "colour": tuple(COLOURS), "shape": tuple(SHAPES)}
#: The subsets whose records carry detector readings.
READ_SUBSETS = ("t2v", "i2v", "start_end")


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


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("record", help="a `cogfun eval` metrics.json")
    parser.add_argument("--subset", nargs="+", default=["t2v", "i2v"], choices=READ_SUBSETS)
    parser.add_argument("--attribute", default="direction", choices=sorted(VALUES))
    parser.add_argument("--out", help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    records = json.loads(Path(args.record).read_text())["records"]
    text = "\n\n".join(markdown(confusion(records, s, args.attribute), s, args.attribute) for s in args.subset)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
