"""The pending-offsets sweep against a real broker (``kafka/pending_offsets.py``): one transaction
that reaches every partition of the changelog and of each output, then the group's offsets partition,
and ends in an abort. Nothing of it is visible under read_committed, it changes no offset of the
group, and the producer's next transaction commits as usual. (A transaction whose markers the broker
dropped cannot be made with a client; what the sweep's markers do to one is the broker's
``ProducerAppendInfo`` rule, see the module docstring.)"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from smc_runtime.kafka.pending_offsets import SWEEP_KEY, PendingOffsetsSweep
from smc_runtime.logs import get_logger
from smc_runtime.sample_feed import read_to_end
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka]


def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "isolation.level": "read_committed"})
    try:
        return int(reader.committed([tp], timeout=10)[0].offset)
    finally:
        reader.close()


def test_the_sweep_aborts_over_every_partition_and_changes_no_offset(
        kafka_bootstrap: str, make_topic: MakeTopic) -> None:
    changelog, out_a, out_b, source = make_topic(2), make_topic(3), make_topic(1), make_topic(1)
    group = f"sweep-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{group}-txn",
                         "delivery.report.only.error": True, "linger.ms": 5})
    producer.init_transactions(30)
    member = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    try:
        metadata = member.consumer_group_metadata()
    finally:
        member.close()
    producer.begin_transaction()  # an ordinary committed transaction: one output, the group at 7
    producer.produce(out_a, key=b"k", value=b"kept", partition=0)
    producer.send_offsets_to_transaction([TopicPartition(source, 0, 7)], metadata, 30)
    producer.commit_transaction(30)

    sweep = PendingOffsetsSweep(producer, lambda: AdminClient({"bootstrap.servers": kafka_bootstrap}),
                                {"bootstrap.servers": kafka_bootstrap}, group, changelog, (out_a, out_b),
                                lambda p: p.abort_transaction(30), get_logger("test"))
    assert sweep() is True

    for topic, partitions in ((changelog, 2), (out_a, 3), (out_b, 1)):
        everything = read_to_end(kafka_bootstrap, topic, "read_uncommitted", 60)
        swept = [m for m in everything if m.key() == SWEEP_KEY]
        assert sorted(m.partition() for m in swept) == list(range(partitions))  # every partition reached
        visible = [(m.key(), m.value()) for m in read_to_end(kafka_bootstrap, topic, "read_committed", 60)]
        assert visible == ([(b"k", b"kept")] if topic == out_a else [])  # the sweep's records: aborted
    assert _committed(kafka_bootstrap, group, TopicPartition(source, 0)) == 7  # the group: unchanged

    producer.begin_transaction()  # the producer goes on as usual
    producer.produce(out_b, key=b"k", value=b"after", partition=0)
    producer.send_offsets_to_transaction([TopicPartition(source, 0, 9)], metadata, 30)
    producer.commit_transaction(30)
    assert [m.value() for m in read_to_end(kafka_bootstrap, out_b, "read_committed", 60)] == [b"after"]
    assert _committed(kafka_bootstrap, group, TopicPartition(source, 0)) == 9
