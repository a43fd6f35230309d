"""``make demo``: the whole runtime end to end on this machine, then a readable summary.

1. Start the test bed's Kafka (reused if already running), create the demo topics.
2. Start ``smc-runtime run`` (exactly-once) as a subprocess with a demo config; print its URLs.
3. Replay seeded market data (many symbols: trades, order book snapshots/diffs, 1m klines, a few
   malformed records): first as fast as possible (throughput), then at a steady live-like rate
   (end-to-end latency, from the runtime's own histogram), with progress lines.
4. Wait until every input record is committed, read the outputs back under read_committed and
   print the summary: records in/out per topic, dead letters by reason, SMC patterns by type with
   examples, throughput, latency p50/p99.
5. Stop everything this command started (the runtime; Kafka only if the demo started it).
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from smc_runtime.config import OutputTopics, parse_config
from smc_runtime.demo_report import DEMO_CONTEXT, DEMO_SERIES, histogram, quantile, summarize
from smc_runtime.sample_data import MarketRecord, generate_market_data

REPO_ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT")
COMMIT_INTERVAL_MS = 100


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Kafka ------------------------------------------------------------------------------------------------


def start_kafka() -> tuple[str, list[str]]:
    """The test bed's broker: (bootstrap, components this call started)."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from tests.testbed import bed
    except ImportError as exc:  # the demo needs the repository checkout, not just the package
        raise SystemExit(f"the demo runs from a clone of the repository ({exc})") from None
    started = bed.up(["kafka"])
    state = bed.load_state()  # type: ignore[attr-defined]
    return str(state["kafka"]["bootstrap"]), list(started)


def stop_kafka(started: list[str]) -> None:
    if started:
        from tests.testbed import bed

        bed.down(started)


def recreate_topics(admin: AdminClient, topics: dict[str, int]) -> None:
    """Fresh topics for this run (a reused broker may hold a previous demo's)."""
    existing = set(admin.list_topics(timeout=10).topics)
    stale = [t for t in topics if t in existing]
    if stale:
        for future in admin.delete_topics(stale, operation_timeout=30).values():
            future.result()
        deadline = time.monotonic() + 30
        while set(stale) & set(admin.list_topics(timeout=10).topics) and time.monotonic() < deadline:
            time.sleep(0.2)
    new = [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()]
    for topic, future in admin.create_topics(new, operation_timeout=30).items():
        try:
            future.result()
        except Exception as exc:  # a topic still being deleted: one retry after a pause
            say(f"retrying creation of {topic}: {exc}")
            time.sleep(2)
            admin.create_topics([NewTopic(topic, num_partitions=topics[topic], replication_factor=1)])[
                topic].result()


def committed_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p) for t in topics
               for p in consumer.list_topics(t, timeout=10).topics[t].partitions]
        lag = 0
        for tp in consumer.committed(tps, timeout=10):
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    except Exception:
        return -1
    finally:
        consumer.close()


# --- the runtime ------------------------------------------------------------------------------------------


@dataclass
class Runtime:
    proc: subprocess.Popen[bytes]
    health_port: int
    metrics_port: int
    log: Path

    def get(self, url: str) -> str:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode())

    def health(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.get(f"http://127.0.0.1:{self.health_port}/health")))
        except (OSError, ValueError):
            return {}

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        return self.get(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait()


def start_runtime(config: Path, health_port: int, metrics_port: int, log: Path) -> Runtime:
    env = {**os.environ, "HTTP_BIND_ADDRESS": "127.0.0.1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "runtime"), env.get("PYTHONPATH")]))
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "smc_runtime.cli", "run", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return Runtime(proc, health_port, metrics_port, log)


# --- replay -----------------------------------------------------------------------------------------------


def market_records(symbols: Sequence[str], trades_per_symbol: int, exchange: str) -> list[MarketRecord]:
    """The seeded sample data, on topics ``market_data.<exchange>.<symbol>.<type>``."""
    records = generate_market_data(symbols, trades_per_symbol=trades_per_symbol, seed=7,
                                   malformed_every=2_000)
    return [r._replace(topic=r.topic.replace("market_data.binance.", f"market_data.{exchange}.", 1))
            for r in records]


def replay(producer: Producer, records: Sequence[MarketRecord], rate: float | None, runtime: Runtime,
           label: str) -> None:
    started = last_report = time.monotonic()
    for count, record in enumerate(records, start=1):
        while True:
            try:
                producer.produce(record.topic, value=record.value, key=record.key)
                break
            except BufferError:
                producer.poll(0.05)
        if rate is not None and count % 20 == 0:  # a smooth live-like stream, not bursts
            ahead = count / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if count % 500 == 0:
            producer.poll(0)
            now = time.monotonic()
            if now - last_report >= 2:
                last_report = now
                processed = runtime.health().get("processors", {}).get("demo", {}).get("metrics", {})
                say(f"  {label}: sent {count:,}/{len(records):,}, runtime processed "
                    f"{processed.get('messages_processed', 0):,} "
                    f"({processed.get('throughput_per_second', 0):,.0f} msg/s)")
    producer.flush(60)


# --- main -------------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m smc_runtime.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=8, help="number of symbols (max 8)")
    parser.add_argument("--trades-per-symbol", type=int, default=9_000)
    parser.add_argument("--rate", type=float, default=2_000.0, help="records/s of the live phase")
    parser.add_argument("--live-share", type=float, default=0.3, help="share of the data replayed live")
    parser.add_argument("--commit-interval-ms", type=int, default=COMMIT_INTERVAL_MS,
                        help="COMMIT_INTERVAL_MS of the runtime (latency/throughput trade-off)")
    parser.add_argument("--keep-running", action="store_true", help="leave the runtime up until Ctrl-C")
    return parser.parse_args(argv)


def _config_doc(bootstrap: str, tag: str, group: str, input_topics: list[str], outputs: OutputTopics,
                commit_interval_ms: int, health_port: int, metrics_port: int) -> dict[str, Any]:
    """The demo's streams-config document (validated by the caller)."""
    return {
        "kafka": {"bootstrap_servers": bootstrap},
        "processor_id": f"smc-demo-{tag}",
        "stream_processors": {"demo": {
            "consumer_group": group, "processing_mode": "exactly_once",
            "commit_interval_ms": commit_interval_ms, "batch_size": 2_000, "max_poll_records": 1_000,
            "input_topics": input_topics, "output_topics": outputs.by_role(),
            "enrichment": {"klines": {"bars_from_trades": False}},
            # the per-bar series (issue 15), chosen to fire within the demo's hours from 00:00 UTC
            "detection": {"series": DEMO_SERIES, **DEMO_CONTEXT},
        }},
        "monitoring": {"metrics_port": metrics_port, "health_check_port": health_port,
                       "log_level": "INFO"},
    }


def _wait_ready(runtime: Runtime) -> bool:
    """Until /ready answers (90 s); False, with the log's tail printed, if the runtime exits first."""
    deadline = time.monotonic() + 90
    while not runtime.ready():
        if runtime.proc.poll() is not None or time.monotonic() > deadline:
            say("the runtime did not become ready; last log lines:")
            print("\n".join(runtime.log.read_text(errors="replace").splitlines()[-20:]))
            return False
        time.sleep(0.3)
    return True


def _measure(bootstrap: str, producer: Producer, runtime: Runtime, records: list[MarketRecord],
             group: str, input_topics: list[str], outputs: OutputTopics, args: argparse.Namespace) -> None:
    """Phase 1 replays the backlog as fast as possible (throughput), phase 2 the rest at ``--rate``
    (latency from the runtime's end-to-end histogram between two scrapes); then the summary."""
    split = int(len(records) * (1 - args.live_share))
    say(f"phase 1: replaying {split:,} records as fast as possible (throughput)")
    t0 = time.monotonic()
    replay(producer, records[:split], None, runtime, "backlog")
    wait_committed(bootstrap, group, input_topics, runtime)
    drain_seconds = time.monotonic() - t0
    before = runtime.metrics()
    say(f"phase 2: replaying {len(records) - split:,} records at {args.rate:,.0f} msg/s (latency)")
    replay(producer, records[split:], args.rate, runtime, "live")
    wait_committed(bootstrap, group, input_topics, runtime)
    after = runtime.metrics()
    e2e_before = histogram(before, "smc_runtime_end_to_end_latency_seconds")
    e2e_after = histogram(after, "smc_runtime_end_to_end_latency_seconds")
    latency = (quantile(e2e_before, e2e_after, 0.5), quantile(e2e_before, e2e_after, 0.99))
    kinds = collections.Counter(r.topic.rsplit(".", 1)[1] for r in records)
    summarize(bootstrap, dict(kinds), outputs, (split, drain_seconds), latency, after, args.rate,
              args.commit_interval_ms)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    say("starting the test bed's Kafka (first run downloads the Kafka jars; later runs reuse them)")
    bootstrap, started = start_kafka()
    say(f"Kafka at {bootstrap}")
    runtime: Runtime | None = None
    created: list[str] = []
    admin = AdminClient({"bootstrap.servers": bootstrap})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    workdir = Path(tempfile.mkdtemp(prefix="smc-demo-"))
    try:
        symbols = SYMBOLS[:max(1, min(args.symbols, len(SYMBOLS)))]
        # Every name carries a run tag: demos sharing one broker never collide or fence each other.
        tag = uuid.uuid4().hex[:6]
        say(f"generating market data for {len(symbols)} symbols (run {tag})")
        records = market_records(symbols, args.trades_per_symbol, exchange=f"binance-{tag}")
        input_topics = sorted({r.topic for r in records})
        outputs = OutputTopics.model_validate({role: f"{topic}.{tag}"
                                               for role, topic in OutputTopics().by_role().items()})
        group = f"smc-demo-{tag}"
        recreate_topics(admin, {**dict.fromkeys(input_topics, 1),
                                **dict.fromkeys(outputs.by_role().values(), 3)})
        created = [*input_topics, *outputs.by_role().values()]
        say(f"created {len(input_topics)} input topics (market_data.binance-{tag}.<symbol>.<type>) and "
            f"{len(outputs.by_role())} output topics")

        health_port, metrics_port = free_port(), free_port()
        doc = _config_doc(bootstrap, tag, group, input_topics, outputs, args.commit_interval_ms, health_port,
                          metrics_port)
        parse_config(doc)
        config = workdir / "streams-config.yaml"
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        runtime = start_runtime(config, health_port, metrics_port, workdir / "runtime.log")
        say(f"smc-runtime run started (pid {runtime.proc.pid}, log {runtime.log})")
        say(f"  health   http://127.0.0.1:{health_port}/health   /ready   /status")
        say(f"  metrics  http://127.0.0.1:{metrics_port}/metrics")
        if not _wait_ready(runtime):
            return 1
        say("runtime ready (partitions assigned, state restored)")
        _measure(bootstrap, producer, runtime, records, group, input_topics, outputs, args)
        say(f"health  http://127.0.0.1:{health_port}/health -> healthy={runtime.health().get('healthy')}")
        if args.keep_running:
            say("runtime left running; Ctrl-C stops it")
            with_interrupt_wait()
        return 0
    finally:
        if runtime is not None:
            code = runtime.stop()
            say(f"runtime stopped (exit code {code})")
        if created and not started:  # a reused broker keeps running: leave it as we found it
            admin.delete_topics([*created, f"{group}.changelog"], operation_timeout=30)
            say(f"deleted this run's {len(created) + 1} topics")
        if started:  # destroy the clients while Kafka is up (else librdkafka logs reconnect errors)
            del admin, producer
            gc.collect()
        stop_kafka(started)
        if started:
            say("Kafka stopped")


def wait_committed(bootstrap: str, group: str, topics: Sequence[str], runtime: Runtime) -> None:
    deadline = time.monotonic() + 300
    while committed_lag(bootstrap, group, topics) != 0:
        if runtime.proc.poll() is not None:
            raise SystemExit(f"the runtime exited with code {runtime.proc.returncode}; see {runtime.log}")
        if time.monotonic() > deadline:
            raise SystemExit("the runtime did not catch up within 300 s")
        time.sleep(0.2)


def with_interrupt_wait() -> None:
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
