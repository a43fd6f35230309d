"""The commit interval's latency/throughput trade-off for smc-stream in exactly-once mode.

    python -m benchmarks.commit_tradeoff --intervals 10,20,50,100,500 --rate 5000

For each interval: a drain run (throughput, CPU) on one pre-loaded mixed input and a steady run at
``--rate`` (p50/p99 end-to-end latency). Prints a table and writes ``results/commit-tradeoff.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import broker, targets
from benchmarks.harness import (
    as_dict,
    create_topics,
    preload,
    run_drain,
    run_steady,
    topic_partitions,
    unique,
)
from benchmarks.report import table
from benchmarks.workload import KINDS, Mix, market_messages

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--intervals", default="10,20,50,100,500")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--mix", default="trades=0.8,orderbook=0.15,klines=0.05")
    parser.add_argument("--mode", default="exactly_once")
    parser.add_argument("--batch-size", type=int, default=None, help="runtime batch_size (default: its own)")
    parser.add_argument("--workdir", default="/tmp/smc-bench")
    args = parser.parse_args(argv)
    intervals = [int(x) for x in args.intervals.split(",")]
    mix = Mix.parse(args.mix)
    kinds = [k for k in KINDS if getattr(mix, k) > 0]
    bootstrap, started = broker.resolve(args.bootstrap)
    rows, results = [], []
    try:
        drain_topics = {k: unique(f"tradeoff.{k}") for k in kinds}
        create_topics(bootstrap, dict.fromkeys(drain_topics.values(), args.partitions))
        preload(bootstrap, drain_topics, market_messages(args.symbols, args.count, mix, 7))
        inputs = topic_partitions(bootstrap, list(drain_topics.values()))
        steady_messages = market_messages(args.symbols, int(args.rate * args.duration) + 5_000, mix, 8)
        for interval in intervals:
            target = targets.smc_stream(bootstrap, list(drain_topics.values()), args.partitions, args.mode,
                                        interval, Path(args.workdir), batch_size=args.batch_size)
            print(f"\n== drain, commit {interval} ms", file=sys.stderr, flush=True)
            drain = run_drain(target, bootstrap, inputs, timeout_s=180)
            steady_topics = {k: unique(f"tradeoff.steady.{k}") for k in kinds}
            create_topics(bootstrap, dict.fromkeys(steady_topics.values(), args.partitions))
            target = targets.smc_stream(bootstrap, list(steady_topics.values()), args.partitions, args.mode,
                                        interval, Path(args.workdir), batch_size=args.batch_size)
            print(f"== steady {args.rate:,.0f}/s, commit {interval} ms", file=sys.stderr, flush=True)
            steady = run_steady(target, bootstrap, steady_topics, steady_messages, args.rate)
            commits = drain.metrics.get("smc_runtime_transactions_committed_total")
            rows.append([f"{interval} ms", drain.msgs_per_s, drain.cpu_s_per_1k, commits,
                         steady.p50_ms, steady.p99_ms, steady.max_ms])
            results.append({"interval_ms": interval, "drain": as_dict(drain), "steady": as_dict(steady)})
    finally:
        broker.release(started)
    headers = ["commit interval", "drain msgs/s", "CPU s/1k", "transactions (drain)",
               f"p50 ms @{args.rate:,.0f}/s", "p99 ms", "max ms"]
    print(table(headers, rows))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "commit-tradeoff.json").write_text(json.dumps({"arguments": vars(args), "runs": results},
                                                                 indent=2))
    (RESULTS_DIR / "commit-tradeoff.md").write_text(table(headers, rows, markdown=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
