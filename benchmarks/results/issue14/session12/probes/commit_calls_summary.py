"""Summarise probe files (``commit_calls_sitecustomize.py``): commit cycle, pending records and the two
broker calls, for all commits and split by whether the transaction carried changelog records; for a
``.batches`` file, batch sizes and how old records were when the consumer handed them out."""

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


def batches(path: str, rows: list[list[str]]) -> None:
    """The last 16 s of batches (the measured phase; the warm-up trickles before it)."""
    end = float(rows[-1][0])
    rows = [r for r in rows if float(r[0]) > end - 16_000]
    sizes = [int(r[1]) for r in rows]
    ages = [age for r in rows for age in [(float(r[2]) + float(r[3])) / 2] * int(r[1])]  # batch midpoint
    print(f"{path}: {len(rows)} batches, size p50 {pct(sizes, .5):.0f}; record age at consume p50 "
          f"{pct(ages, .5):.1f} p99 {pct(ages, .99):.1f} ms")


def main(paths: list[str]) -> None:
    for path in paths:
        with open(path) as handle:
            rows = [line.split() for line in handle if line.strip()]
        if not rows:
            continue
        if path.endswith(".batches"):
            batches(path, rows)
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
