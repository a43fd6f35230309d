"""Helpers of the runtime integration tests: topics and configs, feeding seeded market data, running
``smc-runtime run`` as a real subprocess, reading outputs back under read_committed, and the oracle.

The oracle is the Pipeline itself run over the committed input, partition by partition, from fresh
state: exactly what an uninterrupted run produces (outputs are a deterministic function of the
records of each source partition). A runtime run is exact when every output topic holds the same
records as the oracle: the same multiset, and for each key the same order.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from smc_runtime.config import ENV_OVERRIDE_VARIABLES, ProcessorSettings, parse_config
from smc_runtime.pipeline import Pipeline
from smc_runtime.sample_data import generate_market_data

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLES = ("enriched_trades", "orderbook_metrics", "kline_metrics", "smc_signals", "alerts", "dead_letters")
ORDERED_ROLES = ("enriched_trades", "orderbook_metrics", "kline_metrics", "dead_letters")


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass
class Topology:
    """Input topics by kind, output topics by role, all unique to one test."""

    inputs: dict[str, str]
    outputs: dict[str, str]
    group: str

    def processor(self, **overrides: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "consumer_group": self.group,
            "processing_mode": "exactly_once",
            "input_topics": list(self.inputs.values()),
            "output_topics": dict(self.outputs),
            "commit_interval_ms": 100,
            "batch_size": 2000,
            "max_poll_records": 500,
        }
        doc.update(overrides)
        return doc


def make_topology(make_topic: Any, input_partitions: int = 3, output_partitions: int = 2) -> Topology:
    tag = uuid.uuid4().hex[:8]
    inputs = {kind: make_topic(partitions=input_partitions, prefix=f"rt-in-{kind}")
              for kind in ("trades", "orderbook", "klines")}
    outputs = {role: make_topic(partitions=output_partitions, prefix=f"rt-out-{role}") for role in ROLES}
    return Topology(inputs, outputs, group=f"rt-group-{tag}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, bootstrap: str, processors: Mapping[str, dict[str, Any]],
                 processor_id: str = "rt-test-0", metrics_port: int | None = None,
                 health_port: int | None = None) -> dict[str, Any]:
    doc = {
        "kafka": {"bootstrap_servers": bootstrap},
        "processor_id": processor_id,
        "stream_processors": dict(processors),
        "monitoring": {"metrics_port": metrics_port or free_port(),
                       "health_check_port": health_port or free_port(), "log_level": "INFO"},
    }
    parse_config(doc)  # fail early in the test, not in the subprocess
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return doc


SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT",
           "DOTUSDT", "LINKUSDT", "LTCUSDT", "TRXUSDT")


def market_data(count: int, symbols: int = 12, seed: int = 11,
                malformed_every: int = 0) -> list[tuple[str, bytes, bytes]]:
    """(kind, key, value) of the first ``count`` records of the seeded sample-data generator:
    trades, order book snapshots and diffs, closed 1m klines (``kind`` = the stream suffix)."""
    names = SYMBOLS[:symbols]
    per_symbol = count // len(names) + 100  # about 1.4 records per trade: plenty
    records = generate_market_data(names, trades_per_symbol=per_symbol, seed=seed,
                                   malformed_every=malformed_every)
    return [(r.topic.rsplit(".", 1)[1], r.key, r.value) for r in itertools.islice(records, count)]


def feed(bootstrap: str, topology: Topology, messages: Iterable[tuple[str, bytes | None, bytes | None]],
         rate: float | None = None, max_message_bytes: int | None = None) -> int:
    """Produce inputs keyed by symbol (idempotent producer: no duplicates in the input itself),
    at most ``rate`` records per second if given; ``max_message_bytes`` raises the producer's record
    limit (hostile inputs of several MB)."""
    config: dict[str, str | int | bool] = {
        "bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
        "compression.type": "lz4", "queue.buffering.max.messages": 500_000}
    if max_message_bytes is not None:
        config["message.max.bytes"] = max_message_bytes
        config["queue.buffering.max.kbytes"] = 1_048_576
    producer = Producer(config)
    count = 0
    started = time.monotonic()
    for kind, key, value in messages:
        if rate is not None and count % 500 == 0:
            ahead = count / rate - (time.monotonic() - started)
            producer.poll(0)
            if ahead > 0:
                time.sleep(ahead)
        while True:
            try:
                producer.produce(topology.inputs[kind], value=value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    assert remaining == 0, f"{remaining} input records not delivered"
    return count


def read_topic(bootstrap: str, topic: str, isolation: str = "read_committed",
               timeout: float = 120.0) -> list[Record]:
    """Every record of ``topic`` visible under ``isolation``, up to the end of each partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rt-read-{uuid.uuid4().hex[:8]}",
                         "isolation.level": isolation, "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        remaining = set(partitions)
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(msg.partition())
                    continue
                records.append(Record(topic, msg.partition(), msg.offset(), msg.timestamp()[1], msg.key(),
                                      msg.value(), tuple((k, v or b"") for k, v in (msg.headers() or []))))
        assert not remaining, f"{topic}: partitions {remaining} not read to the end"
        return records
    finally:
        consumer.close()


def read_inputs(bootstrap: str, topology: Topology) -> list[Record]:
    return [r for topic in topology.inputs.values() for r in read_topic(bootstrap, topic)]


def reference_outputs(settings: ProcessorSettings, inputs: list[Record]) -> dict[str, list[tuple[Any, ...]]]:
    """The oracle: Pipeline over each source partition in offset order, outputs grouped by role."""
    pipeline = Pipeline(settings)
    by_partition: dict[tuple[str, int], list[Record]] = collections.defaultdict(list)
    for record in inputs:
        by_partition[(record.topic, record.partition)].append(record)
    outputs: dict[str, list[tuple[Any, ...]]] = {role: [] for role in ROLES}
    for tp in sorted(by_partition):
        for r in sorted(by_partition[tp], key=lambda rec: rec.offset):
            for out in pipeline.process(r.value, topic=r.topic, partition=r.partition, offset=r.offset,
                                        timestamp_ms=r.timestamp_ms, key=r.key):
                outputs[out.role].append((out.key, out.value, tuple(out.headers)))
    return outputs


def actual_outputs(bootstrap: str, topology: Topology) -> dict[str, list[tuple[Any, ...]]]:
    result: dict[str, list[tuple[Any, ...]]] = {}
    for role, topic in topology.outputs.items():
        records = sorted(read_topic(bootstrap, topic), key=lambda r: (r.partition, r.offset))
        result[role] = [(r.key, r.value, r.headers) for r in records]
    return result


Outputs = dict[str, list[tuple[Any, ...]]]


def compare(expected: Outputs, actual: Outputs) -> list[str]:
    """Differences between oracle and runtime outputs (empty list: identical)."""
    problems: list[str] = []
    for role in ROLES:
        exp, act = expected.get(role, []), actual.get(role, [])
        exp_c, act_c = collections.Counter(exp), collections.Counter(act)
        if exp_c != act_c:
            missing = sum((exp_c - act_c).values())
            extra = sum((act_c - exp_c).values())
            problems.append(f"{role}: expected {len(exp)} records, got {len(act)} "
                            f"({missing} missing, {extra} duplicated/unexpected)")
            continue
        if role in ORDERED_ROLES:
            for key in {r[0] for r in exp}:
                if [r for r in exp if r[0] == key] != [r for r in act if r[0] == key]:
                    problems.append(f"{role}: order differs for key {key!r}")
    return problems


def total_outputs(expected: dict[str, list[tuple[Any, ...]]]) -> int:
    return sum(len(v) for v in expected.values())


def committed_count(bootstrap: str, topology: Topology) -> int:
    """Records visible (read_committed) on all output topics together, cheaply via watermarks."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rt-wm-{uuid.uuid4().hex[:8]}",
                         "isolation.level": "read_committed"})
    try:
        total = 0
        for topic in topology.outputs.values():
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                total += hi - lo
        return total
    finally:
        consumer.close()


def group_lag(bootstrap: str, topology: Topology) -> int:
    """Input records not yet covered by the group's committed offsets (-1: broker not answering)."""
    try:
        return _group_lag(bootstrap, topology)
    except KafkaException:
        return -1


def _group_lag(bootstrap: str, topology: Topology) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topology.group,
                         "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p) for t in topology.inputs.values()
               for p in consumer.list_topics(t, timeout=10).topics[t].partitions]
        committed = consumer.committed(tps, timeout=10)
        lag = 0
        for tp in committed:
            _, hi = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            lag += hi - (tp.offset if tp.offset >= 0 else 0)
        return lag
    finally:
        consumer.close()


def wait_until(what: str, probe: Any, timeout: float, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def http_text(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


class RuntimeProcess:
    """``smc-runtime run`` as a real subprocess (own process group), logs to a file."""

    def __init__(self, config: Path, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        # The config file is the test's source of truth: variables that would override it (the test
        # bed exports KAFKA_BOOTSTRAP_SERVERS, for one) are not inherited, only passed explicitly.
        inherited = {k: v for k, v in os.environ.items() if k not in ENV_OVERRIDE_VARIABLES}
        self.env = {**inherited, "HTTP_BIND_ADDRESS": "127.0.0.1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        doc = yaml.safe_load(config.read_text())
        self.health_port = int(self.env.get("HEALTH_CHECK_PORT") or doc["monitoring"]["health_check_port"])
        self.metrics_port = int(self.env.get("METRICS_PORT") or doc["monitoring"]["metrics_port"])

    def start(self) -> RuntimeProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "smc_runtime.cli", "run", "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=REPO_ROOT, start_new_session=True)
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.health_port}{path}"

    def ready(self) -> bool:
        with contextlib.suppress(OSError):
            return http_json(self.url("/ready"), timeout=1.0)[0] == 200
        return False

    def http_processed(self, processor: str = "main") -> int:
        """messages_processed from /health (0 if not answering)."""
        try:
            doc = http_json(self.url("/health"), timeout=1.0)[1]
            return int(doc["processors"][processor]["metrics"]["messages_processed"])
        except (OSError, KeyError, TypeError, ValueError):
            return 0

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until("runtime /ready", lambda: self.alive() and self.ready(), timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no commit, no leave, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def dump_stacks(self) -> None:
        """SIGUSR1: the runtime writes every thread's Python stack to its log (faulthandler)."""
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(0.5)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running(config: Path, log: Path, env: Mapping[str, str] | None = None) -> Iterator[RuntimeProcess]:
    runtime = RuntimeProcess(config, log, env).start()
    try:
        yield runtime
    finally:
        if runtime.alive():
            runtime.kill()
