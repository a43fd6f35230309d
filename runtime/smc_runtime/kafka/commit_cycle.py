"""How each transaction of the loop ends: the open one (``txn``), the one in flight on the committer
thread (``committer.py``), and the three ways out: commit, overlapped commit, abort.

Overlapped (exactly-once with ``commit_overlap``): a due transaction is prepared on the loop's
thread (snapshots, offsets), its broker calls go to the committer thread, and the loop processes the
next records into a *staged* transaction whose outputs wait (``Transaction.stage``). ``settle`` then
applies the outcome: committed -> the partitions advance to the offsets captured at prepare time and
the staged transaction opens (begin, produce what waited); failed -> the failed transaction and the
staged one are aborted and rolled back together. Everything that needs a settled transaction (the
next commit, an abort, a rebalance callback, shutdown, an open breaker) settles first, so at most one
commit is ever in flight and the producer never sees produce() during a commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Producer

from smc_runtime.kafka.committer import Committer
from smc_runtime.kafka.errors import AbortableKafkaError
from smc_runtime.kafka.output_health import OutputHealth
from smc_runtime.kafka.partitions import Partitions
from smc_runtime.kafka.recovery import Recovery
from smc_runtime.kafka.startup import BrokerWaits
from smc_runtime.kafka.telemetry import Telemetry
from smc_runtime.kafka.transaction import CommitContext, Transaction
from smc_runtime.logs import StructLogger


@dataclass(eq=False)
class CommitCycle:
    ctx: CommitContext
    overlap: bool  # exactly-once with ``commit_overlap``
    partitions: Partitions
    recovery: Recovery
    output_health: OutputHealth
    waits: BrokerWaits
    telemetry: Telemetry
    log: StructLogger
    clients: Callable[[], tuple[Consumer, Producer]]
    committer: Committer
    txn: Transaction | None = field(default=None, init=False)

    @property
    def in_flight(self) -> bool:
        return self.committer.inflight is not None

    def has_uncommitted(self, *, including_snapshots: bool) -> bool:
        """Records processed since the last commit (or a commit in flight); with
        ``including_snapshots`` also state changed since the last snapshot (a commit then only
        writes snapshots)."""
        if self.committer.inflight is not None or (self.txn is not None and self.txn.dirty):
            return True
        return including_snapshots and any(p.unsnapshotted for p in self.partitions.by_tp.values())

    def commit(self, *, snapshot: bool = False) -> None:
        """Commit the open transaction (``Transaction.commit``), after settling one in flight; an
        abortable failure aborts it. ``snapshot`` (shutdown, revocation) also snapshots every
        changed partition, opening a transaction for that alone if none is open."""
        if self.committer.inflight is not None and not self.settle():
            return
        if not self.has_uncommitted(including_snapshots=snapshot):
            return
        try:
            if self.txn is None:
                self.txn = Transaction.begin(self.ctx)
            self.txn.commit(snapshot=snapshot)
        except AbortableKafkaError as exc:
            self.abort_after_failure(str(exc))
            return
        written = self.txn.written
        self.txn = None
        self.output_health.committed(written)

    def commit_due(self) -> None:
        """The interval or the batch size is up: commit; overlapped, the broker calls go to the
        committer thread and the loop goes on (after settling the commit before this one)."""
        if not self.overlap:
            self.commit()
            return
        if self.committer.inflight is not None and not self.settle():
            return
        txn = self.txn
        if txn is None or not txn.dirty:
            return
        try:
            prepared = txn.prepare()
        except AbortableKafkaError as exc:
            self.abort_after_failure(str(exc))
            return
        self.committer.start(txn, prepared)
        self.txn = None

    def settle(self) -> bool:
        """Wait for the commit in flight and apply its outcome (module docstring); False if it ended
        in an abort. A fatal error (or retries exhausted) is raised, as a commit on the loop's thread
        raises it."""
        settled, error = self.committer.take()
        if error is not None:
            if not isinstance(error, AbortableKafkaError):
                raise error
            self.abort_after_failure(str(error), failed=settled.txn)
            return False
        settled.txn.finish(settled.prepared)
        self.output_health.committed(settled.txn.written)
        if self.txn is not None:
            try:
                self.txn.open()
            except AbortableKafkaError as exc:
                self.abort_after_failure(str(exc))
                return False
        return True

    def abort_after_failure(self, reason: str, failed: Transaction | None = None) -> None:
        self.abort(reason, failed)
        self.output_health.failed()

    def abort(self, reason: str, failed: Transaction | None = None) -> None:
        """Abort the open transaction, roll state back to the last snapshot, rewind and replay.

        1. ``abort_transaction`` (exactly-once only): none of its records become visible.
        2. Every partition processed since the last commit (or still replaying) gets its state
           replaced by its last snapshot and is sought back to that snapshot's offset S_p; the
           records of [S_p, committed offset) are replayed with outputs suppressed
           (``Recovery.rollback``). The other assigned partitions are sought back to their
           committed offset.

        ``failed``: a commit in flight that failed. It is the producer's open transaction and is
        aborted with the staged one (never begun); both roll back. Any other commit in flight is
        settled first."""
        if failed is None and self.committer.inflight is not None and not self.settle():
            return  # it failed: everything is aborted already
        consumer, producer = self.clients()
        txn = self.txn
        dirty = dict(failed.dirty) if failed is not None else {}
        if txn is not None:
            dirty.update(txn.dirty)
        self.log.warning("aborting transaction", reason=reason, partitions=len(dirty))
        if self.ctx.eos and (failed is not None or (txn is not None and txn.opened)):
            # A fenced/fatal producer goes straight to abort (and exit 3), without the flush.
            self.waits.abort_transaction(producer, flush_first=self.waits.async_error is None)
        replays = self.recovery.rollback(consumer, dirty.__contains__)
        self.txn = None
        self.ctx.closed_at = time.monotonic()
        if replays:
            self.log.info("replaying state after abort", replay=replays)
        self.telemetry.aborted(reason)
