"""The test bed's Kafka is a real broker with working transactions (the basis of exactly-once tests)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

from tests.testbed.fixture_types import MakeTopic

pytestmark = pytest.mark.kafka


def _producer(bootstrap: str, transactional: bool = True) -> Producer:
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "linger.ms": 0}
    if transactional:
        config["transactional.id"] = f"testbed-{uuid.uuid4().hex[:8]}"
    producer = Producer(config)
    if transactional:
        producer.init_transactions(30)
    return producer


def _drain(
    bootstrap: str, topic: str, isolation: str, partitions: int = 1, timeout: float = 30.0
) -> list[str]:
    """Every value a consumer with `isolation` can read, up to the end of each partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"drain-{uuid.uuid4().hex[:8]}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    values: list[str] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"did not reach the end of {topic}; got {values}"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(msg.partition() or 0)
                continue
            values.append(_text(msg))
    finally:
        consumer.close()
    return values


def _text(msg: Message) -> str:
    value = msg.value()
    assert value is not None
    return value.decode()


def test_topic_creation_with_partitions_and_config(kafka_admin: Any, make_topic: MakeTopic) -> None:
    topic = make_topic(partitions=3, config={"cleanup.policy": "compact"})
    metadata = kafka_admin.list_topics(topic=topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == 3
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = kafka_admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["cleanup.policy"].value == "compact"


def test_read_committed_sees_only_committed_transactions(kafka_bootstrap: str, make_topic: MakeTopic) -> None:
    topic = make_topic()
    producer = _producer(kafka_bootstrap)
    producer.begin_transaction()
    producer.produce(topic, b"committed-1")
    producer.produce(topic, b"committed-2")
    producer.commit_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, b"aborted-1")
    producer.flush(10)  # really on the broker before the abort
    producer.abort_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, b"committed-3")
    producer.commit_transaction(30)

    # A transaction left open: written to the log, never visible to read_committed.
    pending = _producer(kafka_bootstrap)
    pending.begin_transaction()
    pending.produce(topic, b"uncommitted-1")
    pending.flush(10)

    try:
        committed = _drain(kafka_bootstrap, topic, "read_committed")
        assert committed == ["committed-1", "committed-2", "committed-3"]
        # read_uncommitted sees the aborted and the open records: they really were written.
        assert _drain(kafka_bootstrap, topic, "read_uncommitted") == [
            "committed-1",
            "committed-2",
            "aborted-1",
            "committed-3",
            "uncommitted-1",
        ]
    finally:
        pending.abort_transaction(30)


def test_consume_transform_produce_commits_offsets_in_the_transaction(
    kafka_bootstrap: str, kafka_admin: Any, make_topic: MakeTopic
) -> None:
    """Consumer-group offsets committed through a transaction (the exactly-once loop) on one node."""
    source, sink = make_topic(partitions=2), make_topic()
    plain = _producer(kafka_bootstrap, transactional=False)
    for i in range(6):
        plain.produce(source, f"v{i}".encode(), partition=i % 2)
    plain.flush(10)

    group = f"eos-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([source])
    producer = _producer(kafka_bootstrap)
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while len(seen) < 6:
            assert time.monotonic() < deadline, f"consumed only {seen}"
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            producer.begin_transaction()
            text = _text(msg)
            producer.produce(sink, text.upper().encode())
            producer.send_offsets_to_transaction(
                [TopicPartition(source, msg.partition() or 0, (msg.offset() or 0) + 1)],
                consumer.consumer_group_metadata(),
                30,
            )
            producer.commit_transaction(30)
            seen.append(text)
    finally:
        consumer.close()

    assert sorted(seen) == [f"v{i}" for i in range(6)]
    assert sorted(_drain(kafka_bootstrap, sink, "read_committed")) == [f"V{i}" for i in range(6)]
    offsets = kafka_admin.list_consumer_group_offsets([_group_request(group, source)], request_timeout=10)[
        group
    ].result(timeout=10)
    assert sorted(tp.offset for tp in offsets.topic_partitions) == [3, 3]


def _group_request(group: str, topic: str) -> Any:
    from confluent_kafka import ConsumerGroupTopicPartitions

    return ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0), TopicPartition(topic, 1)])
