"""One transaction, from its first record to its commit (``Transaction``), and what a commit needs
(``CommitContext``, the long-lived collaborators).

A commit is proportional to what changed: the partitions processed in this transaction and, when
their snapshot is due, the state keys touched since their last snapshot; nothing is rebuilt over
all partitions or all keys.

Its steps are split by thread: ``prepare`` (snapshots, offsets) and ``finish`` (advance the
partitions) run on the loop's thread; ``send`` makes only the broker calls, so the loop can hand it
to the committer thread (``committer.py``) and process the next records meanwhile. Those records
belong to a *staged* transaction: librdkafka refuses produce() while a commit is in progress, so
their outputs wait in ``buffer`` until the commit returns and ``open`` begins the transaction and
produces them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka.errors import AbortableKafkaError, FatalKafkaError, call_with_retry
from smc_runtime.kafka.output import DeliveryReport, OutputWriter, StagedOutput
from smc_runtime.kafka.partitions import TP, Partitions, PartitionState, SnapshotRound, StateId
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


@dataclass
class SnapshotWrites:
    """The changelog records one transaction wrote for one partition: its round's keys (None: a
    tombstone), the offset they reflect, and the marker of a round that ended in it."""

    part: PartitionState
    keys: dict[str, bytes | None] = field(default_factory=dict)
    reflects: int = 0
    marker: int | None = None


@dataclass
class PreparedCommit:
    """Steps 1 and 2 of a commit, done on the loop's thread: what ``send`` sends and ``finish``
    applies. ``positions`` are the offsets committed, captured now: the loop may go on processing."""

    offsets: list[TopicPartition]
    group_metadata: Any
    snapshots: list[SnapshotWrites]
    positions: dict[TP, int]
    now: float  # monotonic, when prepared
    started: float = field(default_factory=time.perf_counter)


class Transaction:
    """The records processed since the last commit: opened at the first one (``begin``), or staged
    while the previous commit is in flight (``stage``, opened by ``open``), closed by ``commit``
    (or ``prepare`` -> ``send`` -> ``finish``) or by an abort (``recovery.py``)."""

    def __init__(self, ctx: CommitContext, started: float, *, opened: bool = True) -> None:
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
        # Changelog records written in it, by partition (``_write_snapshots``), and whether the
        # snapshot rounds already took their keys when it began (``begin``).
        self.snapshots: dict[TP, SnapshotWrites] = {}
        self.rounds_taken = False
        # Outputs waiting for ``open`` (staged: begun while the previous commit was in flight).
        self.buffer: list[StagedOutput] | None = None if opened else []

    @property
    def opened(self) -> bool:
        return self.buffer is None

    @classmethod
    def begin(cls, ctx: CommitContext) -> Transaction:
        """Open a transaction before its first record, and write the snapshot rounds' keys first.

        A round's keys hold the state as of the last commit (nothing is processed in between), so
        they are the same bytes as at that commit's end; written here, their changelog partitions are
        registered with the transaction together with the outputs' and their records are sent while
        the records are processed, instead of on the commit's path (``commit_transaction`` waited
        ~0.75 ms more per commit for them: benchmarks/results/issue14/session10)."""
        _begin_transaction(ctx)
        txn = cls(ctx, time.monotonic())
        if ctx.snapshot_interval_ms > 0:
            txn._write_snapshots(txn._due(txn.started, snapshot=False))
            txn.rounds_taken = True
        return txn

    @classmethod
    def stage(cls, ctx: CommitContext) -> Transaction:
        """A transaction whose records are processed while the previous commit is in flight: nothing
        is produced (or begun on the producer) until ``open``."""
        return cls(ctx, time.monotonic(), opened=False)

    def open(self) -> None:
        """The previous commit returned: begin this transaction and produce what waited for it
        (``OutputWriter.produce_staged``; raises its error classes)."""
        buffer = self.buffer
        if buffer is None:
            return
        _begin_transaction(self.ctx)
        self.buffer = None
        self.ctx.writer.produce_staged(buffer)

    def due_in(self, now: float, interval_ms: int) -> float:
        """Seconds until the commit interval is up (<= 0: due)."""
        return self.interval_from + interval_ms / 1000 - now

    def commit(self, *, snapshot: bool = False) -> None:
        """Make everything processed in this transaction visible, atomically; raises
        ``AbortableKafkaError`` (the caller aborts) or ``FatalKafkaError``.

        ``snapshot``: snapshot every changed partition now (shutdown, revocation)."""
        prepared = self.prepare(snapshot=snapshot)
        self.send(prepared)
        self.finish(prepared)
        self.ctx.closed_at = time.monotonic()

    def prepare(self, *, snapshot: bool = False) -> PreparedCommit:
        """Steps 1 and 2, on the loop's thread (they read and write partition state)."""
        self.open()  # staged (a commit in flight settled in between): produce what waited first
        ctx = self.ctx
        now = time.monotonic()
        # 1. Snapshots: the next keys of each round in progress, rounds begun for the changed
        #    partitions whose interval passed (or forced: all their keys at once), and the marker of
        #    each round that ends here (the offset the partition's state reflects).
        self._write_snapshots(self._due(now, snapshot))
        # 2. The consumed positions of the processed partitions, in the transaction.
        positions = {tp: part.position for tp, part in sorted(self.dirty.items())
                     if part.position is not None}
        offsets = [TopicPartition(t, p, offset) for (t, p), offset in positions.items()]
        metadata = ctx.consumer.consumer_group_metadata() if ctx.eos and offsets else None
        # The next commit interval runs from here: the loop stops waiting for this one now (an
        # overlapped commit) or when ``commit`` returns (which sets it again).
        ctx.closed_at = now
        return PreparedCommit(offsets, metadata, list(self.snapshots.values()), positions, now)

    def send(self, prepared: PreparedCommit) -> None:
        """Step 3, the broker calls alone (safe on the committer thread): exactly-once commits the
        transaction (flushing and checking every record); at-least-once flushes, checks
        deliveries, then commits the offsets."""
        if self.ctx.eos:
            self._commit_transaction(prepared.offsets, prepared.group_metadata)
        else:
            self._flush_and_commit_offsets(prepared.offsets)

    def finish(self, prepared: PreparedCommit) -> None:
        """Step 4, on the loop's thread once ``send`` returned: the committed positions become the
        rewind points, the snapshots the rollback points."""
        interval = self.ctx.snapshot_interval_ms
        for writes in prepared.snapshots:
            part = writes.part
            part.snapshotted(writes.keys, writes.reflects, writes.marker,
                             next_snapshot_due(part.snapshot_due_at, prepared.now, interval))
        for tp, offset in prepared.positions.items():
            self.dirty[tp].committed = offset
        markers = sum(writes.marker is not None for writes in prepared.snapshots)
        records = sum(len(writes.keys) for writes in prepared.snapshots) + markers
        self.ctx.telemetry.committed(prepared.started, self.timestamps, records, prepared.positions)
        log = self.ctx.log
        if log.is_enabled(logging.DEBUG):
            log.debug("committed", offsets={f"{t}[{p}]": o for (t, p), o in prepared.positions.items()},
                      snapshots=records - markers, markers=markers)

    def _due(self, now: float, snapshot: bool) -> list[PartitionState]:
        """The partitions this transaction writes snapshot keys of now, each with its ``round`` set:
        rounds in progress, and new ones for changed partitions whose interval is up (a budget per
        transaction, oldest first), unless they took their keys when it began (``rounds_taken``);
        and forced ones (shutdown, revocation, interval 0, never snapshotted: everything touched,
        in this commit, with the current position as marker)."""
        ctx = self.ctx
        ctx.partitions.note_touched(ctx.pipeline.take_touched())
        for part in self.dirty.values():
            part.unsnapshotted = True
        interval = ctx.snapshot_interval_ms
        dirty = self.dirty
        due: list[PartitionState] = []
        on_time: list[PartitionState] = []
        for part in ctx.partitions:
            if snapshot or interval == 0 or (part.tp in dirty and not part.persisted):
                if part.unsnapshotted or part.round is not None:
                    self._begin_round(part, everything=True)
                    due.append(part)
            elif self.rounds_taken:
                continue
            elif part.round is not None:
                due.append(part)
            elif part.unsnapshotted and snapshot_due(part, now, interval, False):
                on_time.append(part)
        if ctx.commit_interval_ms is not None and on_time:
            on_time.sort(key=lambda part: part.snapshot_due_at)
            del on_time[snapshot_budget(len(ctx.partitions), ctx.commit_interval_ms, interval):]
        for part in on_time:
            self._begin_round(part, everything=False)
        return due + on_time

    def _begin_round(self, part: PartitionState, *, everything: bool) -> None:
        """A round over the keys touched since the last one began (plus, when ``everything``, those a
        round in progress has not written yet: it is replaced by one that ends in this commit)."""
        keys = part.touched
        if everything and part.round is not None:
            keys = keys | set(part.round.keys[part.round.next:])
        ctx = self.ctx
        part.round = SnapshotRound.begin(max(part.reflects(), 0), keys,
                                         None if everything else ctx.commit_interval_ms,
                                         ctx.snapshot_interval_ms)
        part.touched = set()

    def _write_snapshots(self, due: list[PartitionState]) -> None:
        """Produce the next keys of each ``due`` partition's round, with their current state, and
        the marker of each round that ends (``changelog.py``); note by partition what was written
        (None: a tombstone), the offset those keys reflect and the marker's offset.

        A partition written twice in one transaction (its round's keys when it began, then a forced
        snapshot at the commit) gets one entry: the keys of both, the later offset, the later
        marker. The earlier keys hold the state at that later offset too: a key changed in between
        is among the touched keys the forced snapshot writes again."""
        ctx = self.ctx
        snapshot, writer = ctx.pipeline.snapshot, ctx.writer
        topic, width = ctx.changelog_topic, ctx.changelog_partitions
        if due:
            self.written.add(topic)
        for part in due:
            t, p = part.tp
            current = part.reflects()
            state_offset = max(current, 0)
            headers = cl.source_offset_header(state_offset)
            floors = part.floors
            writes = self.snapshots.get(part.tp)
            if writes is None:
                writes = self.snapshots[part.tp] = SnapshotWrites(part)
            keys = writes.keys
            snapshot_round = part.round
            assert snapshot_round is not None
            for key in snapshot_round.take():
                data = snapshot(t, p, key)
                floor = floors.get(key, -1)
                # A key whose state is ahead of the partition's position (written after the last
                # marker, and not replayed up to yet since a rollback) keeps the offset it reflects.
                key_headers = headers if floor <= state_offset else cl.source_offset_header(floor)
                if writer.produce_snapshot(topic, cl.changelog_key(t, p, key), data, key_headers,
                                           cl.changelog_partition(p, width)):
                    keys[key] = data
                else:
                    keys[key] = None
                    ctx.telemetry.snapshot_too_large()
                    ctx.log.error("state snapshot too large for the changelog: key written as a tombstone "
                                  "(a restore starts it afresh)", state_key=key, size=len(data or b""),
                                  partition=part.label, message_max_bytes=writer.max_message_bytes)
            writes.reflects, writes.marker = state_offset, None
            # < 0: nothing consumed yet after a rollback to the partition's beginning: no marker
            if snapshot_round.done and current >= 0:
                writer.produce_snapshot(topic, cl.marker_key(t, p), cl.marker_value(snapshot_round.start),
                                        cl.source_offset_header(snapshot_round.start),
                                        cl.changelog_partition(p, width), may_tombstone=False)
                writes.marker = snapshot_round.start

    def _commit_transaction(self, offsets: list[TopicPartition], metadata: Any) -> None:
        producer = self.ctx.producer
        if offsets:
            # Not retried: after a broker restart a resumed send_offsets call can block for good;
            # aborting and rewinding is always safe and takes a fresh path.
            call_with_retry(lambda: producer.send_offsets_to_transaction(
                offsets, metadata, KAFKA_CALL_TIMEOUT_S),
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


def _begin_transaction(ctx: CommitContext) -> None:
    if ctx.eos:
        try:
            ctx.producer.begin_transaction()
        except KafkaException as exc:
            raise FatalKafkaError(f"begin_transaction: {exc}") from exc
