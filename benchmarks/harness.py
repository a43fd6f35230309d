"""Measure one stream processor, started as a subprocess, against a real Kafka broker.

Two scenarios:

* **drain**: the input is pre-loaded; the processor empties the backlog. Throughput is messages over the
  time from its first visible output to the moment its consumer group has committed the whole input.
  CPU per 1k messages covers the same window (from /proc of the processor).
* **steady**: input is produced at a fixed rate (the send time is also the Kafka record timestamp); a
  ``read_committed`` consumer of the enriched trades matches each output to its input by (symbol key,
  trade id) and records arrival time minus send time, so transaction visibility is included. Matching
  by id, not by output record timestamp, works whether or not a processor propagates input timestamps.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from benchmarks import procstat, profiling
from benchmarks.workload import Message

POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Target:
    """A stream processor under test: how to start it and where it writes."""

    framework: str
    mode: str
    commit: str  # the commit setting, for the report ("100 ms", "default (5 s)")
    command: list[str]
    group: str
    output_topic: str  # counted for throughput, and its records carry the input timestamp (latency)
    extra_output_topics: tuple[str, ...] = ()  # also counted (e.g. smc-stream's dead letters)
    id_field: bytes = b'"trade_id"'  # JSON field of the output that holds the input trade id
    env: dict[str, str] | None = None
    metrics_url: str | None = None
    log_path: str = "/tmp/smc-bench-target.log"


@dataclass
class DrainResult:
    framework: str
    mode: str
    commit: str
    messages: int
    seconds: float
    msgs_per_s: float
    cpu_s_per_1k: float
    peak_rss_mb: float
    outputs: int
    complete: bool
    startup_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass
class SteadyResult:
    framework: str
    mode: str
    commit: str
    rate: float
    seconds: float
    sent: int
    received: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cpu_s_per_1k: float
    peak_rss_mb: float
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def as_dict(result: DrainResult | SteadyResult) -> dict[str, Any]:
    return asdict(result)


# ---------------------------------------------------------------- Kafka plumbing


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topics(bootstrap: str, topics: dict[str, int],
                  config: dict[str, dict[str, str]] | None = None) -> None:
    """Create topics (name -> partitions); existing ones are left as they are."""
    config = config or {}
    new = [NewTopic(name, num_partitions=parts, replication_factor=1, config=config.get(name, {}))
           for name, parts in topics.items()]
    client = admin(bootstrap)  # must outlive the futures
    for name, future in client.create_topics(new, operation_timeout=30).items():
        try:
            future.result()
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"cannot create topic {name}: {exc}") from exc


_ISSUED: list[str] = []  # every name unique() gave out in this process


def unique(prefix: str) -> str:
    name = f"{prefix}.{uuid.uuid4().hex[:8]}"
    _ISSUED.append(name)
    return name


def delete_run_topics(bootstrap: str) -> int:
    """Delete every topic named after a name ``unique`` gave out in this process: inputs, outputs,
    changelogs and a framework's internal topics (they carry the run's group or app name). Without it a
    day of benchmark runs leaves thousands of partitions on the one broker, and each run measures a
    slower broker than the one before. Returns how many topics were deleted."""
    if not _ISSUED:
        return 0
    client = admin(bootstrap)
    try:
        names = [t for t in client.list_topics(timeout=10).topics if any(run in t for run in _ISSUED)]
    except Exception as exc:  # cleaning up must never hide the results
        print(f"topics of this run not deleted: {exc}", file=sys.stderr)
        return 0
    if names:
        for future in client.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception as exc:
                print(f"topic not deleted: {exc}", file=sys.stderr)
    _ISSUED.clear()
    return len(names)


def bulk_producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                     "queue.buffering.max.messages": 1_000_000})  # uncompressed: every client can read it


def preload(bootstrap: str, topic_of_kind: dict[str, str], messages: Sequence[Message],
            show_progress: bool = True) -> dict[str, int]:
    """Produce the messages (keyed by symbol) as fast as the client allows; returns count per topic."""
    producer = bulk_producer(bootstrap)
    counts: dict[str, int] = dict.fromkeys(topic_of_kind.values(), 0)
    bar = Progress("preload", len(messages), enabled=show_progress)
    for i, msg in enumerate(messages):
        topic = topic_of_kind[msg.kind]
        while True:
            try:
                producer.produce(topic, msg.value, msg.key)
                break
            except BufferError:
                producer.poll(0.05)
        counts[topic] += 1
        if i % 20_000 == 0:
            producer.poll(0)
            bar.update(i)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} messages not delivered while pre-loading")
    bar.done(len(messages))
    return counts


def topic_partitions(bootstrap: str, topics: Sequence[str], wait_s: float = 30.0) -> list[TopicPartition]:
    """Every partition of ``topics``; waits for freshly created topics to appear in the metadata."""
    client = admin(bootstrap)
    deadline = time.monotonic() + wait_s
    while True:
        metadata = client.list_topics(timeout=10)
        if all(t in metadata.topics and metadata.topics[t].partitions and metadata.topics[t].error is None
               for t in topics) or time.monotonic() > deadline:
            return [TopicPartition(t, p) for t in topics for p in sorted(metadata.topics[t].partitions)]
        time.sleep(0.2)


class Offsets:
    """High watermarks and committed group offsets, for progress without consuming."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("bench-watermarks"),
                                   "enable.auto.commit": False})
        self._probes: dict[str, Consumer] = {}

    def high(self, partitions: Sequence[TopicPartition]) -> int:
        """Sum of high watermarks; retried while a fresh topic's leaders settle."""
        total = 0
        for tp in partitions:
            for attempt in range(50):
                try:
                    _, high = self._consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                                   timeout=5, cached=False)
                    break
                except KafkaException:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
            total += high
        return total

    def committed(self, group: str, partitions: Sequence[TopicPartition]) -> int:
        """Sum of ``group``'s committed offsets, read by a consumer of that group that never joins it.

        Not ``AdminClient.list_consumer_group_offsets``: on a fresh broker its OffsetFetch can meet
        NOT_COORDINATOR for a group that does not exist yet, and librdkafka then dereferences the
        admin client's missing group handle (segfault; confluent-kafka-javascript#374 has the stack).
        ``read_uncommitted``: the last completed commits, without waiting out pending transactional
        offsets (``require_stable``)."""
        probe = self._probes.get(group)
        if probe is None:
            probe = self._probes[group] = Consumer({
                "bootstrap.servers": self._bootstrap, "group.id": group, "enable.auto.commit": False,
                "isolation.level": "read_uncommitted"})
        plain = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        try:
            result = probe.committed(plain, timeout=5)
        except KafkaException:
            return 0  # coordinator not there yet: nothing committed as far as we can tell
        return sum(tp.offset for tp in result if tp.offset >= 0)

    def close(self) -> None:
        self._consumer.close()
        for probe in self._probes.values():
            probe.close()
        self._probes.clear()


def count_committed(bootstrap: str, topic: str, idle_s: float = 2.0) -> int:
    """Records visible to a read_committed reader of ``topic`` (reads to the end)."""
    parts = topic_partitions(bootstrap, [topic])
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("bench-count"),
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.max.bytes": 52_428_800})
    consumer.assign([TopicPartition(tp.topic, tp.partition, 0) for tp in parts])
    eof: set[int] = set()
    count, last = 0, time.monotonic()
    while len(eof) < len(parts) and time.monotonic() - last < idle_s + 30:
        batch = consumer.consume(num_messages=10_000, timeout=idle_s)
        if not batch:
            break
        last = time.monotonic()
        for msg in batch:
            err = msg.error()
            if err is None:
                count += 1
            elif err.code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition() or 0)
    consumer.close()
    return count


# ---------------------------------------------------------------- process control


class Progress:
    """A one-line progress bar on stderr (off when not a terminal unless forced)."""

    def __init__(self, label: str, total: int, enabled: bool = True) -> None:
        self.label, self.total = label, max(total, 1)
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()

    def update(self, done: int, extra: str = "") -> None:
        if not self.enabled:
            return
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        rate = done / max(time.monotonic() - self.started, 1e-9)
        sys.stderr.write(f"\r{self.label:<10} [{bar:<30}] {frac:6.1%} {done:>10,}/{self.total:,} "
                         f"{rate:>9,.0f}/s {extra}   ")
        sys.stderr.flush()

    def done(self, done: int, extra: str = "") -> None:
        if self.enabled:
            self.update(done, extra)
            sys.stderr.write("\n")
            sys.stderr.flush()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the measuring process dies, whatever kills it (a crash
    of the driver once left a processor spinning against a stopped broker, skewing later runs)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def start(target: Target) -> subprocess.Popen[bytes]:
    log = open(target.log_path, "wb")  # noqa: SIM115 - handed to the child, closed by the OS on exit
    env = {**os.environ, **(target.env or {})}
    return subprocess.Popen(target.command, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True,
                            preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def stop(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM (graceful shutdown), then SIGKILL of this one process if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def log_tail(target: Target, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(Path(target.log_path).read_text(errors="replace").splitlines()[-lines:])
    return ""


def scrape_metrics(url: str | None) -> dict[str, float]:
    """Prometheus text -> {metric name: summed value} for the counters a report needs."""
    if not url:
        return {}
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            text = response.read().decode()
    except OSError:
        return {}
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        if name.endswith(("_created", "_bucket")):
            continue
        try:
            sums[name] = sums.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return sums


def pick(metrics: dict[str, float], *needles: str) -> float | None:
    """First counter whose name contains every needle (names are the runtime's, not ours)."""
    for name, value in sorted(metrics.items()):
        if all(n in name for n in needles) and not name.endswith("_created"):
            return value
    return None


# ---------------------------------------------------------------- scenarios


def run_drain(target: Target, bootstrap: str, inputs: Sequence[TopicPartition], timeout_s: float = 300.0,
              show_progress: bool = True, profile_to: Path | None = None,
              profile_idle: bool = False) -> DrainResult:
    """Start the processor on a pre-loaded input and time how fast it commits all of it."""
    offsets = Offsets(bootstrap)
    total = offsets.high(inputs)
    out_parts = topic_partitions(bootstrap, [target.output_topic])
    bar = Progress(f"{target.framework}", total, enabled=show_progress)
    launched = time.monotonic()
    proc = start(target)
    recorder = profiling.attach(proc.pid, profile_to, idle=profile_idle) if profile_to else None
    t_first: float | None = None
    cpu_first = 0.0
    committed = 0
    error: str | None = None
    try:
        deadline = launched + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                error = f"exited with {proc.returncode}: {log_tail(target)}"
                break
            now = time.monotonic()
            if t_first is None and offsets.high(out_parts) > 0:
                t_first = now
                first = procstat.sample(proc.pid)
                cpu_first = first.cpu_seconds if first else 0.0
            committed = offsets.committed(target.group, inputs)
            bar.update(committed)
            if committed >= total:
                break
            time.sleep(POLL_INTERVAL_S)
        t_end = time.monotonic()
        final = procstat.sample(proc.pid)
        metrics = scrape_metrics(target.metrics_url)
    finally:
        profiling.detach(recorder)
        stop(proc)
    bar.done(committed)
    complete = committed >= total and error is None
    if not complete and error is None:
        error = f"timed out after {timeout_s:.0f}s with {committed}/{total} committed"
    window = t_end - (t_first or t_end)
    cpu = (final.cpu_seconds - cpu_first) if final else float("nan")
    outputs = count_committed(bootstrap, target.output_topic)
    for extra in target.extra_output_topics:
        metrics[f"records:{extra}"] = float(count_committed(bootstrap, extra))
    offsets.close()
    return DrainResult(
        framework=target.framework, mode=target.mode, commit=target.commit, messages=committed,
        seconds=round(window, 3), msgs_per_s=round(committed / window, 1) if window > 0 else 0.0,
        cpu_s_per_1k=round(cpu / committed * 1000, 4) if committed else float("nan"),
        peak_rss_mb=round(final.peak_rss_bytes / 2**20, 1) if final else float("nan"),
        outputs=outputs, complete=complete, startup_s=round((t_first or t_end) - launched, 2),
        metrics=metrics, error=error,
    )


_INPUT_TRADE_ID = re.compile(rb'"t":(\d+)')


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection in this process while it sends and times records. The harness holds
    the whole input (600,000 messages: millions of tracked objects), so a full collection takes
    80-220 ms (13-15 per ``run_all`` process, most while loading the input; gc.callbacks), and one
    that falls into a measured run stops the load generator and the latency reader together:
    latency the processor under test never caused. Frozen objects are skipped by collections;
    nothing made during the measured phase is cyclic garbage."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


class _LatencyCollector(threading.Thread):
    """Reads the output with read_committed; latency = arrival - send time of the matching input (ms)."""

    def __init__(self, bootstrap: str, topic: str, id_field: bytes) -> None:
        super().__init__(daemon=True)
        self.id_pattern = re.compile(re.escape(id_field) + rb"\s*:\s*(\d+)")
        self.sent_at: dict[tuple[bytes, int], float] = {}
        self.parts = topic_partitions(bootstrap, [topic])
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("bench-latency"),
                                  "isolation.level": "read_committed", "enable.auto.commit": False,
                                  "fetch.wait.max.ms": 5, "fetch.queue.backoff.ms": 1})
        self.consumer.assign([TopicPartition(tp.topic, tp.partition, 0) for tp in self.parts])
        self.latencies: list[float] = []
        self.arrivals: list[float] = []  # arrival time (ms) of each latency, for a view over time
        self.seen = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            # consume() waits for its whole timeout unless num_messages arrive: a short timeout,
            # or the measuring side itself adds up to that much latency to every record.
            for msg in self.consumer.consume(num_messages=5000, timeout=0.002):
                if msg.error() is not None:
                    continue
                now_ms = time.time() * 1000.0
                self.seen += 1
                if not self.sent_at:
                    continue
                found = self.id_pattern.search(msg.value() or b"")
                if found is None:
                    continue
                sent = self.sent_at.pop((msg.key() or b"", int(found.group(1))), None)
                if sent is not None:
                    self.latencies.append(now_ms - sent)
                    self.arrivals.append(now_ms)
        self.consumer.close()


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(int(q * len(sorted_values)), len(sorted_values) - 1)
    return round(sorted_values[index], 2)


def run_steady(target: Target, bootstrap: str, topic_of_kind: dict[str, str], messages: Sequence[Message],
               rate: float, warmup_s: float = 3.0, settle_s: float = 10.0, ready_timeout_s: float = 90.0,
               show_progress: bool = True, profile_to: Path | None = None,
               profile_idle: bool = False) -> SteadyResult:
    """Produce ``messages`` at ``rate``/s (after a warm-up) and measure end-to-end latency."""
    collector = _LatencyCollector(bootstrap, target.output_topic, target.id_field)
    collector.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1,
                         "queue.buffering.max.messages": 1_000_000})
    proc = start(target)
    recorder: subprocess.Popen[bytes] | None = None
    error: str | None = None
    sent = measured_sent = 0
    latency_kind = "trades"
    body: list[Message] = []
    quiet = contextlib.ExitStack()  # the measured phase: no collections in this process (gc_paused)
    try:
        # Warm-up: trickle messages until outputs show up (group joined, state restored, code warm).
        started = time.monotonic()
        warm = iter(messages)
        while collector.seen == 0:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode}: {log_tail(target)}")
            if time.monotonic() - started > ready_timeout_s:
                raise RuntimeError(f"no output within {ready_timeout_s:.0f}s: {log_tail(target)}")
            for _ in range(5):  # ~100 msgs/s: no backlog builds up before the measured phase
                msg = next(warm)
                producer.produce(topic_of_kind[msg.kind], msg.value, msg.key)
                sent += 1
            producer.poll(0)
            time.sleep(0.05)
        body = list(warm)
        total = len(body)
        ids = [int(m.group(1)) if msg.kind == latency_kind and (m := _INPUT_TRADE_ID.search(msg.value))
               else -1 for msg in body]
        sent_at = collector.sent_at
        bar = Progress(f"{target.framework}", total, enabled=show_progress)
        quiet.enter_context(gc_paused())
        cpu_start = procstat.sample(proc.pid)
        recorder = profiling.attach(proc.pid, profile_to, idle=profile_idle) if profile_to else None
        t0 = time.monotonic()
        measure_from = t0 + warmup_s
        index = 0
        next_bar = t0
        while index < total:
            now = time.monotonic()
            due = min(total, int((now - t0) * rate) + 1)
            wall_ms = time.time() * 1000.0
            measuring = now >= measure_from
            while index < due:
                msg = body[index]
                if measuring and ids[index] >= 0:
                    sent_at[(msg.key, ids[index])] = wall_ms
                try:
                    producer.produce(topic_of_kind[msg.kind], msg.value, msg.key, timestamp=int(wall_ms))
                except BufferError:
                    producer.poll(0.001)
                    continue
                if measuring and ids[index] >= 0:
                    measured_sent += 1
                index += 1
            producer.poll(0)
            if now >= next_bar:
                bar.update(index, f"outputs seen {collector.seen:,}")
                next_bar = now + 0.25
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode}: {log_tail(target)}")
            time.sleep(0.001)
        producer.flush(30)
        sent += total
        produce_seconds = time.monotonic() - t0
        bar.done(index)
        wait_until = time.monotonic() + settle_s
        while time.monotonic() < wait_until and len(collector.latencies) < measured_sent:
            time.sleep(0.1)
        final = procstat.sample(proc.pid)
        metrics = scrape_metrics(target.metrics_url)
    except (RuntimeError, StopIteration) as exc:
        error = str(exc)
        final, metrics, cpu_start, produce_seconds = procstat.sample(proc.pid), {}, None, 0.0
    finally:
        quiet.close()
        profiling.detach(recorder)
        collector.running = False
        stop(proc)
        collector.join(10)
    values = sorted(collector.latencies)
    cpu = (final.cpu_seconds - cpu_start.cpu_seconds) if final and cpu_start else float("nan")
    return SteadyResult(
        framework=target.framework, mode=target.mode, commit=target.commit, rate=rate,
        seconds=round(produce_seconds, 2), sent=measured_sent, received=len(values),
        p50_ms=_percentile(values, 0.50), p95_ms=_percentile(values, 0.95), p99_ms=_percentile(values, 0.99),
        max_ms=round(values[-1], 2) if values else float("nan"),
        cpu_s_per_1k=round(cpu / len(body) * 1000, 4) if body else float("nan"),
        peak_rss_mb=round(final.peak_rss_bytes / 2**20, 1) if final else float("nan"),
        metrics=metrics, error=error,
    )
