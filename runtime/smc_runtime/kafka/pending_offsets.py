"""Group offsets left pending by a transaction the broker has finished but never marked, and how the
assignment gets past them.

Seen on the test bed's single broker, restarted while a commit completed: the transaction log says
CompleteCommit, yet the commit markers of that transaction never reached its partitions, neither the
outputs nor the group's offsets partition of ``__consumer_offsets``. Its offsets then stay pending
for good: a read_committed offset fetch answers UNSTABLE_OFFSET_COMMIT (librdkafka: ``_TIMED_OUT``)
restart after restart, because ``init_transactions`` aborts only transactions the coordinator counts
as open. Such offsets are resolved only by an end marker of the same producer id in that offsets
partition; the group coordinator applies (COMMIT) or discards (ABORT) every pending offset of the
producer id there, whatever the epoch and whatever the group.

The resolution is a commit: the outputs of the unmarked transaction are made visible by the next
commit marker our producer writes to their partitions (a partition's open transaction is ended by
the producer's next marker), so its offsets must be committed as well, or its input would be
processed again and its outputs duplicated (an abort here was measured to duplicate 144 records).
The sweep transaction must not change any offset of our group, so it commits an offset of another,
private group that the broker keeps in the same offsets partition (``sweep_group``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from smc_runtime.config import KafkaSettings
from smc_runtime.kafka import clients
from smc_runtime.kafka.startup import BrokerWaits
from smc_runtime.logs import StructLogger

OFFSETS_TOPIC = "__consumer_offsets"
KAFKA_CALL_TIMEOUT_S = 10.0
SWEEP_CANDIDATES = 10_000


def java_string_hash(text: str) -> int:
    """``String.hashCode()`` of the JVM (signed 32 bits over UTF-16 code units)."""
    data = text.encode("utf-16-be")
    value = 0
    for index in range(0, len(data), 2):
        value = (31 * value + int.from_bytes(data[index:index + 2], "big")) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def offsets_partition(group: str, partitions: int) -> int:
    """The ``__consumer_offsets`` partition of ``group``: the broker's ``Utils.abs(hashCode) % n``."""
    hashed = java_string_hash(group)
    return (0 if hashed == -(1 << 31) else abs(hashed)) % partitions


def sweep_group(group: str, partitions: int) -> str:
    """A private group id whose offsets live in the same ``__consumer_offsets`` partition as ``group``'s."""
    wanted = offsets_partition(group, partitions)
    for index in range(SWEEP_CANDIDATES):
        candidate = f"{group}.offsets-sweep-{index}"
        if offsets_partition(candidate, partitions) == wanted:
            return candidate
    raise ValueError(f"no sweep group found for {group!r} over {partitions} partitions")


@dataclass
class PendingOffsetsSweep:
    """Commits one transaction into the group's offsets partition (see the module docstring): called by
    the assignment when reading the group's committed offsets first times out, with no transaction of
    ours open. A timeout after it is something else (another instance's open transaction, which the
    broker aborts after its timeout), and the read is then simply retried."""

    producer: Producer
    admin: Callable[[], AdminClient | None]
    client_conf: dict[str, Any]  # bootstrap and security settings for the metadata-only consumer
    group: str
    topic: str  # the sweep group's offset is committed on this topic's partition 0
    abort: Callable[[Producer], None]
    log: StructLogger

    @classmethod
    def of(cls, producer: Producer, waits: BrokerWaits, kafka: KafkaSettings, client_id: str, group: str,
           topic: str, log: StructLogger) -> PendingOffsetsSweep:
        """The sweep of one processor: its producer, its admin client (for the offsets topic's
        partition count), its connection settings."""
        return cls(producer, lambda: waits.admin, clients.base_settings(kafka, f"{client_id}.sweep"), group,
                   topic, lambda p: waits.abort_transaction(p, flush_first=False), log)

    def __call__(self) -> None:
        partitions = self._offsets_partitions()
        if partitions is None:
            return
        sweep = sweep_group(self.group, partitions)
        metadata_consumer = Consumer({**self.client_conf, "group.id": sweep})
        try:
            metadata = metadata_consumer.consumer_group_metadata()
        finally:
            metadata_consumer.close()
        self.producer.begin_transaction()
        try:
            self.producer.send_offsets_to_transaction([TopicPartition(self.topic, 0, 0)], metadata,
                                                      KAFKA_CALL_TIMEOUT_S)
            self.producer.commit_transaction(KAFKA_CALL_TIMEOUT_S)
        except KafkaException as exc:
            self.log.warning("sweep transaction failed: aborted, the offsets read goes on retrying",
                             error=str(exc))
            self.abort(self.producer)
            return
        self.log.warning("group offsets held back: committed a sweep transaction into the group's "
                         "offsets partition (resolves offsets of ours a transaction left unmarked)",
                         sweep_group=sweep, offsets_partition=offsets_partition(self.group, partitions))

    def _offsets_partitions(self) -> int | None:
        admin = self.admin()
        try:
            if admin is None:
                raise KafkaException("no admin client")
            topic = admin.list_topics(OFFSETS_TOPIC, timeout=KAFKA_CALL_TIMEOUT_S).topics.get(OFFSETS_TOPIC)
            if topic is None or topic.error is not None or not topic.partitions:
                raise KafkaException(f"{OFFSETS_TOPIC} not described: {topic and topic.error}")
        except KafkaException as exc:
            self.log.warning("cannot sweep pending group offsets: the offsets topic is not visible",
                             error=str(exc))
            return None
        return len(topic.partitions)
