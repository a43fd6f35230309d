"""Resume planning (not to be confused with ``replay_command``, which runs a file through a Pipeline):
the pure decisions of snapshotting less often than committing: when a commit snapshots, and where a
partition resumes (and up to where it replays) after a restore or an abort.

The state of a source partition is snapshotted at offset S (its last snapshot), its outputs and
offsets are committed up to C >= S. Rebuilding the state at C = restore the snapshot, then run the
records of [S, C) through the Pipeline again with their outputs discarded (they were committed
already): the Pipeline is deterministic per source partition, so this is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING

from smc_runtime.kafka.partitions import PartitionState


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


def snapshot_due(part: PartitionState, now_s: float, interval_ms: int, forced: bool) -> bool:
    """Whether a commit snapshots a changed partition: always with an interval of 0, else once its
    due time passed, or when ``forced`` (shutdown, revocation, a partition with no snapshot yet).
    A partition without a due time (0.0) is due."""
    return interval_ms == 0 or forced or now_s >= part.snapshot_due_at


def next_snapshot_due(due_at: float, now_s: float, interval_ms: int) -> float:
    """When a partition snapshotted at ``now_s`` snapshots next. A snapshot taken before its due time
    (the first one of a fresh partition, forced so that no offset is committed without a snapshot)
    keeps the partition's place in the interval (``snapshot_phase``); a due one re-arms from now."""
    return due_at if due_at > now_s else now_s + interval_ms / 1000


def snapshot_budget(assigned: int, commit_interval_ms: int, snapshot_interval_ms: int) -> int:
    """How many partitions one commit snapshots because their interval is up: as many as keep up
    with the interval on average (``assigned`` x commit interval / snapshot interval), at least one.
    Partitions that come due together (idle ones woken at once) then spread over consecutive commits
    instead of making one large transaction, the latency spike ``snapshot_phase`` avoids."""
    if snapshot_interval_ms <= 0:
        return assigned
    return max(1, math.ceil(assigned * commit_interval_ms / snapshot_interval_ms))
