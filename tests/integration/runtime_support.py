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
from confluent_kafka import Consumer, KafkaException, TopicPartition

from smc_runtime import sample_feed
from smc_runtime.config import ENV_OVERRIDE_VARIABLES, ProcessorSettings, parse_config
from smc_runtime.pipeline import Pipeline

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
    """(kind, key, value) of the first ``count`` records of the seeded sample-data generator over the
    first ``symbols`` of SYMBOLS (``kind`` = the stream suffix)."""
    return sample_feed.sample_records(count, SYMBOLS[:symbols], seed, malformed_every)


def feed(bootstrap: str, topology: Topology, messages: Iterable[sample_feed.InputRecord],
         rate: float | None = None, max_message_bytes: int | None = None) -> int:
    """Produce inputs to the topology's input topics (sample_feed.feed: idempotent, keyed by symbol)."""
    return sample_feed.feed(bootstrap, topology.inputs, messages, rate, max_message_bytes)


def read_topic(bootstrap: str, topic: str, isolation: str = "read_committed",
               timeout: float = 120.0) -> list[Record]:
    """Every record of ``topic`` visible under ``isolation``, up to the end of each partition."""
    return [Record(topic, int(msg.partition() or 0), int(msg.offset() or 0), msg.timestamp()[1], msg.key(),
                   msg.value(), tuple((k, v or b"") for k, v in (msg.headers() or [])))
            for msg in sample_feed.read_to_end(bootstrap, topic, isolation, timeout)]


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


class PrivateBroker:
    """A single-node broker of its own (the test bed's Kafka module in another directory) that a test
    may stop and start again on the same data and port without disturbing the shared one."""

    def __init__(self, state: Mapping[str, object]) -> None:
        self.bootstrap = str(state["bootstrap"])
        self.port = int(str(state["port"]))
        self.argv: list[str] = []
        self._admin: Any = None

    def stop(self) -> None:
        from tests.testbed import common
        from tests.testbed import kafka as testbed_kafka

        service = common.read_service(testbed_kafka.NAME)
        assert service is not None
        raw = Path(f"/proc/{service.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        self.argv = [a.decode() for a in raw]
        assert common.stop_service(testbed_kafka.NAME, grace=30)

    def start(self) -> None:
        """Start it again after stop(), with the same command line (same data, same port)."""
        from tests.testbed import common
        from tests.testbed import kafka as testbed_kafka

        common.spawn(testbed_kafka.NAME, self.argv, common.logs_dir() / "kafka.restart.log")
        common.wait_for("restarted kafka", lambda: testbed_kafka.probe(self.port, timeout=2.0), 90)

    def make_topic(self, partitions: int = 1, config: object = None, prefix: str = "t") -> str:
        """The conftest ``make_topic`` contract, on this broker (topics go with the broker)."""
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self._admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
        return name


@contextlib.contextmanager
def private_broker(directory: Path) -> Iterator[PrivateBroker]:
    """Run a PrivateBroker with its state under ``directory``. The test bed's modules find a service's
    files through SMC_TESTBED_DIR, so it points there until the broker is stopped for good."""
    from tests.testbed import kafka as testbed_kafka

    previous = os.environ.get("SMC_TESTBED_DIR")
    os.environ["SMC_TESTBED_DIR"] = str(directory)
    try:
        yield PrivateBroker(testbed_kafka.start())
    finally:
        try:
            testbed_kafka.stop()  # also after a failed start: nothing of it is left running
        finally:
            if previous is None:
                os.environ.pop("SMC_TESTBED_DIR", None)
            else:
                os.environ["SMC_TESTBED_DIR"] = previous
