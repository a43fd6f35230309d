"""Load test of ``smc-runtime run`` against the test bed's real Kafka.

    python tests/load_test_stream_processor.py --scenario drain --count 500000 --symbols 1000
    python tests/load_test_stream_processor.py --scenario steady --rate 10000 --duration 30 \\
        --commit-interval-ms 20 --json

Generates seeded market data (``smc_runtime.sample_data`` shaped to ``--mix``) onto one topic per
message kind, runs the runtime as a subprocess on a generated config, and reports throughput,
end-to-end latency (send time -> arrival at a read_committed consumer of the enriched trades),
CPU seconds per 1,000 messages and peak RSS of the runtime process (/proc), transactions committed
(its /metrics) and dead letters. ``--json`` prints the same as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks import broker, targets
from benchmarks.harness import (
    DrainResult,
    SteadyResult,
    as_dict,
    create_topics,
    pick,
    preload,
    run_drain,
    run_steady,
    topic_partitions,
    unique,
)
from benchmarks.profiling import top_frames
from benchmarks.report import table
from benchmarks.workload import KINDS, Mix, market_messages


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["drain", "steady"], default="drain")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=6, help="partitions of each input topic")
    parser.add_argument("--mix", default="trades=0.8,orderbook=0.15,klines=0.05")
    parser.add_argument("--count", type=int, default=300_000, help="drain: messages pre-loaded")
    parser.add_argument("--rate", type=float, default=10_000, help="steady: messages per second")
    parser.add_argument("--duration", type=float, default=30.0, help="steady: seconds of production")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mode", choices=["exactly_once", "at_least_once"], default="exactly_once")
    parser.add_argument("--commit-interval-ms", type=int, default=None, help="default: the runtime's own")
    parser.add_argument("--max-poll-records", type=int, default=None, help="default: the runtime's own")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="messages per transaction at most (default: the runtime's own)")
    parser.add_argument("--snapshot-interval-ms", type=int, default=None,
                        help="state snapshot interval (default: the runtime's own; 0 = every commit)")
    parser.add_argument("--bootstrap", default=None, help="default: $KAFKA_BOOTSTRAP_SERVERS or the test bed")
    parser.add_argument("--timeout", type=float, default=600.0, help="drain: give up after this many seconds")
    parser.add_argument("--workdir", default="/tmp/smc-load-test")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="record the runtime with py-spy into FILE (collapsed stacks); print top frames")
    parser.add_argument("--profile-idle", action="store_true",
                        help="profile wall-clock time (waiting threads too), not only CPU")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return parser.parse_args(argv)


def report_rows(result: DrainResult | SteadyResult) -> list[tuple[str, object]]:
    m = result.metrics
    rows: list[tuple[str, object]] = []
    if isinstance(result, DrainResult):
        rows += [("messages drained", result.messages), ("seconds", result.seconds),
                 ("throughput (msgs/s)", result.msgs_per_s), ("enriched trades out", result.outputs),
                 ("startup to first output (s)", result.startup_s)]
    else:
        rows += [("rate (msgs/s)", result.rate), ("seconds", result.seconds),
                 ("trades measured (sent/received)", f"{result.sent:,}/{result.received:,}"),
                 ("latency p50 (ms)", result.p50_ms), ("latency p95 (ms)", result.p95_ms),
                 ("latency p99 (ms)", result.p99_ms), ("latency max (ms)", result.max_ms)]
    rows += [("CPU s per 1k msgs", result.cpu_s_per_1k), ("peak RSS (MB)", result.peak_rss_mb),
             ("transactions committed", pick(m, "transactions_committed_total")),
             ("dead letters", next((v for k, v in m.items() if k.startswith("records:")), None))]
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mix = Mix.parse(args.mix)
    profile = Path(args.profile).resolve() if args.profile else None
    bootstrap, started = broker.resolve(args.bootstrap)
    try:
        kinds = [k for k in KINDS if getattr(mix, k) > 0]
        topic_of_kind = {k: unique(f"load.{k}") for k in kinds}
        create_topics(bootstrap, dict.fromkeys(topic_of_kind.values(), args.partitions))
        count = args.count if args.scenario == "drain" else int(args.rate * args.duration) + 20_000
        print(f"generating {count:,} messages ({mix.label()}, {args.symbols} symbols, seed {args.seed})",
              file=sys.stderr, flush=True)
        messages = market_messages(args.symbols, count, mix, args.seed)
        overrides: dict[str, object] = {}
        if args.snapshot_interval_ms is not None:
            overrides["snapshot_interval_ms"] = args.snapshot_interval_ms
        target = targets.smc_stream(bootstrap, list(topic_of_kind.values()), args.partitions, args.mode,
                                    args.commit_interval_ms, Path(args.workdir),
                                    max_poll_records=args.max_poll_records, batch_size=args.batch_size,
                                    processor_overrides=overrides)
        result: DrainResult | SteadyResult
        if args.scenario == "drain":
            preload(bootstrap, topic_of_kind, messages)
            result = run_drain(target, bootstrap, topic_partitions(bootstrap, list(topic_of_kind.values())),
                               timeout_s=args.timeout, profile_to=profile,
                               profile_idle=args.profile_idle)
        else:
            result = run_steady(target, bootstrap, topic_of_kind, messages, args.rate, profile_to=profile,
                                profile_idle=args.profile_idle)
    finally:
        broker.release(started)
    title = (f"smc-runtime {args.scenario} | {args.mode} | commit {target.commit} | {args.symbols} symbols | "
             f"{args.partitions} partitions | {mix.label()}")
    print(title)
    print(table(["metric", "value"], report_rows(result)))
    if result.error:
        print(f"error: {result.error}")
    if profile is not None and profile.exists():
        samples, self_top, incl_top = top_frames(profile)
        print(f"\nprofile: {samples} samples -> {profile}")
        print(table(["self time", "frame"], [(f"{share:.1%}", frame) for frame, share in self_top]))
        print(table(["inclusive", "frame"], [(f"{share:.1%}", frame) for frame, share in incl_top]))
    if args.json:
        doc = {"scenario": args.scenario, "symbols": args.symbols, "partitions": args.partitions,
               "mix": mix.label(), "seed": args.seed, "load_average": list(__import__("os").getloadavg()),
               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **as_dict(result)}
        print(json.dumps(doc))
    return 0 if result.error is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
