"""Summarise probe files (``commit_calls_sitecustomize.py``): commit cycle, pending records and the two
broker calls, for all commits and split by whether the transaction carried changelog records."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def calls(rows: list[list[str]]) -> str:
    offsets = [float(r[3]) for r in rows]
    commit = [float(r[4]) for r in rows]
    return "; ".join(f"{name} p50 {pct(v, .5):.2f} p90 {pct(v, .9):.2f} p99 {pct(v, .99):.2f}"
                     for name, v in (("send_offsets", offsets), ("commit", commit)))


def main(paths: list[str]) -> None:
    for path in paths:
        with open(path) as handle:
            rows = [line.split() for line in handle if line.strip()]
        if not rows:
            continue
        starts = [float(r[0]) for r in rows]
        cycles = [b - a for a, b in itertools.pairwise(starts)]
        print(f"{path}: {len(rows)} commits over {starts[-1] - starts[0]:.1f}s, cycle p50 "
              f"{1000 * pct(cycles, .5):.1f} ms; pending p50 {pct([int(r[1]) for r in rows], .5):.0f}; "
              f"{calls(rows)}")
        with_changelog = [r for r in rows if len(r) > 6 and int(r[6]) > 0]
        if with_changelog and len(with_changelog) < len(rows):
            without = [r for r in rows if int(r[6]) == 0]
            print(f"  with changelog records: {len(with_changelog)} commits, {calls(with_changelog)}")
            print(f"  without: {len(without)} commits, {calls(without)}")


if __name__ == "__main__":
    main(sys.argv[1:])
