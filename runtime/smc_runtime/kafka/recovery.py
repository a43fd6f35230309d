"""Getting a partition's state right after an assignment or an abort: restore the last snapshot,
seek back to it and replay the records up to the committed offset with their outputs suppressed
(they were committed already). The decisions are ``resume.plan_resume``'s; this module applies them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka.partitions import TP, Partitions, PartitionState, StateId
from smc_runtime.kafka.resume import plan_resume, snapshot_phase
from smc_runtime.kafka.telemetry import Telemetry
from smc_runtime.logs import StructLogger


class StatePipeline(Protocol):
    """The part of the Pipeline recovery uses."""

    def process(self, value: bytes | None, *, topic: str, partition: int, offset: int,
                timestamp_ms: int, key: bytes | None = None) -> object: ...
    def state_key_of(self, value: bytes | None, *, topic: str, key: bytes | None = None) -> str | None: ...
    def take_touched(self) -> set[StateId]: ...
    def restore(self, topic: str, partition: int, state_key: str, data: bytes) -> None: ...
    def drop_partition(self, topic: str, partition: int) -> None: ...


class Recovery:
    """Restores, rolls back and replays the partitions of one processor."""

    def __init__(self, partitions: Partitions, pipeline: StatePipeline, telemetry: Telemetry,
                 log: StructLogger, snapshot_interval_ms: int) -> None:
        self.partitions = partitions
        self.pipeline = pipeline
        self.telemetry = telemetry
        self.log = log
        self.snapshot_interval_ms = snapshot_interval_ms

    def _load_snapshot(self, part: PartitionState) -> None:
        """The Pipeline's state of the partition becomes its last snapshot."""
        self.pipeline.drop_partition(part.topic, part.partition)
        for key, data in part.snapshot.items():
            self.pipeline.restore(part.topic, part.partition, key, data)

    def _start_replay(self, part: PartitionState, start: int | None, until: int | None) -> None:
        self.partitions.set_replay(part, until)
        if until is None:
            self.telemetry.replay_finished(part.tp)
        else:
            self.telemetry.replay_started(part.tp, start, until)

    # -- assignment ------------------------------------------------------------------------------------

    def restore(self, tps: list[TP], restored: cl.RestoredState, committed: dict[TP, int]
                ) -> tuple[list[TopicPartition], dict[str, str]]:
        """State of newly assigned partitions from the changelog (``restored``) and the group's
        ``committed`` offsets; returns the assignment (with start offsets) and the replays planned."""
        self.partitions.note_touched(self.pipeline.take_touched())  # keep changes of partitions owned
        started = time.monotonic()
        interval_s = self.snapshot_interval_ms / 1000
        parts: dict[TP, PartitionState] = {}
        for index, tp in enumerate(sorted(tps)):
            part = parts[tp] = self.partitions.add(tp)
            part.snapshot_due_at = started + interval_s * (1.0 + snapshot_phase(index, len(tps)))
        for (t, p, key), data in restored.snapshots.items():
            if (t, p) in parts:
                parts[(t, p)].snapshot[key] = data
        replays: dict[str, str] = {}
        assignment: list[TopicPartition] = []
        floors = restored.key_floors()
        for tp in tps:
            part = parts[tp]
            self._load_snapshot(part)
            snapshot_offset = restored.snapshot_offset(tp)
            if snapshot_offset is not None:
                part.persisted = True
            part.floors = floors.get(tp, {})
            plan = plan_resume(snapshot_offset, committed.get(tp))
            part.snapshot_offset = plan.state_offset
            if plan.replay_until is not None:
                part.committed = plan.replay_until
                replays[part.label] = f"{plan.start}..{plan.replay_until}"
            self._start_replay(part, plan.start, plan.replay_until)
            assignment.append(TopicPartition(tp[0], tp[1]) if plan.start is None
                              else TopicPartition(tp[0], tp[1], plan.start))
        self.pipeline.take_touched()  # restoring is not a change to snapshot
        return assignment, replays

    def forget(self, tps: list[TP]) -> None:
        for tp in tps:
            self.pipeline.drop_partition(*tp)
            self.partitions.remove(tp)

    # -- abort -------------------------------------------------------------------------------------------

    def rollback(self, consumer: Consumer, dirty: Callable[[TP], bool]) -> dict[str, str]:
        """After an aborted transaction: every partition processed in it (``dirty``) or still replaying
        gets its last snapshot back and is sought to that snapshot's offset, to replay up to the
        committed offset; the others are sought back to their committed offset. Returns the replays.

        Keys changed in the aborted transaction stay owed to the next snapshot: a superset is
        harmless (a rolled-back key is written with its snapshot state again)."""
        self.partitions.note_touched(self.pipeline.take_touched())
        replays: dict[str, str] = {}
        for part in self.partitions:
            part.abandon_round()  # its keys written in the aborted transaction are owed again
            if dirty(part.tp) or part.replay_until is not None:
                self._load_snapshot(part)
                part.position = None
                plan = plan_resume(part.snapshot_offset, part.committed)
                offset = plan.start
                self._start_replay(part, plan.start, plan.replay_until)
                if plan.replay_until is not None:
                    replays[part.label] = f"{plan.start}..{plan.replay_until}"
            else:
                offset = part.committed
            if offset is not None:
                try:
                    consumer.seek(TopicPartition(part.topic, part.partition, offset))
                except KafkaException as exc:
                    self.log.warning("seek failed", partition=part.label, error=str(exc))
        self.pipeline.take_touched()  # restoring is not a change to snapshot
        return replays

    # -- replay ------------------------------------------------------------------------------------------

    def replay(self, messages: list[Message]) -> list[Message]:
        """Replay the records below their partition's ``replay_until`` and return the others.

        A replayed record runs through the Pipeline (rebuilding the state between the last snapshot
        and the committed offset) but its outputs and dead letters are discarded: they were committed
        before the restore or abort. A record below its key's floor is skipped: the key's snapshot,
        written by a round after the marker, holds it already (``partitions.SnapshotRound``).
        Its position advances; it neither opens a transaction nor makes
        the partition dirty (its offset is committed already), and it is not counted as processed.
        Only called while some partition replays, so the normal per-record path stays as it is."""
        replaying = self.partitions.replaying
        process, state_key_of = self.pipeline.process, self.pipeline.state_key_of
        live: list[Message] = []
        count = 0
        for msg in messages:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if msg.error() is not None or topic is None or partition is None or offset is None:
                live.append(msg)
                continue
            tp = (topic, partition)
            part = replaying.get(tp)
            if part is None:  # not replaying (the loop skips partitions no longer assigned)
                live.append(msg)
                continue
            until = part.replay_until
            assert until is not None
            if offset >= until:  # the record at until - 1 may be a transaction marker: never seen
                self._replay_done(part)
                live.append(msg)
                continue
            value, key = msg.value(), msg.key()
            floor = -1
            if part.floors:  # keys written after the marker by a snapshot round
                state_key = state_key_of(value, topic=topic, key=key)
                floor = part.floors.get(state_key, -1) if state_key is not None else -1
            if offset >= floor:
                process(value, topic=topic, partition=partition, offset=offset,
                        timestamp_ms=msg.timestamp()[1], key=key)
            part.position = offset + 1
            part.unsnapshotted = True
            count += 1
            if offset + 1 >= until:
                self._replay_done(part)
        if count:
            self.telemetry.replayed(count)
        return live

    def _replay_done(self, part: PartitionState) -> None:
        until = part.replay_until
        self.partitions.set_replay(part, None)
        self.telemetry.replay_finished(part.tp)
        self.log.info("state replay finished", partition=part.label, until=until)
