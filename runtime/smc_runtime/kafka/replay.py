"""Pure decisions of snapshotting less often than committing: when a commit snapshots, and where a
partition resumes (and up to where it replays) after a restore or an abort.

The state of a source partition is snapshotted at offset S (its last snapshot), its outputs and
offsets are committed up to C >= S. Rebuilding the state at C = restore the snapshot, then run the
records of [S, C) through the Pipeline again with their outputs discarded (they were committed
already): the Pipeline is deterministic per source partition, so this is exact.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING

from smc_runtime.kafka.changelog import SourcePartition


@dataclass(frozen=True)
class ResumePlan:
    """Where a partition resumes once its state is the snapshot state.

    ``start``: the offset to consume from (None: leave it to the group's committed offset or
    ``auto.offset.reset``); ``replay_until``: records below it are replayed with outputs suppressed
    (None: no replay); ``state_offset``: the offset the state reflects, the rollback point of a later
    abort (None: the first record consumed; ``OFFSET_BEGINNING``: the start of the partition).
    """

    start: int | None
    replay_until: int | None
    state_offset: int | None


def plan_resume(snapshot_offset: int | None, committed: int | None) -> ResumePlan:
    """Resume point of a partition whose state was just set to its snapshot (restore or abort).

    * snapshot S and committed C > S: seek to S, replay [S, C).
    * snapshot S, C <= S: start at C (C == S is the usual case; C < S only after offsets were reset
      by hand, where the runtime always started at C with the restored state).
    * no snapshot, C > 0: the state never reached the changelog: replay from the beginning up to C.
    * snapshot S, nothing committed (offsets expired): the state is at S, resume at S.
    * nothing at all: empty state, the group's offset / ``auto.offset.reset`` decide (as before).
    """
    if committed is None or committed < 0:
        return ResumePlan(snapshot_offset, None, snapshot_offset)
    if snapshot_offset is None:
        if committed > 0:
            return ResumePlan(OFFSET_BEGINNING, committed, OFFSET_BEGINNING)
        return ResumePlan(committed, None, None)
    if committed > snapshot_offset:
        return ResumePlan(snapshot_offset, committed, snapshot_offset)
    return ResumePlan(committed, None, committed)


def snapshot_phase(index: int, count: int) -> float:
    """Where in the interval the ``index``-th of ``count`` partitions assigned together snapshots, as a
    fraction: evenly spread.

    Partitions snapshot on their own schedules so each commit carries a slice of the state instead of
    every key at once once per interval: one large transaction per interval is a latency spike."""
    return (index + 0.5) / count if count > 0 else 0.0


def partitions_due(now_s: float, due_at: Mapping[SourcePartition, float],
                   changed: Iterable[SourcePartition], interval_ms: int, *,
                   forced: Container[SourcePartition] = ()) -> set[SourcePartition]:
    """The changed partitions this commit snapshots: all with an interval of 0, else those whose
    due time passed, plus ``forced`` ones (shutdown, revocation, a partition with no snapshot yet).
    A partition without a due time is due."""
    if interval_ms == 0:
        return set(changed)
    return {tp for tp in changed if tp in forced or now_s >= due_at.get(tp, 0.0)}
