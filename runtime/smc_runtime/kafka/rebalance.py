"""The consumer's rebalance callbacks. They run inside ``consume()``; librdkafka mangles exceptions
that cross its callback boundary, so each handler's first exception is kept and re-raised by the
loop (``RebalanceHandler.error``).

* assigned: settle the open transaction, restore the partitions' state from the changelog, then
  resume them from the group's committed offsets (``recovery.py``);
* revoked: commit the open transaction (with a snapshot), then forget the partitions;
* lost: abort the open transaction (another member owns them now), then forget them.

A member that does not come back to its group after losing its partitions (or after subscribing) is
subscribed again, then restarted (``membership.py``, checked by the loop through ``check_membership``).

Ordering on assignment: the consumer reads committed offsets with ``isolation.level=read_committed``,
so the broker holds back (UNSTABLE_OFFSET_COMMIT, retried by librdkafka until the call times out)
the offsets of any partition a still-open transaction has offsets for. No transaction of ours may be
open while we wait for them: ``settle_before_offsets`` says what to do first, and an assignment that
follows a failed callback (a transaction that could not be finished) does not wait at all: the
loop raises that failure, and the restart's ``init_transactions`` aborts the transaction. A read that
still times out may wait on offsets a finished transaction of ours left unmarked: once the read has
waited longer than any transaction can stay open (SWEEP_AFTER_S), and while this process holds no
other partition, a timeout runs ``resolve_pending`` (``pending_offsets.py``: an abort over every
partition our transactions write to) until one has succeeded, then the read is retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, TopicPartition

from smc_runtime.client_settings import TRANSACTION_TIMEOUT_MS
from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka.errors import FatalKafkaError, call_with_retry
from smc_runtime.kafka.membership import DEFAULT_DEADLINE_S, GroupMembership, Rejoin, rejoin_deadline_s
from smc_runtime.kafka.partitions import TP
from smc_runtime.kafka.pending_offsets import sweep_due
from smc_runtime.kafka.recovery import Recovery
from smc_runtime.kafka.telemetry import Telemetry
from smc_runtime.logs import StructLogger

KAFKA_CALL_TIMEOUT_S = 10.0
# Reading the group's offsets may wait on a dead instance's open transaction (another transactional.id,
# e.g. after a scale-down) until the broker aborts it: transaction.timeout.ms plus the broker's check
# interval (transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s by default). Offsets
# still held after that belong to a transaction nobody will mark: the sweep's turn (``sweep_due``).
SWEEP_AFTER_S = TRANSACTION_TIMEOUT_MS / 1000 + 15.0
# ... and the read goes on for sweeps (a flush and an abort, KAFKA_CALL_TIMEOUT_S each) and reads.
RETRY_DEADLINE_S = SWEEP_AFTER_S + 45.0


class Settle(Enum):
    """What to do with our own transaction before reading the group's committed offsets."""

    NOTHING = "nothing"  # no open transaction: nothing of ours holds the offsets
    COMMIT = "commit"    # records processed in an open transaction: commit them first (like a revoke)
    SKIP = "skip"        # a callback failed or the loop did: do not wait, the loop raises the failure


def settle_before_offsets(*, open_transaction: bool, failed: bool) -> Settle:
    """The order on assignment (see the module docstring): never wait for offsets while a transaction
    of our own may hold them; a failed loop (or callback) waits for nothing."""
    if failed:
        return Settle.SKIP
    return Settle.COMMIT if open_transaction else Settle.NOTHING


class LoopControl(Protocol):
    """What the handlers ask of the loop that owns the transaction."""

    @property
    def failed(self) -> bool: ...
    @property
    def paused(self) -> bool: ...
    def has_uncommitted(self, *, including_snapshots: bool) -> bool: ...
    def commit(self, *, snapshot: bool = False) -> None: ...
    def abort(self, reason: str) -> None: ...


@dataclass(eq=False)  # compared by identity, like any handler object
class RebalanceHandler:
    """``on_assign``/``on_revoke``/``on_lost`` for ``Consumer.subscribe``."""

    loop: LoopControl
    recovery: Recovery
    telemetry: Telemetry
    log: StructLogger
    restore_consumer: Consumer
    changelog_topic: str
    changelog_partitions: int
    log_retry: Callable[[str], Callable[[KafkaError], None]]
    # Called when the committed-offsets read times out and ``sweep_due`` (exactly-once:
    # ``PendingOffsetsSweep``); True once it succeeded.
    resolve_pending: Callable[[], bool] | None = None
    # Its deadline follows the consumer's settings once ``subscribe`` runs.
    membership: GroupMembership = field(default_factory=lambda: GroupMembership(DEFAULT_DEADLINE_S))
    error: BaseException | None = field(default=None, init=False)

    def _guarded(self, handler: Callable[[Consumer, list[TopicPartition]], None], consumer: Consumer,
                 partitions: list[TopicPartition]) -> None:
        try:
            handler(consumer, partitions)
        except BaseException as exc:
            self.log.exception("rebalance callback failed", error=str(exc))
            if self.error is None:
                self.error = exc

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.membership.joined()  # a rebalance completed, whatever it assigns
        self._guarded(self._assign, consumer, partitions)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._guarded(self._revoke, consumer, partitions)

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.membership.left(time.monotonic())
        self._guarded(self._lose, consumer, partitions)

    def subscribe(self, consumer: Consumer, topics: list[str], conf: Mapping[str, Any]) -> None:
        """Join the group with these callbacks; how long a rejoin may take follows the consumer's
        ``max.poll.interval.ms`` and ``session.timeout.ms``."""
        self.membership.deadline_s = rejoin_deadline_s(int(conf.get("max.poll.interval.ms", 300_000)),
                                                       int(conf.get("session.timeout.ms", 45_000)))
        self.membership.left(time.monotonic())
        self._join(consumer, topics)

    def _join(self, consumer: Consumer, topics: list[str]) -> None:
        consumer.subscribe(topics, on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost)

    def check_membership(self, consumer: Consumer, topics: list[str], now: float) -> None:
        """Out of the group past the deadline once the broker answers (``membership.py``): subscribe
        again, and the next time raise ``FatalKafkaError`` (a restart with fresh clients)."""
        status = self.telemetry.status
        broker_down, broker_down_at = status.broker_outage()
        waited = round(self.membership.waited(now, broker_down, broker_down_at), 1)
        status.rejoining(None if self.membership.waiting_since is None else waited)
        verdict = self.membership.verdict(now, broker_down, broker_down_at)
        if verdict is Rejoin.WAIT:
            return
        if verdict is Rejoin.RESTART:
            self.log.error("consumer still not back in its group after subscribing again: exiting for a "
                           "restart with fresh clients", waited_s=waited)
            raise FatalKafkaError(f"consumer not back in its group {waited:.0f}s after the broker answered, "
                                  "also after subscribing again")
        self.log.warning("consumer not back in its group since the broker answered: subscribing again",
                         waited_s=waited, deadline_s=self.membership.deadline_s)
        self.membership.resubscribing(now)
        consumer.unsubscribe()
        self._join(consumer, topics)

    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        self.telemetry.rebalance("assign")
        if not tps:
            return
        settle = settle_before_offsets(open_transaction=self.loop.has_uncommitted(including_snapshots=False),
                                       failed=self.loop.failed or self.error is not None)
        if settle is Settle.SKIP:
            self.log.warning("assignment not restored: an earlier failure ends the loop first",
                             partitions=sorted(f"{t}[{p}]" for t, p in tps))
            return
        if settle is Settle.COMMIT:
            self.loop.commit()
        self.telemetry.restoring(tps)
        started = time.monotonic()
        status = self.telemetry.status
        restored = cl.read_changelog(self.restore_consumer, self.changelog_topic, self.changelog_partitions,
                                     tps, on_progress=lambda: status.beat(time.monotonic()))
        committed = self._group_offsets(consumer, tps)
        assignment, replays = self.recovery.restore(tps, restored, committed)
        consumer.incremental_assign(assignment)
        if self.loop.paused:
            consumer.pause(partitions)
        else:
            # librdkafka keeps a partition's pause flag across losing and regaining it: paused while
            # the breaker was open, lost during an outage and assigned again after the breaker
            # resumed (an empty assignment then), it would stay paused for good.
            consumer.resume(partitions)
        self.telemetry.assigned(tps, len(restored.snapshots), len(self.recovery.partitions))
        self.log.info("partitions assigned", partitions=sorted(f"{t}[{p}]" for t, p in tps),
                      restored_keys=len(restored.snapshots), changelog_records=restored.records_read,
                      restore_seconds=round(time.monotonic() - started, 3), replay=replays or None)

    def _group_offsets(self, consumer: Consumer, tps: list[TP]) -> dict[TP, int]:
        """The group's committed offsets of ``tps`` (partitions without one are left out). A read:
        timeouts (a coordinator loading, offsets of a transaction still being resolved) are asked
        again until RETRY_DEADLINE_S; offsets still held after SWEEP_AFTER_S are swept when that is
        safe (``sweep_due``), else the deadline ends the loop and the restarted process sweeps."""
        request = [TopicPartition(t, p) for t, p in tps]
        log_retry = self.log_retry("committed")
        resolve = self.resolve_pending
        started = time.monotonic()
        assigning = set(tps)
        held = [part.tp for part in self.recovery.partitions if part.tp not in assigning]  # kept ones
        swept = resolve is None
        held_logged = False

        def on_retry(error: KafkaError) -> None:
            nonlocal swept, held_logged
            log_retry(error)
            timed_out = error.code() == KafkaError._TIMED_OUT
            due = sweep_due(timed_out=timed_out, swept=swept, holds_other_partitions=bool(held),
                            waited_s=time.monotonic() - started, after_s=SWEEP_AFTER_S)
            if resolve is not None and due:
                swept = resolve()  # offsets a transaction of ours left unmarked: pending_offsets.py
            elif timed_out and not swept and held and not held_logged:
                held_logged = True
                self.log.warning("group offsets held back and partitions held: not sweeping (its abort could "
                                 "contradict their state); the read retries until its deadline",
                                 held=len(held), deadline_s=RETRY_DEADLINE_S)

        result: list[TopicPartition] = call_with_retry(
            lambda: consumer.committed(request, timeout=KAFKA_CALL_TIMEOUT_S), "committed",
            RETRY_DEADLINE_S, on_retry, read_only=True)
        return {(tp.topic, tp.partition): tp.offset for tp in result if tp.offset >= 0}

    def _revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.telemetry.rebalance("revoke")
        if self.loop.has_uncommitted(including_snapshots=True) and not self.loop.failed:
            self.loop.commit(snapshot=True)
        self._forget([(tp.topic, tp.partition) for tp in partitions], "revoked")

    def _lose(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.telemetry.rebalance("lost")
        if self.loop.has_uncommitted(including_snapshots=False) and not self.loop.failed:
            self.loop.abort("partitions lost")
        self._forget([(tp.topic, tp.partition) for tp in partitions], "lost")

    def _forget(self, tps: list[TP], why: str) -> None:
        self.recovery.forget(tps)
        self.telemetry.forgotten(tps, len(self.recovery.partitions))
        self.log.info(f"partitions {why}", partitions=sorted(f"{t}[{p}]" for t, p in tps))
