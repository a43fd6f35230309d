"""Python CPU of the loop's commit path, without Kafka: the real Pipeline and ``ProcessorRunner``
(``process_batch`` + ``commit``) over a fake producer/consumer whose Kafka calls return at once.

    .venv/bin/python -m benchmarks.bench_commit_path [--count 120000] [--repeat 3]

Records are processed in batches of ``--batch`` (the consume batch) and committed every
``--per-commit`` records, i.e. what a 20 ms or 100 ms commit interval means at a given rate. The
difference of CPU per 1,000 records between two ``--per-commit`` values is what the commits cost in
Python; the broker round trips of a real commit (``send_offsets_to_transaction``,
``commit_transaction``) are not in it. Process CPU time (best of ``--repeat``), so other load on a
shared machine does not inflate it much.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from confluent_kafka import TopicPartition
from tests.kafka_fakes import FakeMessage

from benchmarks.workload import TRADES_ONLY, market_messages
from smc_runtime.config import KafkaSettings, ProcessorSettings
from smc_runtime.kafka.processor import ProcessorRunner
from smc_runtime.pipeline import Pipeline
from smc_runtime.service.metrics import RuntimeMetrics
from smc_runtime.service.status import ProcessorStatus


class _Producer:
    """Kafka calls that return at once (what is measured is the Python around them)."""

    def produce(self, *_: Any, **__: Any) -> None: ...
    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(self, *_: Any) -> None: ...
    def commit_transaction(self, *_: Any) -> None: ...
    def abort_transaction(self, *_: Any) -> None: ...
    def flush(self, *_: Any) -> int:
        return 0
    def poll(self, *_: Any) -> int:
        return 0
    def __len__(self) -> int:
        return 0


class _Consumer:
    def consumer_group_metadata(self) -> None:
        return None

    def seek(self, tp: TopicPartition) -> None: ...


def run(messages: list[FakeMessage], batch: int, per_commit: int) -> tuple[float, int]:
    """CPU seconds to process ``messages`` and the number of commits."""
    settings = ProcessorSettings(consumer_group="bench", input_topics=["in"], snapshot_interval_ms=1000)
    status = ProcessorStatus("bench", "bench", "exactly_once", ["in"], {}, 100, 10_000)
    runner = ProcessorRunner("bench", settings, KafkaSettings(), "bench-0", Pipeline(settings), status,
                             RuntimeMetrics())
    runner.attach(_Producer(), _Consumer(), _Consumer())  # type: ignore[arg-type]
    for p in range(6):
        runner.partitions.add(("in", p))
    commits = 0
    start = time.process_time()
    since = 0
    for i in range(0, len(messages), batch):
        runner.process_batch(messages[i:i + batch])  # type: ignore[arg-type]
        since += batch
        if since >= per_commit:
            runner.commit()
            commits += 1
            since = 0
    return time.process_time() - start, commits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=120_000)
    parser.add_argument("--batch", type=int, default=100, help="records per consumed batch")
    parser.add_argument("--per-commit", default="200,1000", help="records per commit, comma separated")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    raw = market_messages(1000, args.count, TRADES_ONLY, 7)
    messages = [FakeMessage("in", hash(m.key) % 6, i, m.value, m.key, _timestamp_ms=now_ms)
                for i, m in enumerate(raw)]
    # One partition's records in runs, as a consumer returns them.
    messages.sort(key=lambda m: (m.partition(), m.offset()))
    for i, m in enumerate(messages):
        m._offset = i
    results = {}
    for _ in range(args.repeat):
        for per in (int(x) for x in args.per_commit.split(",")):
            cpu, commits = run(messages, args.batch, per)
            best = results.get(per)
            if best is None or cpu < best[0]:
                results[per] = (cpu, commits)
    base = min(results)
    for per, (cpu, commits) in sorted(results.items()):
        print(f"{per:>6} records/commit: {cpu / len(messages) * 1e6:6.2f} us/record, {commits} commits")
    hi = max(results)
    extra = results[base][0] - results[hi][0]
    per_commit = extra / max(1, results[base][1] - results[hi][1])
    print(f"commit cost in Python: {per_commit * 1e3:.3f} ms per extra commit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
