"""A bare transactional producer: does the delivery-report mode change ``commit_transaction``?

``source .testbed/env; .venv/bin/python commit_micro.py``: 150 transactions of 300 records per
variant, twice.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import uuid
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = os.environ["KAFKA_BOOTSTRAP_SERVERS"]


def run(topic: str, name: str, extra: dict[str, Any], n: int = 150, records: int = 300) -> None:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": f"micro-{uuid.uuid4().hex[:8]}",
                         "linger.ms": 5, "enable.idempotence": True, "acks": "all", **extra})
    producer.init_transactions()
    commits: list[float] = []
    for _ in range(n):
        producer.begin_transaction()
        for j in range(records):
            producer.produce(topic, b"x" * 400, key=str(j).encode())
        start = time.perf_counter()
        producer.commit_transaction(10)
        commits.append((time.perf_counter() - start) * 1000)
    commits.sort()
    print(f"{name:40} commit ms p50 {commits[len(commits) // 2]:.2f} "
          f"p90 {commits[int(0.9 * len(commits))]:.2f} mean {statistics.mean(commits):.2f}", flush=True)


def main() -> None:
    topic = f"micro-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result()
    for _ in range(2):
        run(topic, "only.error=True", {"delivery.report.only.error": True})
        run(topic, "only.error=False (no callback)", {})
        run(topic, "only.error=False + on_delivery cb", {"on_delivery": lambda err, msg: None})
        run(topic, "only.error=True + logger", {"delivery.report.only.error": True,
                                                 "logger": logging.getLogger("micro")})


if __name__ == "__main__":
    main()
