"""Side-by-side benchmark: smc-stream, Quix Streams, faust-streaming and a bare confluent-kafka loop.

    make bench                                  # installs the bench extra into .venv-bench, then this
    python -m benchmarks.run_all --count 300000 --rate 2000 --json

One broker, one pre-loaded trades-only input (same bytes for everyone), one process per framework, the
same partitions, the same commit interval (``--commit-interval-ms``) and also each framework's default.
Drain throughput and CPU come from the pre-loaded input; p50/p99 latency from a steady run at
``--rate`` msgs/s on a fresh input. Results go to ``benchmarks/results/`` as JSON and Markdown.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from benchmarks import broker, targets
from benchmarks.harness import (
    DrainResult,
    SteadyResult,
    Target,
    as_dict,
    create_topics,
    delete_run_topics,
    preload,
    run_drain,
    run_steady,
    topic_partitions,
    unique,
)
from benchmarks.report import table
from benchmarks.workload import TRADES_ONLY, Message, market_messages

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FRAMEWORKS = ("smc-stream", "bare", "quix", "faust")
MODES = ("exactly_once", "at_least_once")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=None, help="default: $KAFKA_BOOTSTRAP_SERVERS or the test bed")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--count", type=int, default=300_000, help="trades pre-loaded for the drain runs")
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--commit-interval-ms", type=int, default=100, help="the common commit interval")
    parser.add_argument("--no-defaults", action="store_true", help="skip the framework-default commit runs")
    parser.add_argument("--rate", type=float, default=2000.0, help="steady rate for the latency columns")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of steady production")
    parser.add_argument("--no-steady", action="store_true")
    parser.add_argument("--no-drain", action="store_true", help="only the steady (latency) runs")
    parser.add_argument("--floor", action="store_true",
                        help="first a steady run without a processor: the collector reads the input "
                             "topic itself (the latency floor of the load generator, broker and collector)")
    parser.add_argument("--peer-python", default=None,
                        help="interpreter for Quix and Faust (default: .venv-bench/bin/python if present)")
    parser.add_argument("--drain-timeout", type=float, default=90.0,
                        help="stop a drain run after this many seconds (the rate so far is reported)")
    parser.add_argument("--workdir", default="/tmp/smc-bench")
    parser.add_argument("--smc-batch-size", type=int, default=None,
                        help="smc-stream batch_size (messages per transaction at most; default: its own)")
    parser.add_argument("--smc-max-poll-records", type=int, default=None)
    parser.add_argument("--label", default="latest",
                        help="results file name: results/<label>.{json,md} (default: latest)")
    parser.add_argument("--json", action="store_true", help="print all results as one JSON object last")
    parser.add_argument("--settle-s", type=float, default=3.0,
                        help="before each measured run: write dirty pages out (sync) and wait this long, "
                             "so no run pays for the previous run's writeback and broker clean-up")
    parser.add_argument("--broker-warmup", type=int, default=400_000, metavar="N",
                        help="before measuring, every framework drains N trades (exactly-once, unmeasured), "
                             "so the broker is warm for whichever run is first (0: off)")
    parser.add_argument("--smc-producer", action="append", default=[], metavar="KEY=VALUE",
                        help="librdkafka producer setting for smc-stream (kafka_clients.producer); "
                             "repeatable")
    parser.add_argument("--smc-consumer", action="append", default=[], metavar="KEY=VALUE",
                        help="librdkafka consumer setting for smc-stream (kafka_clients.consumer); "
                             "repeatable")
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="record a py-spy profile of every smc-stream run into DIR (collapsed stacks)")
    parser.add_argument("--profile-idle", action="store_true",
                        help="with --profile: also sample waiting threads (wall clock, not CPU)")
    return parser.parse_args(argv)


def client_overrides(producer: list[str], consumer: list[str]) -> dict[str, object] | None:
    """``--smc-producer`` / ``--smc-consumer KEY=VALUE`` flags as the processor's ``kafka_clients``."""
    sections: dict[str, object] = {}
    for role, settings in (("producer", producer), ("consumer", consumer)):
        if settings:
            values: dict[str, object] = {}
            for item in settings:
                key, _, value = item.partition("=")
                values[key] = int(value) if value.lstrip("-").isdigit() else value
            sections[role] = values
    return {"kafka_clients": sections} if sections else None


def make_target(framework: str, bootstrap: str, topic: str, partitions: int, mode: str,
                commit_ms: int | None, workdir: Path, args: argparse.Namespace) -> Target:
    if framework == "smc-stream":
        return targets.smc_stream(bootstrap, [topic], partitions, mode, commit_ms, workdir,
                                  trade_windows_like_peers=True, batch_size=args.smc_batch_size,
                                  max_poll_records=args.smc_max_poll_records,
                                  processor_overrides=client_overrides(args.smc_producer, args.smc_consumer))
    return targets.peer(framework, bootstrap, topic, partitions, mode, commit_ms, workdir,
                        python=args.peer_python)


def profile_path(args: argparse.Namespace, scenario: str, framework: str,
                 commit_ms: int | None) -> Path | None:
    """Where ``--profile`` puts the py-spy profile of one smc-stream run (None: not profiled)."""
    if args.profile is None or framework != "smc-stream":
        return None
    commit = f"{commit_ms}ms" if commit_ms is not None else "default"
    idle = "-idle" if args.profile_idle else ""
    return Path(args.profile) / f"{args.label}-{scenario}-{commit}{idle}.txt"


def commit_settings(framework: str, common_ms: int, with_defaults: bool) -> list[int | None]:
    """The common interval, plus the framework default when it differs from it."""
    settings: list[int | None] = [common_ms]
    if with_defaults and targets.DEFAULT_COMMIT[framework] != f"{common_ms} ms":
        settings.append(None)
    return settings


def summary_rows(drains: list[DrainResult], steadies: list[SteadyResult]) -> list[list[object]]:
    latency = {(s.framework, s.mode, s.commit): s for s in steadies}
    smc = {(d.mode, d.commit.startswith("default")): d.msgs_per_s
           for d in drains if d.framework == "smc-stream"}
    rows: list[list[object]] = []
    for d in drains:
        s = latency.get((d.framework, d.mode, d.commit))
        # A "default" row compares with smc-stream at its default, which is the common row when equal.
        ref = smc.get((d.mode, d.commit.startswith("default"))) or smc.get((d.mode, False))
        ratio = f"{ref / d.msgs_per_s:.2f}x" if ref and d.msgs_per_s else "-"
        rows.append([
            targets.FRAMEWORK_NAMES[d.framework], d.mode, d.commit,
            f"{d.msgs_per_s:,.0f}" + ("" if d.complete else "*"),
            s.p50_ms if s else None, s.p99_ms if s else None,
            d.cpu_s_per_1k, d.peak_rss_mb, ratio,
        ])
    drained = {(d.framework, d.mode, d.commit) for d in drains}
    for s in steadies:  # steady-only runs (--no-drain) and the floor
        if (s.framework, s.mode, s.commit) not in drained:
            measured = s.framework != "floor"  # the floor runs a sleep: no CPU or RSS worth a column
            rows.append([targets.FRAMEWORK_NAMES[s.framework], s.mode, s.commit, "-", s.p50_ms, s.p99_ms,
                         s.cpu_s_per_1k if measured else None, s.peak_rss_mb if measured else None, "-"])
    return rows


def drain_footnote(drains: list[DrainResult]) -> str | None:
    """The note for rates marked ``*``, only when a drain run was cut short (else no row carries one)."""
    if all(d.complete for d in drains):
        return None
    return "* drain stopped at --drain-timeout: rate over the part that was committed"


HEADERS = ["framework", "mode", "commit", "msgs/s", "p50 ms", "p99 ms", "CPU s/1k", "RSS MB",
           "smc-stream / this"]


def save(args: argparse.Namespace, drains: list[DrainResult], steadies: list[SteadyResult],
         partial: bool) -> dict[str, Any]:
    """Write results so far: ``partial.json`` while running; a stamped file and latest.json at the end."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    doc: dict[str, Any] = {
        "finished_at": stamp, "machine": f"{os.cpu_count()} cores, {memory_gib:.0f} GiB",
        "python": platform.python_version(), "load_average": list(os.getloadavg()), "arguments": vars(args),
        "drain": [as_dict(d) for d in drains], "steady": [as_dict(s) for s in steadies],
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2)
    if partial:
        (RESULTS_DIR / "partial.json").write_text(text)
    else:
        (RESULTS_DIR / f"bench-{stamp}.json").write_text(text)
        labelled = RESULTS_DIR / f"{args.label}.json"
        labelled.parent.mkdir(parents=True, exist_ok=True)  # a label may name a directory: "s12/run-1"
        labelled.write_text(text)
        (RESULTS_DIR / "partial.json").unlink(missing_ok=True)
    return doc


def warm_broker(bootstrap: str, messages: list[Message], count: int, frameworks: list[str],
                args: argparse.Namespace) -> None:
    """Unmeasured drains of ``count`` trades by every framework of the run, each with its own group:
    the first runs on a fresh broker otherwise pay for its JIT warm-up and its first use of what only
    some frameworks exercise (compressed batches, compacted changelogs, more partitions per transaction)."""
    if count <= 0:
        return
    topic = unique("bench.warmup")
    create_topics(bootstrap, {topic: args.partitions})
    preload(bootstrap, {"trades": topic}, messages[:count], show_progress=False)
    inputs = topic_partitions(bootstrap, [topic])
    for framework in frameworks:
        target = make_target(framework, bootstrap, topic, args.partitions, "exactly_once",
                             args.commit_interval_ms, Path(args.workdir), args)
        started = time.monotonic()
        result = run_drain(target, bootstrap, inputs, timeout_s=60.0, show_progress=False)
        print(f"broker warm-up: {min(count, len(messages)):,} trades through {framework} in "
              f"{time.monotonic() - started:.1f}s ({result.error or 'ok'})", file=sys.stderr, flush=True)


def settle(seconds: float) -> None:
    """The same starting point for every run: the previous run's output written to disk, then a pause.
    Without it the first steady run (smc-stream's) followed the bare loop's drain of 600,000 records."""
    if seconds <= 0:
        return
    os.sync()
    time.sleep(seconds)


def main(argv: list[str] | None = None) -> int:
    faulthandler.enable()  # a crash in a native client library prints the Python stacks of every thread
    args = parse_args(argv)
    frameworks = [f for f in args.frameworks.split(",") if f]
    modes = [m for m in args.modes.split(",") if m]
    workdir = Path(args.workdir)
    bootstrap, started = broker.resolve(args.bootstrap)
    drains: list[DrainResult] = []
    steadies: list[SteadyResult] = []
    try:
        # The drain input (and the warm-up's share of it): a steady-only run without warm-up needs none.
        drain_count = args.count if not args.no_drain else min(args.count, max(0, args.broker_warmup))
        print(f"generating {drain_count:,} trades over {args.symbols} symbols (seed {args.seed})",
              file=sys.stderr)
        messages = market_messages(args.symbols, drain_count, TRADES_ONLY, args.seed) if drain_count else []
        inputs: list[TopicPartition] = []
        if not args.no_drain:
            source = unique("bench.trades")
            create_topics(bootstrap, {source: args.partitions})
            preload(bootstrap, {"trades": source}, messages)
            inputs = topic_partitions(bootstrap, [source])
        warm_broker(bootstrap, messages, args.broker_warmup, frameworks, args)
        for framework in frameworks if not args.no_drain else ():
            for mode in modes:
                for commit_ms in commit_settings(framework, args.commit_interval_ms, not args.no_defaults):
                    target = make_target(framework, bootstrap, source, args.partitions, mode, commit_ms,
                                         workdir, args)
                    print(f"\n== drain: {framework} {mode} commit {target.commit}", file=sys.stderr,
                          flush=True)
                    settle(args.settle_s)
                    try:
                        result = run_drain(target, bootstrap, inputs, timeout_s=args.drain_timeout,
                                           profile_to=profile_path(args, "drain", framework, commit_ms),
                                           profile_idle=args.profile_idle)
                    except Exception as exc:  # one broken run must not lose the others
                        print(f"   failed: {exc!r}", file=sys.stderr, flush=True)
                        continue
                    print(f"   {result.msgs_per_s:,.0f} msgs/s  cpu {result.cpu_s_per_1k} s/1k  "
                          f"rss {result.peak_rss_mb} MB  {result.error or ''}", file=sys.stderr, flush=True)
                    drains.append(result)
                    save(args, drains, steadies, partial=True)
        if not args.no_steady:
            steady_count = int(args.rate * args.duration) + 5_000
            steady_messages = market_messages(args.symbols, steady_count, TRADES_ONLY, args.seed + 1)
            runs = [("floor", "-")] if args.floor else []
            runs += [(framework, mode) for framework in frameworks for mode in modes]
            for framework, mode in runs:
                topic = unique("bench.steady")
                create_topics(bootstrap, {topic: args.partitions})
                target = (targets.floor(topic) if framework == "floor" else
                          make_target(framework, bootstrap, topic, args.partitions, mode,
                                      args.commit_interval_ms, workdir, args))
                print(f"\n== steady {args.rate:,.0f}/s: {framework} {mode} commit {target.commit}",
                      file=sys.stderr, flush=True)
                settle(args.settle_s)
                try:
                    steady = run_steady(target, bootstrap, {"trades": topic}, steady_messages, args.rate,
                                        profile_to=profile_path(args, "steady", framework,
                                                                args.commit_interval_ms),
                                        profile_idle=args.profile_idle)
                except Exception as exc:
                    print(f"   failed: {exc!r}", file=sys.stderr, flush=True)
                    continue
                print(f"   p50 {steady.p50_ms} ms  p99 {steady.p99_ms} ms  "
                      f"({steady.received:,}/{steady.sent:,})  {steady.error or ''}", file=sys.stderr,
                      flush=True)
                steadies.append(steady)
                save(args, drains, steadies, partial=True)
    finally:
        if not started:  # a broker we started goes away with its topics
            print(f"deleted {delete_run_topics(bootstrap)} topics of this run", file=sys.stderr)
        broker.release(started)
    rows = summary_rows(drains, steadies)
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    machine = f"{os.cpu_count()} cores, {memory_gib:.0f} GiB"
    drained = f"{args.count:,} trades" if not args.no_drain else "no drain"
    header = (f"{drained}, {args.symbols} symbols, {args.partitions} partitions; latency at "
              f"{args.rate:,.0f} msgs/s; {machine}; load average at end {os.getloadavg()[0]:.1f}")
    print("\n" + header)
    print(table(HEADERS, rows))
    footnote = drain_footnote(drains)
    if footnote:
        print(footnote)
    doc = save(args, drains, steadies, partial=False)
    (RESULTS_DIR / f"{args.label}.md").write_text(f"{header}\n\n{table(HEADERS, rows, markdown=True)}\n")
    if args.json:
        print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
