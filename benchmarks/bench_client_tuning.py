"""Effect of the main tuning knobs on smc-stream (exactly-once) against the test bed's Kafka.

    python -m benchmarks.bench_client_tuning [--count 100000] [--rate 3000] [--only NAME,...]

Each variant changes one thing from the defaults: a librdkafka setting through ``kafka_clients``
(the same path users take in streams-config.yaml), or ``max_poll_records`` / ``batch_size`` /
``commit_interval_ms``. Per variant: a drain run over one pre-loaded mixed input (throughput, CPU
per 1,000 messages) and a steady run at ``--rate`` (end-to-end latency percentiles). Prints a
table and writes ``results/client-tuning.{json,md}``. Numbers from a shared 2-core machine are
noisy: compare rows of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
T = TypeVar("T")


def _twice(what: str, run: Callable[[], T]) -> T:
    """One retry: a freshly created topic is sometimes not yet in the metadata the harness reads."""
    try:
        return run()
    except (KeyError, RuntimeError) as exc:
        print(f"   {what} failed ({type(exc).__name__}: {exc}); retrying once", file=sys.stderr, flush=True)
        time.sleep(2.0)
        return run()

# name -> processor overrides (one change from the defaults each)
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "producer linger.ms=0": {"kafka_clients": {"producer": {"linger.ms": 0}}},
    "producer linger.ms=50": {"kafka_clients": {"producer": {"linger.ms": 50}}},
    "producer batch.size=16384": {"kafka_clients": {"producer": {"batch.size": 16_384}}},
    "producer compression.type=none": {"kafka_clients": {"producer": {"compression.type": "none"}}},
    "producer compression.type=zstd": {"kafka_clients": {"producer": {"compression.type": "zstd"}}},
    "consumer fetch.wait.max.ms=5": {"kafka_clients": {"consumer": {"fetch.wait.max.ms": 5}}},
    "consumer fetch.wait.max.ms=200": {"kafka_clients": {"consumer": {"fetch.wait.max.ms": 200}}},
    "consumer fetch.min.bytes=65536": {"kafka_clients": {"consumer": {"fetch.min.bytes": 65_536}}},
    "max_poll_records=50": {"max_poll_records": 50},
    "max_poll_records=2000": {"max_poll_records": 2000},
    "commit_interval_ms=20": {"commit_interval_ms": 20},
    "commit_interval_ms=1000": {"commit_interval_ms": 1000},
}


def _drain(target: Callable[[], Any], bootstrap: str, inputs: Any) -> Any:
    return run_drain(target(), bootstrap, inputs, timeout_s=300)


def _steady(bootstrap: str, kinds: list[str], args: argparse.Namespace, workdir: Path,
            overrides: dict[str, Any], messages: Any) -> Any:
    steady_topics = {k: unique(f"tuning.steady.{k}") for k in kinds}
    create_topics(bootstrap, dict.fromkeys(steady_topics.values(), args.partitions))
    target = targets.smc_stream(bootstrap, list(steady_topics.values()), args.partitions, "exactly_once",
                                None, workdir, processor_overrides=overrides)
    return run_steady(target, bootstrap, steady_topics, messages, args.rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--count", type=int, default=100_000, help="drain: messages pre-loaded")
    parser.add_argument("--rate", type=float, default=3000.0, help="steady: messages per second")
    parser.add_argument("--duration", type=float, default=10.0, help="steady: seconds of production")
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--mix", default="trades=0.8,orderbook=0.15,klines=0.05")
    parser.add_argument("--only", default=None, help="comma-separated variant names (default: all)")
    parser.add_argument("--no-steady", action="store_true", help="drain runs only")
    parser.add_argument("--workdir", default="/tmp/smc-bench-tuning")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    mix = Mix.parse(args.mix)
    kinds = [k for k in KINDS if getattr(mix, k) > 0]
    bootstrap, started = broker.resolve(args.bootstrap)
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    try:
        drain_topics = {k: unique(f"tuning.{k}") for k in kinds}
        create_topics(bootstrap, dict.fromkeys(drain_topics.values(), args.partitions))
        preload(bootstrap, drain_topics, market_messages(args.symbols, args.count, mix, 7))
        inputs = topic_partitions(bootstrap, list(drain_topics.values()))
        steady_messages = market_messages(args.symbols, int(args.rate * args.duration) + 5_000, mix, 8)
        workdir = Path(args.workdir)
        for name in names:
            overrides = VARIANTS[name]
            print(f"\n== drain: {name}", file=sys.stderr, flush=True)
            target = functools.partial(targets.smc_stream, bootstrap, list(drain_topics.values()),
                                       args.partitions, "exactly_once", None, workdir,
                                       processor_overrides=overrides)
            drain = _twice("drain", functools.partial(_drain, target, bootstrap, inputs))
            row: list[Any] = [name, drain.msgs_per_s, drain.cpu_s_per_1k]
            result: dict[str, Any] = {"variant": name, "overrides": overrides, "drain": as_dict(drain)}
            if not args.no_steady:
                print(f"== steady {args.rate:,.0f}/s: {name}", file=sys.stderr, flush=True)
                steady = _twice("steady", functools.partial(_steady, bootstrap, kinds, args, workdir,
                                                            overrides, steady_messages))
                row += [steady.p50_ms, steady.p99_ms, steady.cpu_s_per_1k]
                result["steady"] = as_dict(steady)
            rows.append(row)
            results.append(result)
    finally:
        broker.release(started)
    headers = ["variant", "drain msgs/s", "drain CPU s/1k"]
    if not args.no_steady:
        headers += [f"p50 ms @{args.rate:,.0f}/s", "p99 ms", "steady CPU s/1k"]
    print(table(headers, rows))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "client-tuning.json").write_text(json.dumps({"arguments": vars(args), "runs": results},
                                                               indent=2))
    (RESULTS_DIR / "client-tuning.md").write_text(table(headers, rows, markdown=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
