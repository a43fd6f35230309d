"""The pending-offsets sweep (``kafka/pending_offsets.py``): when the assignment runs it, and what
its one transaction does. It must reach every partition a transaction of ours writes to before the
group's offsets partition, and it must end in an abort: a commit there made unmarked offsets count
while their outputs could still be aborted (records lost, docs/runtime.md)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from smc_runtime.client_settings import TRANSACTION_TIMEOUT_MS
from smc_runtime.kafka import rebalance
from smc_runtime.kafka.errors import RetriesExhaustedError
from smc_runtime.kafka.pending_offsets import (
    OFFSETS_TOPIC,
    SWEEP_KEY,
    PendingOffsetsSweep,
    sweep_due,
    sweep_group,
)
from smc_runtime.logs import get_logger
from tests.unit.runtime.test_rebalance_order import (  # noqa: F401 (empty_changelog: autouse fixture)
    Events,
    GroupConsumer,
    OrderedProducer,
    _runner,
    empty_changelog,
)


@pytest.mark.parametrize(("timed_out", "swept", "held", "waited", "expected"), [
    (True, False, False, 75.0, True),    # held back longer than any transaction stays open: sweep
    (True, False, False, 74.9, False),   # earlier: a coordinator loading, an open transaction ending
    (True, True, False, 90.0, False),    # swept already: the rest is another producer's, ask again
    (True, False, True, 90.0, False),    # partitions held: their state may rest on what an abort discards
    (False, False, False, 90.0, False),  # not a timeout (coordinator moving, transport): ask again
])
def test_sweep_due(timed_out: bool, swept: bool, held: bool, waited: float, expected: bool) -> None:
    assert sweep_due(timed_out=timed_out, swept=swept, holds_other_partitions=held, waited_s=waited,
                     after_s=75.0) is expected


def test_the_sweep_waits_out_any_open_transaction() -> None:
    # SWEEP_AFTER_S: transaction.timeout.ms plus the broker's 10 s abort check, with margin; the read
    # itself goes on long enough after it for sweeps and reads
    assert rebalance.SWEEP_AFTER_S >= TRANSACTION_TIMEOUT_MS / 1000 + 10.0
    assert rebalance.RETRY_DEADLINE_S >= rebalance.SWEEP_AFTER_S + 3 * rebalance.KAFKA_CALL_TIMEOUT_S


class SweepProducer:
    """Records the sweep's calls in order; deliveries fail for ``undeliverable`` partitions."""

    def __init__(self, *, undeliverable: tuple[tuple[str, int], ...] = (),
                 offsets_fail: bool = False) -> None:
        self.calls: list[str] = []
        self.produced: list[tuple[str, int, bytes | None, bytes | None]] = []
        self.offsets: list[list[TopicPartition]] = []
        self.undeliverable = undeliverable
        self.offsets_fail = offsets_fail
        self._reports: list[Any] = []

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, topic: str, *, key: bytes | None, value: bytes | None, partition: int,
                on_delivery: Any, **_: Any) -> None:
        self.calls.append("produce")
        self.produced.append((topic, partition, key, value))
        if (topic, partition) in self.undeliverable:
            msg = SimpleNamespace(topic=lambda: topic, partition=lambda: partition)
            self._reports.append(lambda: on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), msg))

    def flush(self, *_: Any) -> int:
        self.calls.append("flush")
        for report in self._reports:
            report()
        return 0

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], *_: Any) -> None:
        self.calls.append("send_offsets")
        self.offsets.append(offsets)
        if self.offsets_fail:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no coordinator"))

    def commit_transaction(self, *_: Any) -> None:
        self.calls.append("commit")


def _admin(counts: dict[str, int]) -> Any:
    def list_topics(name: str, **_: Any) -> Any:
        if name not in counts:
            return SimpleNamespace(topics={})
        topic = SimpleNamespace(error=None, partitions=dict.fromkeys(range(counts[name])))
        return SimpleNamespace(topics={name: topic})
    return SimpleNamespace(list_topics=list_topics)


TOPICS = {OFFSETS_TOPIC: 3, "g.changelog": 2, "out.a": 3, "out.b": 1}


def _sweep(producer: SweepProducer, admin: Any) -> PendingOffsetsSweep:
    def abort(p: Any) -> None:
        p.calls.append("abort")
    return PendingOffsetsSweep(producer, lambda: admin, {"bootstrap.servers": "127.0.0.1:9"},  # type: ignore[arg-type]
                               "g", "g.changelog", ("out.a", "out.b"), abort, get_logger("test"))


def test_the_sweep_aborts_one_transaction_over_every_partition_then_the_offsets_partition() -> None:
    producer = SweepProducer()
    assert _sweep(producer, _admin(TOPICS))() is True
    # every partition of the changelog and of each output, one record each, all delivered, then
    # the offsets partition (send_offsets), then an abort: never a commit
    assert producer.calls == ["begin", *["produce"] * 6, "flush", "send_offsets", "abort"]
    assert sorted((t, p) for t, p, _, _ in producer.produced) == [
        ("g.changelog", 0), ("g.changelog", 1), ("out.a", 0), ("out.a", 1), ("out.a", 2), ("out.b", 0)]
    assert all(key == SWEEP_KEY and value is None for _, _, key, value in producer.produced)
    # the sweep group's own offset: the group's offsets partition joins, no offset of ours changes
    assert [(tp.topic, tp.partition, tp.offset) for tp in producer.offsets[0]] == [("g.changelog", 0, 0)]
    assert sweep_group("g", 3) != "g"


def test_an_undelivered_sweep_record_keeps_the_offsets_partition_out_of_the_abort() -> None:
    # an abort reaching the offsets but not that output would discard the offsets of outputs that
    # stay unmarked there: their input processed again, the outputs duplicated
    producer = SweepProducer(undeliverable=(("out.a", 1),))
    assert _sweep(producer, _admin(TOPICS))() is False
    assert "send_offsets" not in producer.calls and producer.calls[-1] == "abort"
    assert "commit" not in producer.calls


def test_a_failed_offsets_step_is_aborted_and_reported_unswept() -> None:
    producer = SweepProducer(offsets_fail=True)
    assert _sweep(producer, _admin(TOPICS))() is False
    assert producer.calls[-2:] == ["send_offsets", "abort"] and "commit" not in producer.calls


@pytest.mark.parametrize("admin", [None, _admin({OFFSETS_TOPIC: 3, "g.changelog": 2, "out.a": 3})])
def test_no_sweep_without_every_topic_described(admin: Any) -> None:
    producer = SweepProducer()
    assert _sweep(producer, admin)() is False
    assert producer.calls == []


def test_no_sweep_while_the_offsets_may_still_be_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebalance, "SWEEP_AFTER_S", 3600.0)
    events = Events()
    consumer = GroupConsumer(events, {("in", 0): 5}, timeouts=3)
    runner = _runner(consumer, OrderedProducer(events))
    assert runner._rebalance is not None
    runner._rebalance.resolve_pending = lambda: events.seen.append("sweep") is None
    runner._rebalance.on_assign(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]
    assert runner._rebalance.error is None
    assert events.seen == ["committed"] * 4 + ["incremental_assign"]


def test_a_failed_sweep_is_tried_again_on_the_next_timeout_and_a_done_one_is_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebalance, "SWEEP_AFTER_S", 0.0)
    events = Events()
    consumer = GroupConsumer(events, {("in", 0): 5}, timeouts=3)
    runner = _runner(consumer, OrderedProducer(events))
    assert runner._rebalance is not None
    results = iter([False, True])

    def resolve() -> bool:
        events.seen.append("sweep")
        return next(results)

    runner._rebalance.resolve_pending = resolve
    runner._rebalance.on_assign(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]
    assert runner._rebalance.error is None
    assert events.seen == ["committed", "sweep", "committed", "sweep", "committed", "committed",
                           "incremental_assign"]


def test_a_process_holding_partitions_does_not_sweep_and_fails_at_the_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    events = Events()
    consumer = GroupConsumer(events, {("in", 0): 5})
    runner = _runner(consumer, OrderedProducer(events))
    assert runner._rebalance is not None
    runner._rebalance.resolve_pending = lambda: events.seen.append("sweep") is None
    runner._rebalance.on_assign(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]
    assert runner.partitions.get(("in", 0)) is not None  # held from here on
    monkeypatch.setattr(rebalance, "RETRY_DEADLINE_S", 0.3)
    monkeypatch.setattr(rebalance, "SWEEP_AFTER_S", 0.0)
    consumer.timeouts = 1_000
    events.seen.clear()
    runner._rebalance.on_assign(consumer, [TopicPartition("in", 1)])  # type: ignore[arg-type]
    assert isinstance(runner._rebalance.error, RetriesExhaustedError)  # the loop ends; the restart sweeps
    assert "sweep" not in events.seen and events.seen.count("committed") > 1
    assert runner.partitions.get(("in", 1)) is None
