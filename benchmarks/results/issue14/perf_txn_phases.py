"""Phases of back-to-back transactions against the test bed's broker, without smc-stream: the Kafka
part of a commit in isolation (begin, consumer_group_metadata, send_offsets_to_transaction,
commit_transaction), with smc-stream's producer settings or the bare loop's.

    source .testbed/env
    .venv/bin/python benchmarks/results/issue14/perf_txn_phases.py smc|bare TOPICS RECORDS ROUNDS
    TB_SLEEP=0 (seconds between producing and committing), TB_CONF=k=v,k=v (producer overrides),
    TB_DEBUG=1 (librdkafka debug=eos on stderr: shows CONCURRENT_TRANSACTIONS retries)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p50, p90 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.9)]
    return f"p50 {p50 * 1000:6.2f} p90 {p90 * 1000:6.2f} mean {statistics.mean(ordered) * 1000:6.2f}"


def main() -> int:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    variant, n_topics, per_txn, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    run = uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    source = f"tb.in.{run}"
    outputs = [f"tb.out{i}.{run}" for i in range(n_topics)]
    for future in admin.create_topics([NewTopic(t, 6, 1) for t in [source, *outputs]]).values():
        future.result()
    time.sleep(1)
    loader = Producer({"bootstrap.servers": bootstrap})
    for i in range(6000):
        loader.produce(source, b"x" * 200, partition=i % 6)
    loader.flush()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tb.{run}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([source])
    while not consumer.assignment():
        consumer.poll(0.1)
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "linger.ms": 5, "transactional.id": f"tb.{run}",
                            "retry.backoff.ms": 10}
    if variant == "smc":  # kafka/clients.py's producer settings
        conf.update({"acks": "all", "enable.idempotence": True, "compression.type": "lz4",
                     "retry.backoff.max.ms": 500, "queue.buffering.max.messages": 200_000,
                     "queue.buffering.max.kbytes": 262_144, "delivery.report.only.error": True})
    else:  # benchmarks/peers/bare_loop.py's
        conf["queue.buffering.max.messages"] = 500_000
    if os.environ.get("TB_DEBUG"):
        conf["debug"] = "eos"
    for item in filter(None, os.environ.get("TB_CONF", "").split(",")):
        key, _, value = item.partition("=")
        conf[key] = value
    producer = Producer(conf)
    producer.init_transactions()
    pause = float(os.environ.get("TB_SLEEP", "0.015"))
    phases: dict[str, list[float]] = {"begin": [], "metadata": [], "send_offsets": [], "commit": []}
    for r in range(rounds):
        t0 = time.perf_counter()
        producer.begin_transaction()
        t1 = time.perf_counter()
        for i in range(per_txn):
            producer.produce(outputs[i % n_topics], b"y" * 400, key=str(i).encode(), partition=i % 6)
        producer.poll(0)
        time.sleep(pause)  # processing
        t2 = time.perf_counter()
        metadata = consumer.consumer_group_metadata()
        t3 = time.perf_counter()
        offsets = [TopicPartition(source, p, r + 1) for p in range(6)]
        producer.send_offsets_to_transaction(offsets, metadata, 10)
        t4 = time.perf_counter()
        producer.commit_transaction(10)
        t5 = time.perf_counter()
        for name, seconds in zip(phases, (t1 - t0, t3 - t2, t4 - t3, t5 - t4), strict=True):
            phases[name].append(seconds)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    table = " | ".join(f"{k} {summary(v)}" for k, v in phases.items())
    print(variant, n_topics, per_txn, table, "| load", load)
    consumer.close()
    admin.delete_topics([source, *outputs])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
