"""Seeded market data into Kafka, and topics read back to their end.

Written once for everything that drives a runtime from outside: ``make demo`` (``smc_runtime.demo``),
``make demo-k8s`` (``tools/demo_k8s.py``, also used by the end-to-end tests) and the runtime integration
tests (``tests/integration/runtime_support.py``). Not used by the runtime itself.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition

from smc_runtime.sample_data import generate_market_data

# (kind, key, value); kind is the input's stream suffix: trades, orderbook or klines.
InputRecord = tuple[str, bytes | None, bytes | None]


def sample_records(count: int, symbols: Sequence[str], seed: int,
                   malformed_every: int = 0) -> list[tuple[str, bytes, bytes]]:
    """The first ``count`` records of the seeded generator as (kind, key, value): trades, order book
    snapshots and diffs, closed 1m klines (about 71% trades)."""
    per_symbol = count // len(symbols) + 100  # about 1.4 records per trade: plenty
    records = generate_market_data(symbols, trades_per_symbol=per_symbol, seed=seed,
                                   malformed_every=malformed_every)
    return [(r.topic.rsplit(".", 1)[1], r.key, r.value) for r in itertools.islice(records, count)]


def feed(bootstrap: str, inputs: Mapping[str, str], records: Iterable[InputRecord],
         rate: float | None = None, max_message_bytes: int | None = None) -> int:
    """Produce ``records`` to ``inputs[kind]`` keyed by symbol and return how many. The producer is
    idempotent (its retries add no duplicate to the input), paced to at most ``rate`` records/s if given;
    ``max_message_bytes`` raises its record limit (hostile records of several MB)."""
    config: dict[str, str | int | bool] = {
        "bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
        "compression.type": "lz4", "queue.buffering.max.messages": 500_000}
    if max_message_bytes is not None:
        config["message.max.bytes"] = max_message_bytes
        config["queue.buffering.max.kbytes"] = 1_048_576
    producer = Producer(config)
    count, started = 0, time.monotonic()
    for kind, key, value in records:
        if rate is not None and count % 200 == 0:
            producer.poll(0)
            ahead = count / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        while True:
            try:
                producer.produce(inputs[kind], value=value, key=key)
                break
            except BufferError:  # local queue full: let deliveries drain it
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} input records not delivered")
    return count


def read_to_end(bootstrap: str, topic: str, isolation: str = "read_committed",
                timeout: float = 120.0) -> list[Message]:
    """Every record of ``topic`` visible under ``isolation``, up to the end of each partition (a fresh
    group, nothing committed). Raises when a partition is not read to its end within ``timeout``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex[:8]}",
                         "isolation.level": isolation, "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        remaining = set(partitions)
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=0.5):
                err = msg.error()
                if err is None:
                    records.append(msg)
                elif err.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(msg.partition())
        if remaining:
            raise RuntimeError(f"{topic}: partitions {sorted(remaining)} not read to the end")
        return records
    finally:
        consumer.close()
