"""The floor: a bare confluent-kafka consume -> produce loop that copies records through unchanged.

It measures the client cost only (no decoding, no state). In exactly-once mode it uses the same
transaction protocol as any EOS processor: produce, send offsets, commit every commit interval.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from benchmarks.peers.workload import common_arguments

DEFAULT_COMMIT_INTERVAL_MS = 100


def main() -> int:
    args = common_arguments(__doc__ or "bare loop").parse_args()
    eos = args.mode == "exactly_once"
    interval = (args.commit_interval_ms or DEFAULT_COMMIT_INTERVAL_MS) / 1000.0
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        "isolation.level": "read_committed", "fetch.wait.max.ms": 10,
        "partition.assignment.strategy": "cooperative-sticky",
    })
    producer_config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap, "linger.ms": 5, "retry.backoff.ms": 10,
        "queue.buffering.max.messages": 500_000,
    }
    if eos:
        producer_config["transactional.id"] = f"{args.group}-bare-0"
    producer = Producer(producer_config)
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.subscribe([args.input_topic])
    if eos:
        producer.init_transactions()
        producer.begin_transaction()
    positions: dict[tuple[str, int], int] = {}
    last_commit = time.monotonic()
    while running:
        # Same consume wait as smc-stream's loop (consume() blocks for the whole timeout unless
        # num_messages arrive, so the timeout is a latency floor).
        batch = consumer.consume(num_messages=1000, timeout=0.01)
        for msg in batch:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(str(err))
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if topic is None or partition is None or offset is None:
                continue
            while True:
                try:
                    producer.produce(args.output_topic, msg.value(), msg.key(), timestamp=msg.timestamp()[1])
                    break
                except BufferError:
                    producer.poll(0.01)
            positions[(topic, partition)] = offset + 1
        producer.poll(0)
        if positions and time.monotonic() - last_commit >= interval:
            offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
            if eos:
                producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata())
                producer.commit_transaction()
                producer.begin_transaction()
            else:
                producer.flush()
                consumer.commit(offsets=offsets, asynchronous=False)
            positions.clear()
            last_commit = time.monotonic()
    if eos:
        producer.abort_transaction()
    consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
