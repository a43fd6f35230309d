"""Summarise the perf-*.json runs of perf-interleave.sh: one row per run, then ranges per variant.

    .venv/bin/python benchmarks/results/issue14/perf_summary.py [glob]   (default: perf-*.json)
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rows(pattern: str) -> list[dict[str, object]]:
    out = []
    for path in sorted(HERE.glob(pattern)):
        doc = json.loads(path.read_text())
        parts = path.stem.split("-")  # perf-<variant>-<interval>ms-<pair>
        row: dict[str, object] = {"run": path.stem, "variant": parts[1], "interval": parts[2],
                                  "load": round(doc["load_average"][0], 1)}
        for d in doc["drain"]:
            row[f"{d['framework']} drain"] = d["msgs_per_s"]
            row[f"{d['framework']} cpu"] = d["cpu_s_per_1k"]
        for s in doc["steady"]:
            row[f"{s['framework']} p50"] = s["p50_ms"]
            row[f"{s['framework']} p99"] = s["p99_ms"]
        out.append(row)
    return out


def main() -> int:
    pattern = sys.argv[1] if len(sys.argv) > 1 else "perf-*.json"
    table = rows(pattern)
    cols = ["run", "load", "smc-stream drain", "smc-stream cpu", "smc-stream p50", "smc-stream p99",
            "bare drain", "bare p50", "bare p99"]
    print("| " + " | ".join(cols) + " | p99 smc/bare |")
    print("|" + "---|" * (len(cols) + 1))
    ranges: dict[tuple[object, object, str], list[float]] = defaultdict(list)
    for r in table:
        ratio = ""
        if r.get("smc-stream p99") and r.get("bare p99"):
            ratio = f"{float(r['smc-stream p99']) / float(r['bare p99']):.1f}x"  # type: ignore[arg-type]
            ranges[(r["variant"], r["interval"], "p99 ratio")].append(
                float(r["smc-stream p99"]) / float(r["bare p99"]))  # type: ignore[arg-type]
        print("| " + " | ".join(str(r.get(c, "-")) for c in cols) + f" | {ratio} |")
        for c in cols[2:]:
            if isinstance(r.get(c), (int, float)):
                ranges[(r["variant"], r["interval"], c)].append(float(r[c]))  # type: ignore[arg-type]
    print()
    for (variant, interval, col), values in sorted(ranges.items(), key=lambda kv: str(kv[0])):
        print(f"{variant} {interval} {col}: {min(values):,.4g} - {max(values):,.4g} (n={len(values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
