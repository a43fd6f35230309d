"""The order of the assignment callback: our own open transaction is settled before the group's
committed offsets are read (a read_committed OffsetFetch waits on any transaction holding offsets
of the group), a failed callback or loop makes the assignment wait for nothing, and the committed()
read is retried on timeouts instead of ending the process."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from smc_runtime.config import KafkaSettings, ProcessorSettings
from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka import rebalance
from smc_runtime.kafka.errors import AbortableKafkaError, FatalKafkaError
from smc_runtime.kafka.pending_offsets import (
    java_string_hash,
    offsets_partition,
    sweep_group,
)
from smc_runtime.kafka.processor import ProcessorRunner
from smc_runtime.kafka.rebalance import Settle, settle_before_offsets
from smc_runtime.service.metrics import RuntimeMetrics
from smc_runtime.service.status import ProcessorStatus
from tests.unit.runtime.test_resume import FakeMessage, FakePipeline, FakeProducer


@pytest.mark.parametrize(("open_transaction", "failed", "expected"), [
    (False, False, Settle.NOTHING),
    (True, False, Settle.COMMIT),
    (True, True, Settle.SKIP),
    (False, True, Settle.SKIP),
])
def test_settle_before_offsets(open_transaction: bool, failed: bool, expected: Settle) -> None:
    assert settle_before_offsets(open_transaction=open_transaction, failed=failed) is expected


class Events:
    """One timeline of what the fake clients were asked, across producer and consumer."""

    def __init__(self) -> None:
        self.seen: list[str] = []


class OrderedProducer(FakeProducer):
    def __init__(self, events: Events) -> None:
        super().__init__()
        self.events = events

    def commit_transaction(self, *args: Any) -> None:
        self.events.seen.append("commit_transaction")
        super().commit_transaction(*args)

    def abort_transaction(self, *args: Any) -> None:
        self.events.seen.append("abort_transaction")
        super().abort_transaction(*args)


class GroupConsumer:
    """committed() answers from ``offsets``, after ``timeouts`` plain _TIMED_OUT errors (what
    librdkafka returns when UNSTABLE_OFFSET_COMMIT outlasts the call's timeout)."""

    def __init__(self, events: Events, offsets: dict[tuple[str, int], int], timeouts: int = 0) -> None:
        self.events = events
        self.offsets = offsets
        self.timeouts = timeouts
        self.assigned: list[TopicPartition] = []

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.events.seen.append("committed")
        if self.timeouts:
            self.timeouts -= 1
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return [TopicPartition(tp.topic, tp.partition, self.offsets.get((tp.topic, tp.partition), -1001))
                for tp in partitions]

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.events.seen.append("incremental_assign")
        self.assigned.extend(partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        pass

    def pause(self, partitions: list[TopicPartition]) -> None:
        pass

    def seek(self, tp: TopicPartition) -> None:
        pass

    def consumer_group_metadata(self) -> None:
        return None


@pytest.fixture(autouse=True)
def empty_changelog(monkeypatch: pytest.MonkeyPatch) -> None:
    def read(*_: Any, **__: Any) -> cl.RestoredState:
        return cl.RestoredState({}, 0, {})
    monkeypatch.setattr(cl, "read_changelog", read)


def _runner(consumer: GroupConsumer, producer: FakeProducer) -> ProcessorRunner:
    settings = ProcessorSettings(consumer_group="g", input_topics=["in"], commit_interval_ms=100,
                                 snapshot_interval_ms=60_000)
    status = ProcessorStatus("p", "g", "exactly_once", ["in"], {}, 100, 10_000)
    runner = ProcessorRunner("p", settings, KafkaSettings(), "t-0", FakePipeline(), status, RuntimeMetrics())
    runner.attach(producer, consumer, consumer)  # type: ignore[arg-type]
    return runner


def test_an_open_transaction_is_committed_before_the_group_offsets_are_read() -> None:
    events = Events()
    consumer, producer = GroupConsumer(events, {("in", 1): 7}), OrderedProducer(events)
    runner = _runner(consumer, producer)
    assert runner._rebalance is not None
    runner._rebalance.on_assign(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]
    runner.process_batch([FakeMessage("in", 0, o, b"{}", b"BTC") for o in range(3)])
    assert runner.txn is not None and runner.txn.dirty
    events.seen.clear()
    runner._rebalance.on_assign(consumer, [TopicPartition("in", 1)])  # type: ignore[arg-type]
    assert runner._rebalance.error is None
    assert events.seen == ["commit_transaction", "committed", "incremental_assign"]
    assert runner.txn is None and producer.offsets[-1][0].offset == 3
    assert consumer.assigned[-1].partition == 1


def test_committed_timeouts_are_retried_within_the_deadline() -> None:
    events = Events()
    consumer = GroupConsumer(events, {("in", 0): 5}, timeouts=2)
    runner = _runner(consumer, OrderedProducer(events))
    assert runner._rebalance is not None
    runner._rebalance.on_assign(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]
    assert runner._rebalance.error is None
    assert events.seen == ["committed", "committed", "committed", "incremental_assign"]
    part = runner.partitions.get(("in", 0))
    # no snapshot yet: the state is rebuilt by replaying up to the offset the retried read returned
    assert part is not None and part.committed == 5 and part.replay_until == 5


def test_committed_still_timing_out_at_the_deadline_fails_the_callback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebalance, "RETRY_DEADLINE_S", 0.0)
    events = Events()
    consumer = GroupConsumer(events, {}, timeouts=1_000)
    runner = _runner(consumer, OrderedProducer(events))
    assert runner._rebalance is not None
    runner._rebalance.on_assign(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]
    assert isinstance(runner._rebalance.error, AbortableKafkaError)
    assert "still failing" in str(runner._rebalance.error)
    assert "incremental_assign" not in events.seen


def test_an_assignment_after_a_failed_callback_does_not_wait_for_offsets() -> None:
    events = Events()
    consumer = GroupConsumer(events, {})
    runner = _runner(consumer, OrderedProducer(events))
    assert runner._rebalance is not None
    runner._rebalance.error = FatalKafkaError("cannot abort the transaction")
    runner._rebalance.on_assign(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]
    assert events.seen == []
    assert runner.partitions.get(("in", 0)) is None


def test_the_first_committed_timeout_runs_the_pending_offsets_sweep_before_asking_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebalance, "SWEEP_AFTER_S", 0.0)  # the wait before a sweep: test_pending_offsets.py
    events = Events()
    consumer = GroupConsumer(events, {("in", 0): 5}, timeouts=2)
    runner = _runner(consumer, OrderedProducer(events))
    assert runner._rebalance is not None
    runner._rebalance.resolve_pending = lambda: events.seen.append("sweep") is None  # succeeds
    runner._rebalance.on_assign(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]
    assert events.seen == ["committed", "sweep", "committed", "committed", "incremental_assign"]


@pytest.mark.parametrize(("text", "expected"), [
    ("hello", 99162322), ("", 0), ("polygenelubricants", -2**31), ("\u00e9\U0001d11e", 1996307)])
def test_java_string_hash(text: str, expected: int) -> None:
    assert java_string_hash(text) == expected


def test_offsets_partition_follows_the_broker() -> None:
    # where the test bed's broker (3 offsets partitions) put these groups' offsets
    assert offsets_partition("rt-group-70308f0f", 3) == 0
    assert offsets_partition("rt-group-89803e43", 3) == 2
    assert offsets_partition("polygenelubricants", 50) == 0  # hashCode == Integer.MIN_VALUE


@pytest.mark.parametrize(("group", "partitions"), [("rt-group-70308f0f", 3), ("orders", 50), ("g", 1)])
def test_the_sweep_group_shares_the_offsets_partition_and_nothing_else(group: str, partitions: int) -> None:
    sweep = sweep_group(group, partitions)
    assert sweep != group and sweep.startswith(group)
    assert offsets_partition(sweep, partitions) == offsets_partition(group, partitions)
