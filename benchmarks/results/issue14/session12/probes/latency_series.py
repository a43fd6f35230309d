"""One steady run of one framework, with the latency of each second of arrivals (is it a backlog that
grows, or a level?). ``python latency_series.py FRAMEWORK RATE COMMIT_MS [run_all flags]``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import benchmarks.harness as harness
from benchmarks.run_all import make_target, parse_args
from benchmarks.workload import TRADES_ONLY, market_messages

collectors: list[harness._LatencyCollector] = []


class _KeptCollector(harness._LatencyCollector):
    """The harness's collector, kept for its arrival times once the run is over."""

    def __init__(self, bootstrap: str, topic: str, id_field: bytes) -> None:
        super().__init__(bootstrap, topic, id_field)
        collectors.append(self)


def main() -> None:
    harness._LatencyCollector = _KeptCollector  # type: ignore[misc]
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    framework, rate, commit_ms = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    args = parse_args(["--frameworks", framework, "--commit-interval-ms", str(commit_ms), *sys.argv[4:]])
    messages = market_messages(1000, int(rate * 15) + 5000, TRADES_ONLY, 8)
    topic = harness.unique("bench.series")
    harness.create_topics(bootstrap, {topic: 6})
    target = make_target(framework, bootstrap, topic, 6, "exactly_once", commit_ms, Path("/tmp/smc-bench"),
                         args)
    result = harness.run_steady(target, bootstrap, {"trades": topic}, messages, rate, show_progress=False)
    print(framework, rate, "p50", result.p50_ms, "p99", result.p99_ms, "cpu", result.cpu_s_per_1k,
          result.error)
    seconds: dict[int, list[float]] = {}
    collector = collectors[-1]
    first = collector.arrivals[0] if collector.arrivals else 0.0
    for arrived, latency in zip(collector.arrivals, collector.latencies, strict=True):
        seconds.setdefault(int((arrived - first) // 1000), []).append(latency)
    for second, values in sorted(seconds.items()):
        values.sort()
        n = len(values)
        p99 = values[min(n - 1, int(n * .99))]
        print(f"  s{second:02d} n={n:5d} p50 {values[n // 2]:7.1f} p99 {p99:7.1f} max {values[-1]:7.1f}")


if __name__ == "__main__":
    main()
