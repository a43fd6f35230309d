"""The committer thread: a transaction's broker calls (``Transaction.send``) run here while the loop
consumes and processes the next records.

A commit at a 20 ms interval spends about 10 ms in broker round trips (``send_offsets_to_transaction``,
``commit_transaction``: AddOffsetsToTxn, TxnOffsetCommit, EndTxn and the flush) with nothing for the
loop's thread to do; the bare client loop pays the same wait. Overlapping it with the next batch
keeps the loop busy. One commit at a time: the loop settles the one in flight (``take``) before it
starts the next, aborts, rebalances, stops, or waits out an open breaker. confluent-kafka releases
the GIL inside those calls, so the thread costs the loop nothing while it waits.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass

from smc_runtime.kafka.transaction import PreparedCommit, Transaction


@dataclass
class CommitInFlight:
    """One transaction prepared on the loop's thread whose ``send`` runs on the committer thread."""

    txn: Transaction
    prepared: PreparedCommit
    future: Future[None]


class Committer:
    """Runs at most one ``Transaction.send`` at a time on its own thread (created on first use)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inflight: CommitInFlight | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self, txn: Transaction, prepared: PreparedCommit) -> None:
        if self.inflight is not None:
            raise RuntimeError("a commit is already in flight: take() it first")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"commit-{self.name}")
        self.inflight = CommitInFlight(txn, prepared, self._pool.submit(txn.send, prepared))

    def done(self) -> bool:
        return self.inflight is not None and self.inflight.future.done()

    def wait(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the commit in flight (the loop's pause while it cannot work)."""
        if self.inflight is not None:
            wait_for([self.inflight.future], timeout=timeout_s)

    def take(self) -> tuple[CommitInFlight, BaseException | None]:
        """Wait for the commit in flight to return and hand it back with the exception its ``send``
        raised (None: committed); there must be one."""
        inflight = self.inflight
        if inflight is None:
            raise RuntimeError("no commit in flight")
        error = inflight.future.exception()  # waits; the send's own deadlines bound it
        self.inflight = None
        return inflight, error

    def close(self) -> None:
        """No new commits; a thread still inside a broker call is left to finish (the process exits)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
