"""Group offsets left pending by a transaction the broker has finished but never marked, and how the
assignment gets past them without losing or duplicating a record.

Seen on the test bed's single broker, restarted while a commit completed: the transaction log says
CompleteCommit, yet the commit markers of that transaction never reached its partitions, neither the
outputs nor the group's offsets partition of ``__consumer_offsets``. (One broker path that does this:
the transaction coordinator drops the markers of partitions it finds no leader for in its metadata
and still completes the transaction, ``TransactionMarkerChannelManager.addTxnMarkersToBrokerQueue``;
which path it was here is not established.) Its offsets then stay pending for good: a
read_committed offset fetch answers UNSTABLE_OFFSET_COMMIT (librdkafka: ``_TIMED_OUT``) restart
after restart, because ``init_transactions`` aborts only transactions the coordinator counts as open.

What resolves the leftovers, in the broker's own terms:
* a partition holds one open transaction per producer id, from that producer's first unmarked
  record to its next end marker there: whatever marker our producer writes next to a partition
  (any epoch, any later transaction) commits or aborts the unmarked records with it
  (``ProducerAppendInfo``: a data batch opens a transaction only when none is open);
* the group coordinator applies (COMMIT) or discards (ABORT) every pending offset of a producer id
  in an offsets partition on that producer's next marker there, whatever the group;
* a transaction writes markers only to the partitions it added, and the client adds a partition only
  by producing a record to it (librdkafka has no marker-only transaction and no KIP-664
  ``abortTransaction``).

The earlier sweep committed a transaction into the offsets partition alone: the unmarked offsets
became committed at once while the unmarked outputs waited for our next marker on each of their
partitions. When that next marker was an abort (the first transaction after the sweep blocked, the
watchdog restarted the process, its ``init_transactions`` aborted that transaction), the outputs of
the already committed input were discarded: records lost (seen once, 2026-12-06). Committing the
outputs at the same moment would need a visible record on every output partition, which changes
what consumers read. So the sweep **aborts, everywhere at once**: one transaction produces one
record (``SWEEP_KEY``, empty value) to every partition of every topic a transaction of ours writes
to (the outputs and the changelog), then sends an offset of a private group that the broker keeps
in the same offsets partition as our group (``sweep_group``), then aborts. Its markers discard,
together, the unmarked outputs, snapshots and offsets: the state is the one before that transaction,
whose input is then processed again (exactly once). Its own records are aborted and never read by a
read_committed consumer. The offsets partition is added only after every record was delivered: an
abort that reached the offsets but missed an output partition would leave unmarked outputs of an
input that is processed again (duplicates). A sweep that fails anywhere is aborted and tried again.

When it is safe (``sweep_due``): no transaction of ours is open (the assignment settles it first),
and this process holds no partition whose state or position could rest on the discarded
transaction: it owns no partition besides those being assigned, whose state was just read from the
changelog under read_committed (the unmarked snapshots were invisible) and whose positions come
from the offsets being read. And only once the read has timed out for longer than any transaction
can stay open (``transaction.timeout.ms`` plus the broker's 10 s abort check, rebalance.py's
SWEEP_AFTER_S): a timeout before that is usually a coordinator loading or another producer's open
transaction, which end by themselves; offsets still held after it belong to a transaction nobody
will mark. When every partition of that transaction is unmarked, sweeping early would do no harm;
but when its offsets were marked and some outputs were not, a sweep on a timeout with another cause
would abort outputs whose input is already committed: waiting keeps the sweep to stuck offsets. The
coordinator serializes the sweep behind any transaction of ours it is still completing
(CONCURRENT_TRANSACTIONS), so it cannot abort one the coordinator will commit. A process that holds
other partitions never sweeps: its read retries until its deadline and the loop exits, and the
restarted process (no partitions) sweeps.

What it cannot fix: a transaction whose markers were lost on only some of its partitions. If the
offsets were marked, nothing times out and the unmarked outputs wait for our next marker there (an
abort discards them); if outputs were marked and the offsets not, the sweep discards the offsets and
the marked outputs are produced again. See docs/runtime.md ("Known limits").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from smc_runtime.config import KafkaSettings
from smc_runtime.kafka import clients
from smc_runtime.kafka.startup import BrokerWaits
from smc_runtime.logs import StructLogger

OFFSETS_TOPIC = "__consumer_offsets"
KAFKA_CALL_TIMEOUT_S = 10.0
SWEEP_CANDIDATES = 10_000
SWEEP_KEY = b"smc-stream.offsets-sweep"  # the key of the sweep's (always aborted) records
SWEEP_HEADER: list[tuple[str, str | bytes | None]] = [("smc-offsets-sweep", b"aborted")]


def sweep_due(*, timed_out: bool, swept: bool, holds_other_partitions: bool, waited_s: float,
              after_s: float) -> bool:
    """Whether a failed committed-offsets read should run the sweep before asking again (see the
    module docstring): on a timeout once the read has waited ``after_s`` (no transaction can still
    be open then), until one sweep has succeeded, and never while this process holds partitions
    whose state the sweep's abort could contradict."""
    return timed_out and not swept and not holds_other_partitions and waited_s >= after_s


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


class SweepIncomplete(Exception):
    """A step of the sweep failed: it is aborted and the offsets read goes on (and sweeps again)."""


@dataclass
class PendingOffsetsSweep:
    """Aborts one transaction over every partition our transactions write to plus the group's
    offsets partition (see the module docstring). Called by the assignment (``sweep_due``) with no
    transaction of ours open; True once the abort covered every partition."""

    producer: Producer
    admin: Callable[[], AdminClient | None]
    client_conf: dict[str, Any]  # bootstrap and security settings for the metadata-only consumer
    group: str
    topic: str  # the changelog: swept, and the sweep group's offset is sent on its partition 0
    outputs: tuple[str, ...]  # every output topic: swept
    abort: Callable[[Producer], None]
    log: StructLogger

    @classmethod
    def of(cls, producer: Producer, waits: BrokerWaits, kafka: KafkaSettings, client_id: str, group: str,
           topic: str, log: StructLogger, *, outputs: Sequence[str]) -> PendingOffsetsSweep:
        """The sweep of one processor: its producer, its admin client (partition counts), its
        connection settings, its changelog and output topics."""
        return cls(producer, lambda: waits.admin, clients.base_settings(kafka, f"{client_id}.sweep"), group,
                   topic, tuple(outputs), lambda p: waits.abort_transaction(p, flush_first=True), log)

    def __call__(self) -> bool:
        try:
            counts = self._partition_counts()
        except SweepIncomplete as exc:
            self.log.warning("cannot sweep pending group offsets yet: topics not described", error=str(exc))
            return False
        sweep = sweep_group(self.group, counts[OFFSETS_TOPIC])
        metadata_consumer = Consumer({**self.client_conf, "group.id": sweep})
        try:
            metadata = metadata_consumer.consumer_group_metadata()
        finally:
            metadata_consumer.close()
        swept = [(t, p) for t in (self.topic, *self.outputs) for p in range(counts[t])]
        self.producer.begin_transaction()
        try:
            self._mark(swept)
            # Last: the offsets partition joins only once every other partition is in the transaction.
            self.producer.send_offsets_to_transaction([TopicPartition(self.topic, 0, 0)], metadata,
                                                      KAFKA_CALL_TIMEOUT_S)
        except (KafkaException, SweepIncomplete) as exc:
            self.log.warning("sweep incomplete: aborted, the offsets read goes on and sweeps again",
                             error=str(exc))
            self.abort(self.producer)
            return False
        self.abort(self.producer)  # the sweep itself: its markers discard what our producer left unmarked
        self.log.warning("group offsets held back: aborted a sweep transaction over every output, changelog "
                         "and the group's offsets partition (discards what a transaction of ours left "
                         "unmarked; its input is processed again)", sweep_group=sweep,
                         offsets_partition=offsets_partition(self.group, counts[OFFSETS_TOPIC]),
                         partitions=len(swept))
        return True

    def _mark(self, partitions: list[tuple[str, int]]) -> None:
        """One record to each partition, all delivered: each partition is then in the transaction."""
        failed: list[str] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failed.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")

        for topic, partition in partitions:
            self.producer.produce(topic, key=SWEEP_KEY, value=None, partition=partition,
                                  headers=SWEEP_HEADER, on_delivery=on_delivery)
        left = self.producer.flush(KAFKA_CALL_TIMEOUT_S)
        if left or failed:
            raise SweepIncomplete(f"{left} sweep records not delivered, failed: {failed[:5]}")

    def _partition_counts(self) -> dict[str, int]:
        admin = self.admin()
        if admin is None:
            raise SweepIncomplete("no admin client")
        counts: dict[str, int] = {}
        try:
            for name in (OFFSETS_TOPIC, self.topic, *self.outputs):
                topic = admin.list_topics(name, timeout=KAFKA_CALL_TIMEOUT_S).topics.get(name)
                if topic is None or topic.error is not None or not topic.partitions:
                    raise SweepIncomplete(f"{name} not described: {topic and topic.error}")
                counts[name] = len(topic.partitions)
        except KafkaException as exc:
            raise SweepIncomplete(str(exc)) from exc
        return counts
