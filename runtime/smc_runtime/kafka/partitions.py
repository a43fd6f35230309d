"""The bookkeeping of the assigned source partitions: one ``PartitionState`` per partition.

Offsets of one partition, in the order they can be: snapshot offset S <= committed offset C <=
position P. The state is known at S (its last snapshot, kept here for rollbacks and written to the
changelog), the outputs are committed up to C, the Pipeline has processed up to P. ``replay_until``
is set while the records of [S, C) are run through the Pipeline again after a restore or an abort
(outputs suppressed, see ``recovery.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

TP = tuple[str, int]
StateId = tuple[str, int, str]


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

    def snapshotted(self, written: dict[str, bytes | None], offset: int | None, next_due: float) -> None:
        """A snapshot of the ``written`` keys (None: deleted) was committed, reflecting ``offset``."""
        for key, data in written.items():
            if data is None:
                self.snapshot.pop(key, None)
            else:
                self.snapshot[key] = data
        if offset is not None:
            self.snapshot_offset = offset
            self.persisted = True
        self.touched.clear()
        self.unsnapshotted = False
        self.snapshot_due_at = next_due


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
