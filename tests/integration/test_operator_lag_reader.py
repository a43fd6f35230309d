"""The operator's lag reader against the real broker: committed offsets of groups that do not exist
yet, of plain consumer commits and of exactly-once transactions, and an unreachable broker."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from smc_operator.lag import LagError, LagReader
from smc_operator.scaling import LagSample
from tests.testbed.fixture_types import MakeTopic

pytestmark = pytest.mark.kafka


def _fill(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for partition, count in per_partition.items():
        for i in range(count):
            producer.produce(topic, value=f"{partition}-{i}".encode(), partition=partition)
    assert producer.flush(30) == 0


def _sample(reader: LagReader, bootstrap: str, group: str, topic: str) -> LagSample:
    sample = reader.read({"bootstrap.servers": bootstrap}, group, [topic], time.time())
    assert isinstance(sample, LagSample), sample
    return sample


def _committed(sample: LagSample) -> dict[int, int | None]:
    return {row.partition: row.committed for row in sample.partitions}


def _committed_soon(reader: LagReader, bootstrap: str, group: str, topic: str,
                    expected: dict[int, int | None], within_s: float = 15.0) -> dict[int, int | None]:
    """The committed offsets once they equal ``expected``, or the last read after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        committed = _committed(_sample(reader, bootstrap, group, topic))
        if committed == expected or time.monotonic() > deadline:
            return committed
        time.sleep(0.2)


def test_a_group_that_never_existed_has_no_committed_offsets(kafka_bootstrap: str,
                                                              make_topic: MakeTopic) -> None:
    topic = make_topic(partitions=3)
    _fill(kafka_bootstrap, topic, {0: 5, 1: 2, 2: 0})
    reader = LagReader()
    sample = _sample(reader, kafka_bootstrap, f"never-{uuid.uuid4().hex[:8]}", topic)
    assert _committed(sample) == {0: None, 1: None, 2: None}
    assert {row.partition: row.log_end for row in sample.partitions} == {0: 5, 1: 2, 2: 0}


def test_committed_offsets_of_a_consumer_group(kafka_bootstrap: str, make_topic: MakeTopic) -> None:
    topic = make_topic(partitions=2)
    _fill(kafka_bootstrap, topic, {0: 10, 1: 10})
    group = f"group-{uuid.uuid4().hex[:8]}"
    reader = LagReader()
    assert _committed(_sample(reader, kafka_bootstrap, group, topic)) == {0: None, 1: None}
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 7), TopicPartition(topic, 1, 3)], asynchronous=False)
    consumer.close()
    # The same reader (its cached probe) sees the commit made after its first read.
    assert _committed(_sample(reader, kafka_bootstrap, group, topic)) == {0: 7, 1: 3}
    reader.forget_group(group)
    assert _committed(_sample(reader, kafka_bootstrap, group, topic)) == {0: 7, 1: 3}


def test_transactional_offsets_count_once_committed_and_an_open_one_does_not_block(
        kafka_bootstrap: str, make_topic: MakeTopic) -> None:
    topic = make_topic(partitions=1)
    _fill(kafka_bootstrap, topic, {0: 20})
    group = f"eos-{uuid.uuid4().hex[:8]}"
    # A group member supplies the metadata send_offsets_to_transaction needs (as a processor would).
    member = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group,
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    member.subscribe([topic])
    deadline = time.monotonic() + 30
    while not member.assignment() and time.monotonic() < deadline:
        member.poll(0.2)
    assert member.assignment()
    producer: Any = Producer({"bootstrap.servers": kafka_bootstrap,
                              "transactional.id": f"lag-reader-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)
    reader = LagReader()
    try:
        producer.begin_transaction()
        producer.send_offsets_to_transaction([TopicPartition(topic, 0, 12)],
                                             member.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        # commit_transaction returns once the coordinator has logged the commit; the marker that makes the
        # offsets readable to a read_uncommitted OffsetFetch is written just after (seen: None right away).
        assert _committed_soon(reader, kafka_bootstrap, group, topic, {0: 12}) == {0: 12}

        producer.begin_transaction()  # offsets pending in an open transaction
        producer.send_offsets_to_transaction([TopicPartition(topic, 0, 18)],
                                             member.consumer_group_metadata(), 30)
        started = time.monotonic()
        sample = _sample(reader, kafka_bootstrap, group, topic)
        assert time.monotonic() - started < 4.0  # the last completed commit, without waiting
        assert _committed(sample) == {0: 12}
        producer.abort_transaction(30)
        assert _committed(_sample(reader, kafka_bootstrap, group, topic)) == {0: 12}
    finally:
        member.close()


def test_unreachable_broker_is_a_lag_error() -> None:
    reader = LagReader(timeout_s=2.0)
    result = reader.read({"bootstrap.servers": "127.0.0.1:1"}, "any", ["topic"], time.time())
    assert isinstance(result, LagError) and result.reason == "KafkaUnreachable"


def test_transactional_input_topic_leaves_no_lag_for_commit_markers(
        kafka_bootstrap: str, make_topic: MakeTopic) -> None:
    """Input written by an exactly-once producer: every transaction ends in a commit (or abort) marker that
    takes an offset but is never delivered. A consumer that commits "last record + 1" (as the runtime does)
    leaves its committed offset on the final marker; the reader must still report lag 0, not 1 per
    partition (the KEDA bug class, kedacore/keda#5675), and must keep counting real records."""
    topic = make_topic(partitions=3)
    producer: Any = Producer({"bootstrap.servers": kafka_bootstrap,
                              "transactional.id": f"eos-input-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)
    for round_ in range(4):
        producer.begin_transaction()
        for partition in range(3):
            for i in range(5):
                producer.produce(topic, value=f"{round_}-{i}".encode(), partition=partition)
        if round_ == 2:
            assert producer.flush(30) == 0  # on the log before the abort (else nothing is written)
            producer.abort_transaction(30)  # an aborted batch plus its abort marker
        else:
            producer.commit_transaction(30)
    group = f"eos-in-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([topic])
    last: dict[int, int] = {}
    deadline = time.monotonic() + 30
    while len(last) < 3 or min(last.values()) < 22:  # the last committed record is at offset 22
        assert time.monotonic() < deadline, last
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            last[msg.partition()] = msg.offset()
    # Runtime style: commit the offset after the last record processed (the final marker sits there).
    after_last = [TopicPartition(topic, p, off + 1) for p, off in last.items()]
    consumer.commit(offsets=after_last, asynchronous=False)
    reader = LagReader()
    raw = _sample(reader, kafka_bootstrap, group, topic)
    assert {row.partition: row.log_end for row in raw.partitions} == {0: 24, 1: 24, 2: 24}  # 4 x (5 + marker)
    assert raw.total_lag == 0, "commit markers counted as lag"
    assert _committed(raw) == {0: 24, 1: 24, 2: 24}
    assert _sample(reader, kafka_bootstrap, group, topic).total_lag == 0  # the cached verdict

    # Two real records committed behind on partition 0: they count (offsets 21, 22, then the marker).
    consumer.commit(offsets=[TopicPartition(topic, 0, 21)], asynchronous=False)
    consumer.close()
    behind = _sample(reader, kafka_bootstrap, group, topic)
    assert behind.total_lag == 3 and _committed(behind)[0] == 21
