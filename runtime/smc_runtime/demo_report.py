"""The demo's summary (``make demo``, ``demo.py``): read the outputs back, count them, and turn the
runtime's Prometheus text into throughput and latency figures.
"""

from __future__ import annotations

import collections
import json
import re
import time
from typing import Any

from smc_runtime.config import OutputTopics
from smc_runtime.sample_feed import read_to_end


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    return list(read_to_end(bootstrap, topic, timeout=60))



# --- metrics arithmetic -----------------------------------------------------------------------------------


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a Prometheus histogram (summed over label sets)."""
    buckets: dict[float, float] = collections.defaultdict(float)
    for match in re.finditer(rf'^{re.escape(name)}_bucket{{.*?le="([^"]+)".*?}} (\S+)$', text, re.M):
        buckets[float(match.group(1))] += float(match.group(2))
    return dict(buckets)


def counter(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{.*?}})? (\S+)$", text, re.M))


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """q-quantile of the observations between two scrapes, interpolated within its bucket."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank, lower, prev = q * total, 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * ((rank - prev) / (count - prev) if count > prev else 1.0)
        lower, prev = bound, count
    return lower


# --- summary ----------------------------------------------------------------------------------------------

DEMO_SERIES = ["previous_high_low:1h", "sessions:Asian kill zone", "retracements"]
SERIES_PATTERNS = ("previous_high_low", "session", "retracement")
# the context features (issue 15 points 2-7, off by default), all on so the summary shows their events
DEMO_CONTEXT: dict[str, Any] = {"internal_length": 3, "trend": True, "zones": True, "inverse_fvg": True,
                                "breakers": True, "sweep_outcome": True}


def _print_events(name: str, events: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    """One summary line per event type and two examples with the given fields."""
    print(f"  {name:<28} {len(events):>6,}")
    for event in events[:2]:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(event.get("timestamp_ms", 0)) / 1000))
        extra = {k: v for k, v in event.items() if k in keys and v is not None}
        print(f"      {event['symbol']} {event.get('interval')} {when} {json.dumps(extra)}")


def summarize(bootstrap: str, inputs: dict[str, int], outputs: OutputTopics, drain: tuple[int, float],
              latency: tuple[float | None, float | None], metrics: str, rate: float,
              commit_interval_ms: int) -> None:
    print()
    print("=" * 78)
    print("smc-stream demo summary (exactly-once, commit interval "
          f"{commit_interval_ms} ms)")
    print("=" * 78)
    print(f"\nInput: {sum(inputs.values()):,} records")
    for kind, count in sorted(inputs.items()):
        print(f"  {kind:<12} {count:>10,}")
    print("\nOutput topics (read_committed):")
    by_role: dict[str, list[Any]] = {}
    for role, topic in outputs.by_role().items():
        by_role[role] = read_topic(bootstrap, topic)
        print(f"  {topic:<44} {len(by_role[role]):>10,}   ({role})")
    reasons = collections.Counter(
        dict(msg.headers() or []).get("reason", b"?").decode() for msg in by_role["dead_letters"])
    print("\nDead letters by reason:")
    for reason, count in reasons.most_common():
        print(f"  {reason:<20} {count:>6,}")
    patterns: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for msg in by_role["smc_signals"]:
        doc = json.loads(msg.value())
        event = doc.get("event", {})
        patterns[str(event.get("pattern", "?"))].append({"symbol": doc.get("symbol"),
                                                         "interval": doc.get("interval"), **event})
    print("\nSMC patterns by type (examples):")
    for pattern, events in sorted(patterns.items(), key=lambda kv: -len(kv[1])):
        if pattern not in SERIES_PATTERNS:
            _print_events(pattern, events, ("action", "direction", "scope", "level", "top", "bottom",
                                            "bias", "outcome"))
    print("\nSMC series events by type (detector smc_series; detection.series = "
          f"{', '.join(DEMO_SERIES)}):")
    for pattern in SERIES_PATTERNS:
        for action in sorted({str(e.get("action")) for e in patterns.get(pattern, [])}):
            _print_events(f"{pattern}/{action}", [e for e in patterns[pattern] if e.get("action") == action],
                          ("series", "direction", "high", "low", "level", "deepest"))
    count, seconds = drain
    p50, p99 = latency
    print("\nPerformance (this machine, exactly-once):")
    print(f"  throughput (backlog drain)   {count / seconds:>10,.0f} msg/s  "
          f"({count:,} records in {seconds:.1f} s)")

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 1000:.0f} ms"

    print(f"  end-to-end latency at {rate:,.0f} msg/s: p50 {fmt(p50)}, p99 {fmt(p99)} "
          "(commit time - input record timestamp)")
    commit = histogram(metrics, "smc_runtime_commit_latency_seconds")
    per_batch = max(1.0, counter(metrics, "smc_runtime_processing_latency_seconds_count"))
    print(f"  commit (snapshots + offsets + commit) p50 {fmt(quantile({}, commit, 0.5))}, "
          f"p99 {fmt(quantile({}, commit, 0.99))}; pipeline "
          f"{1e6 * counter(metrics, 'smc_runtime_processing_latency_seconds_sum') / per_batch:.0f} us/record")
    print(f"  transactions committed {counter(metrics, 'smc_runtime_transactions_committed_total'):,.0f}, "
          f"aborted {counter(metrics, 'smc_runtime_transactions_aborted_total'):,.0f}")
    print()
