"""One transaction, from its first record to its commit (``Transaction``), and what a commit needs
(``CommitContext``, the long-lived collaborators).

A commit is proportional to what changed: the partitions processed in this transaction and, when
their snapshot is due, the state keys touched since their last snapshot; nothing is rebuilt over
all partitions or all keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka.errors import AbortableKafkaError, FatalKafkaError, call_with_retry
from smc_runtime.kafka.output import DeliveryReport, OutputWriter
from smc_runtime.kafka.partitions import TP, Partitions, PartitionState, StateId
from smc_runtime.kafka.resume import next_snapshot_due, snapshot_budget, snapshot_due
from smc_runtime.kafka.telemetry import Telemetry
from smc_runtime.logs import StructLogger

KAFKA_CALL_TIMEOUT_S = 10.0
RETRY_DEADLINE_S = 60.0  # outlasts a broker restart


class StateSource(Protocol):
    """The part of the Pipeline a commit reads."""

    def take_touched(self) -> set[StateId]: ...
    def snapshot(self, topic: str, partition: int, state_key: str) -> bytes | None: ...


@dataclass
class CommitContext:
    """What every transaction of one processor commits with."""

    producer: Producer
    consumer: Consumer
    eos: bool
    partitions: Partitions
    pipeline: StateSource
    writer: OutputWriter
    deliveries: DeliveryReport
    telemetry: Telemetry
    log: StructLogger
    changelog_topic: str
    changelog_partitions: int
    snapshot_interval_ms: int
    on_retry: Callable[[str], Callable[[KafkaError], None]]
    commit_interval_ms: int | None = None  # spreads interval snapshots over commits (None: all due at once)
    closed_at: float | None = None  # monotonic end of the last commit or abort (see Transaction)


class Transaction:
    """The records processed since the last commit: opened at the first one (``begin``), closed by
    ``commit`` or by an abort (``recovery.py``)."""

    def __init__(self, ctx: CommitContext, started: float) -> None:
        self.ctx = ctx
        self.started = started                      # monotonic: its first record
        # The commit interval runs from the end of the previous commit (or abort), as the bare loop's
        # and Kafka Streams' do: the consume wait before this transaction's first record counts
        # toward it instead of being added to every commit cycle (~10 ms per cycle at live rates).
        self.interval_from = started if ctx.closed_at is None else min(started, ctx.closed_at)
        self.pending = 0                            # records processed in it
        self.dirty: dict[TP, PartitionState] = {}   # partitions processed in it
        self.timestamps: list[int] = []             # record timestamps (end-to-end latency)
        self.written: set[str] = set()              # topics written to (the breaker's proof of health)

    @classmethod
    def begin(cls, ctx: CommitContext) -> Transaction:
        if ctx.eos:
            try:
                ctx.producer.begin_transaction()
            except KafkaException as exc:
                raise FatalKafkaError(f"begin_transaction: {exc}") from exc
        return cls(ctx, time.monotonic())

    def due_in(self, now: float, interval_ms: int) -> float:
        """Seconds until the commit interval is up (<= 0: due)."""
        return self.interval_from + interval_ms / 1000 - now

    def commit(self, *, snapshot: bool = False) -> None:
        """Make everything processed in this transaction visible, atomically; raises
        ``AbortableKafkaError`` (the caller aborts) or ``FatalKafkaError``.

        ``snapshot``: snapshot every changed partition now (shutdown, revocation)."""
        started = time.perf_counter()
        now = time.monotonic()
        # 1. Snapshots due: the changed partitions whose interval passed (or forced), with the keys
        #    touched since their last snapshot, plus one marker each (the offset the state reflects).
        due = self._due(now, snapshot)
        written, markers = self._write_snapshots(due) if due else ({}, {})
        if written or markers:
            self.written.add(self.ctx.changelog_topic)
        # 2. The consumed positions of the processed partitions, in the transaction.
        offsets = [TopicPartition(t, p, part.position) for (t, p), part in sorted(self.dirty.items())
                   if part.position is not None]
        # 3. Commit: exactly-once commits the transaction (flushing and checking every record);
        #    at-least-once flushes, checks deliveries, then commits the offsets.
        if self.ctx.eos:
            self._commit_transaction(offsets)
        else:
            self._flush_and_commit_offsets(offsets)
        # 4. Committed: the positions become the rewind points; the snapshots the rollback points.
        interval = self.ctx.snapshot_interval_ms
        for part in due:
            part.snapshotted(written.get(part.tp, {}), markers.get(part.tp),
                             next_snapshot_due(part.snapshot_due_at, now, interval))
        committed: dict[TP, int] = {}
        for tp, part in self.dirty.items():
            if part.position is not None:
                part.committed = committed[tp] = part.position
        records = sum(len(keys) for keys in written.values()) + len(markers)
        self.ctx.telemetry.committed(started, self.timestamps, records, committed)
        self.ctx.closed_at = time.monotonic()
        log = self.ctx.log
        if log.is_enabled(logging.DEBUG):
            log.debug("committed", offsets={f"{t}[{p}]": o for (t, p), o in committed.items()},
                      snapshots=records - len(markers), markers=len(markers))

    def _due(self, now: float, snapshot: bool) -> list[PartitionState]:
        ctx = self.ctx
        ctx.partitions.note_touched(ctx.pipeline.take_touched())
        for part in self.dirty.values():
            part.unsnapshotted = True
        interval = ctx.snapshot_interval_ms
        dirty = self.dirty
        forced: list[PartitionState] = []  # shutdown, revocation, or no snapshot yet: all of them now
        on_time: list[PartitionState] = []  # their interval is up: a budget per commit, oldest first
        for part in ctx.partitions:
            if not part.unsnapshotted:
                continue
            if snapshot or interval == 0 or (part.tp in dirty and not part.persisted):
                forced.append(part)
            elif snapshot_due(part, now, interval, False):
                on_time.append(part)
        if ctx.commit_interval_ms is not None and on_time:
            on_time.sort(key=lambda part: part.snapshot_due_at)
            del on_time[snapshot_budget(len(ctx.partitions), ctx.commit_interval_ms, interval):]
        return forced + on_time

    def _write_snapshots(self, due: list[PartitionState]
                         ) -> tuple[dict[TP, dict[str, bytes | None]], dict[TP, int]]:
        """Produce the snapshot of every touched key of the ``due`` partitions and a marker per
        partition (``changelog.py``); returns what was written by partition (None: a tombstone)
        and the markers' offsets."""
        ctx = self.ctx
        snapshot, writer = ctx.pipeline.snapshot, ctx.writer
        topic, width = ctx.changelog_topic, ctx.changelog_partitions
        written: dict[TP, dict[str, bytes | None]] = {}
        for part in due:
            t, p = part.tp
            reflects = part.reflects()
            headers = cl.source_offset_header(max(reflects, 0))
            keys: dict[str, bytes | None] = {}
            for key in sorted(part.touched):
                data = snapshot(t, p, key)
                if writer.produce_snapshot(topic, cl.changelog_key(t, p, key), data, headers,
                                           cl.changelog_partition(p, width)):
                    keys[key] = data
                else:
                    keys[key] = None
                    ctx.telemetry.snapshot_too_large()
                    ctx.log.error("state snapshot too large for the changelog: key written as a tombstone "
                                  "(a restore starts it afresh)", state_key=key, size=len(data or b""),
                                  partition=part.label, message_max_bytes=writer.max_message_bytes)
            written[part.tp] = keys
        markers: dict[TP, int] = {}
        for part in due:
            offset = part.reflects()
            if offset >= 0:  # < 0: nothing consumed yet after a rollback to the partition's beginning
                writer.produce_snapshot(topic, cl.marker_key(*part.tp), cl.marker_value(offset),
                                        cl.source_offset_header(offset),
                                        cl.changelog_partition(part.partition, width), may_tombstone=False)
                markers[part.tp] = offset
        return written, markers

    def _commit_transaction(self, offsets: list[TopicPartition]) -> None:
        producer, consumer = self.ctx.producer, self.ctx.consumer
        if offsets:
            # Not retried: after a broker restart a resumed send_offsets call can block for good;
            # aborting and rewinding is always safe and takes a fresh path.
            call_with_retry(lambda: producer.send_offsets_to_transaction(
                offsets, consumer.consumer_group_metadata(), KAFKA_CALL_TIMEOUT_S),
                "send_offsets_to_transaction", 0.0)
        call_with_retry(lambda: producer.commit_transaction(KAFKA_CALL_TIMEOUT_S), "commit_transaction",
                        RETRY_DEADLINE_S, self.ctx.on_retry("commit_transaction"))

    def _flush_and_commit_offsets(self, offsets: list[TopicPartition]) -> None:
        ctx = self.ctx
        ctx.deliveries.errors = 0
        if ctx.producer.flush(RETRY_DEADLINE_S) > 0 or ctx.deliveries.errors:
            raise AbortableKafkaError(f"{ctx.deliveries.errors} deliveries failed or timed out")
        if offsets:
            consumer = ctx.consumer
            call_with_retry(lambda: consumer.commit(offsets=offsets, asynchronous=False),
                            "commit offsets", RETRY_DEADLINE_S, ctx.on_retry("commit"))
