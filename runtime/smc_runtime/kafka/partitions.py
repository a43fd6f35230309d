"""The bookkeeping of the assigned source partitions: one ``PartitionState`` per partition.

Offsets of one partition, in the order they can be: snapshot offset S <= committed offset C <=
position P. The state is known at S (its last snapshot, kept here for rollbacks and written to the
changelog), the outputs are committed up to C, the Pipeline has processed up to P. ``replay_until``
is set while the records of [S, C) are run through the Pipeline again after a restore or an abort
(outputs suppressed, see ``recovery.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

TP = tuple[str, int]
StateId = tuple[str, int, str]


MIN_ROUND_KEYS_PER_COMMIT = 16  # a snapshot round writes at least this many keys per commit


@dataclass(eq=False, slots=True)
class SnapshotRound:
    """One snapshot of a partition spread over consecutive commits: the keys touched before
    ``start`` (sorted), ``per_commit`` of them per commit, each with its state when written; the
    marker ``start`` follows the last one. A key written after ``start`` reflects more than the
    marker (its floor, ``PartitionState.floors``); replay skips what it already holds."""

    start: int            # the offset the round's marker reflects: the position when it began
    keys: list[str]       # touched before ``start``, in writing order
    per_commit: int
    next: int = 0         # index of the next key to write

    @classmethod
    def begin(cls, start: int, touched: set[str], commit_interval_ms: int | None,
              snapshot_interval_ms: int) -> SnapshotRound:
        """All keys in one commit without a commit interval; else enough per commit to finish within
        half a snapshot interval (at least ``MIN_ROUND_KEYS_PER_COMMIT``)."""
        keys = sorted(touched)
        if commit_interval_ms is None or snapshot_interval_ms <= 0:
            per_commit = max(1, len(keys))
        else:
            share = math.ceil(len(keys) * commit_interval_ms / (snapshot_interval_ms / 2))
            per_commit = max(MIN_ROUND_KEYS_PER_COMMIT, share)
        return cls(start, keys, per_commit)

    def take(self) -> list[str]:
        """The keys the next commit writes."""
        end = min(len(self.keys), self.next + self.per_commit)
        chunk = self.keys[self.next:end]
        self.next = end
        return chunk

    @property
    def done(self) -> bool:
        return self.next >= len(self.keys)


@dataclass(eq=False, slots=True)
class PartitionState:
    """One assigned source partition (see the module docstring for the offsets); slots because the
    hot loop writes ``position`` once per record."""

    topic: str
    partition: int
    position: int | None = None          # next offset to consume (processed so far)
    committed: int | None = None         # rewind point: the offset after the last commit
    snapshot: dict[str, bytes] = field(default_factory=dict)  # state at the last snapshot, by key
    snapshot_offset: int | None = None   # the offset ``snapshot`` reflects (rollback point)
    # Keys of ``snapshot`` written after ``snapshot_offset`` by a round (``SnapshotRound``), with the
    # offset each reflects: replay from ``snapshot_offset`` skips their records below it.
    floors: dict[str, int] = field(default_factory=dict)
    round: SnapshotRound | None = None   # a snapshot in progress over several commits
    persisted: bool = False              # a snapshot of it is in the changelog
    unsnapshotted: bool = False          # its state changed since the last snapshot
    touched: set[str] = field(default_factory=set)  # state keys changed since the last snapshot
    replay_until: int | None = None      # records below: replayed, outputs suppressed
    snapshot_due_at: float = 0.0         # monotonic time its next snapshot is due

    @property
    def tp(self) -> TP:
        return (self.topic, self.partition)

    @property
    def label(self) -> str:
        return f"{self.topic}[{self.partition}]"

    def first_record(self, offset: int) -> None:
        """The first record since assignment or rollback: without a commit or snapshot yet, the
        partition rewinds to it and its state (empty) reflects the offset before it."""
        if self.committed is None:
            self.committed = offset
        if self.snapshot_offset is None:
            self.snapshot_offset = offset

    def reflects(self) -> int:
        """The offset the state reflects: the position, or, with no record processed since a
        rollback, the snapshot it was rolled back to (-1: nothing consumed yet)."""
        if self.position is not None:
            return self.position
        return self.snapshot_offset if self.snapshot_offset is not None else -1

    def snapshotted(self, written: dict[str, bytes | None], reflects: int, marker: int | None,
                    next_due: float) -> None:
        """Keys of the ``round`` were committed: ``written`` (None: deleted), each reflecting
        ``reflects`` or its floor if that is higher (a key ahead of a replaying partition); if that
        ended the round, its ``marker`` too (the offset the whole state reflects; None: nothing
        consumed yet, no marker).

        A round's marker is its start, below the position: the records processed since are owed to
        the next snapshot (``unsnapshotted`` stays set)."""
        floors = self.floors
        for key, data in written.items():
            if data is None:
                self.snapshot.pop(key, None)
            else:
                self.snapshot[key] = data
            if floors.get(key, -1) < reflects:
                floors[key] = reflects
        if self.round is None or not self.round.done:
            return
        self.round = None
        self.snapshot_due_at = next_due
        if marker is None:
            self.unsnapshotted = False
            return
        self.snapshot_offset = marker
        self.persisted = True
        for key in [k for k, floor in floors.items() if floor <= marker]:
            del floors[key]
        self.unsnapshotted = reflects > marker

    def abandon_round(self) -> None:
        """An abort dropped the round's uncommitted part: its keys are owed to the next snapshot
        again (a superset is harmless: a key is written with its current state)."""
        if self.round is not None:
            self.touched.update(self.round.keys)
            self.round = None
            self.unsnapshotted = True


class Partitions:
    """The assigned partitions by ``(topic, partition)``, and those replaying."""

    def __init__(self) -> None:
        self.by_tp: dict[TP, PartitionState] = {}
        self.replaying: dict[TP, PartitionState] = {}  # non-empty: the loop takes the replay path

    def __contains__(self, tp: object) -> bool:
        return tp in self.by_tp

    def __len__(self) -> int:
        return len(self.by_tp)

    def __iter__(self) -> Iterator[PartitionState]:
        """In (topic, partition) order: seeks and changelog records are issued deterministically."""
        return iter([self.by_tp[tp] for tp in sorted(self.by_tp)])

    def get(self, tp: TP) -> PartitionState | None:
        return self.by_tp.get(tp)

    def add(self, tp: TP) -> PartitionState:
        """A fresh state for a partition (re)assigned; touched keys still owed are kept."""
        old = self.by_tp.get(tp)
        part = PartitionState(tp[0], tp[1])
        if old is not None:
            old.abandon_round()
            part.touched = old.touched
            part.persisted = old.persisted
            part.unsnapshotted = old.unsnapshotted
        self.by_tp[tp] = part
        return part

    def remove(self, tp: TP) -> PartitionState | None:
        self.replaying.pop(tp, None)
        return self.by_tp.pop(tp, None)

    def note_touched(self, ids: Iterable[StateId]) -> None:
        """Keys the Pipeline changed: each owes its partition's next snapshot (keys of partitions
        no longer assigned are dropped with them)."""
        by_tp = self.by_tp
        for topic, partition, key in ids:
            part = by_tp.get((topic, partition))
            if part is not None:
                part.touched.add(key)

    def set_replay(self, part: PartitionState, until: int | None) -> None:
        part.replay_until = until
        if until is None:
            self.replaying.pop(part.tp, None)
        else:
            self.replaying[part.tp] = part
