"""A bare transactional producer: ``commit_transaction`` with records in flight and acknowledged, and
with the delivery-report modes (only errors, none, a callback per record, a logger).

``source .testbed/env; .venv/bin/python commit_floor.py``: 150 transactions of 300 records (400 B,
6 partitions) per variant, twice.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = os.environ["KAFKA_BOOTSTRAP_SERVERS"]


def run(topic: str, name: str, extra: dict[str, Any], wait_s: float, n: int = 150,
        records: int = 300) -> None:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": f"micro-{uuid.uuid4().hex[:8]}",
                         "linger.ms": 5, "delivery.report.only.error": True, **extra})
    producer.init_transactions()
    commits: list[float] = []
    flushes: list[float] = []
    for _ in range(n):
        producer.begin_transaction()
        for j in range(records):
            producer.produce(topic, b"x" * 400, key=str(j).encode())
        if wait_s:
            start = time.perf_counter()
            producer.flush(10)
            flushes.append((time.perf_counter() - start) * 1000)
            time.sleep(wait_s)
        start = time.perf_counter()
        producer.commit_transaction(10)
        commits.append((time.perf_counter() - start) * 1000)
    commits.sort()
    flush = f" (flush alone p50 {sorted(flushes)[len(flushes) // 2]:.2f})" if flushes else ""
    print(f"{name:34} commit_transaction p50 {commits[len(commits) // 2]:.2f} "
          f"p90 {commits[int(0.9 * len(commits))]:.2f} ms{flush}", flush=True)


def main() -> None:
    topic = f"micro-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result()
    for _ in range(2):
        run(topic, "records in flight", {}, 0)
        run(topic, "records acked (flush, 5 ms)", {}, 0.005)
        run(topic, "linger.ms=0, records in flight", {"linger.ms": 0}, 0)
        run(topic, "delivery reports: all, no callback", {"delivery.report.only.error": False}, 0)
        run(topic, "delivery reports: a callback per record", {"delivery.report.only.error": False,
                                                               "on_delivery": lambda err, msg: None}, 0)
        run(topic, "delivery reports: errors, a logger", {"logger": logging.getLogger("micro")}, 0)


if __name__ == "__main__":
    main()
