"""The loop's parts built directly with fake clients: a ``Transaction`` committed step by step over
``PartitionState`` objects, the ``OutputWriter``'s error handling, ``Telemetry`` counting without
parsing outputs."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka.errors import AbortableKafkaError, FatalKafkaError
from smc_runtime.kafka.output import DeliveryReport, OutputWriter
from smc_runtime.kafka.partitions import Partitions
from smc_runtime.kafka.telemetry import Telemetry
from smc_runtime.kafka.transaction import CommitContext, Transaction
from smc_runtime.logs import get_logger
from smc_runtime.pipeline import OutputRecord
from smc_runtime.service.metrics import RuntimeMetrics
from smc_runtime.service.status import ProcessorStatus
from tests.unit.runtime.test_resume import FakeConsumer, FakePipeline, FakeProducer

LOG = get_logger("test")


def _telemetry() -> Telemetry:
    status = ProcessorStatus("p", "g", "exactly_once", ["in"], {}, 100, 10_000)
    return Telemetry("p", RuntimeMetrics(), status)


def _context(producer: Any, pipeline: FakePipeline, partitions: Partitions, interval_ms: int = 1000,
             eos: bool = True) -> CommitContext:
    writer = OutputWriter(producer, {"enriched_trades": "out", "dead_letters": "dlq"}, 1_000_000, LOG,
                          lambda queued: None)
    return CommitContext(producer, FakeConsumer(), eos, partitions, pipeline, writer,  # type: ignore[arg-type]
                         DeliveryReport(LOG), _telemetry(), LOG, "g.changelog", 1, interval_ms,
                         lambda what: lambda error: None)


def test_a_transaction_snapshots_only_due_partitions_and_a_commit_advances_their_offsets() -> None:
    """A partition whose interval is up snapshots when the next transaction begins (its state as of
    the last commit), visible with that transaction's commit."""
    producer, pipeline, partitions = FakeProducer(), FakePipeline(), Partitions()
    due, later = partitions.add(("in", 0)), partitions.add(("in", 1))
    due.persisted = later.persisted = True
    later.snapshot_due_at = 1e12                     # not due in this test
    ctx = _context(producer, pipeline, partitions)
    txn = Transaction.begin(ctx)
    for part, symbol in ((due, "BTC"), (later, "ETH")):
        pipeline.process(b"{}", topic=part.topic, partition=part.partition, offset=0, timestamp_ms=1,
                         key=symbol.encode())
        part.first_record(0)
        part.position = 1
        txn.dirty[part.tp] = part
    txn.commit()
    assert producer.calls == ["begin", "commit"]
    assert [(o.partition, o.offset) for o in producer.offsets[-1]] == [(0, 1), (1, 1)]
    assert producer.changelog() == [] and due.unsnapshotted and due.touched == {"BTC"}
    assert due.committed == 1 and later.committed == 1
    second = Transaction.begin(ctx)                  # the due partition's keys first, then records
    assert producer.changelog() == [(cl.changelog_key("in", 0, "BTC"), b"0,"), (cl.marker_key("in", 0), b"1")]
    pipeline.process(b"{}", topic="in", partition=1, offset=1, timestamp_ms=1, key=b"ETH")
    later.position = 2
    second.dirty[later.tp] = later
    second.commit()
    assert producer.calls == ["begin", "commit", "begin", "commit"]
    assert due.committed == 1 and due.snapshot == {"BTC": b"0,"} and due.snapshot_offset == 1
    assert not due.touched and not due.unsnapshotted
    assert later.committed == 2 and later.snapshot == {} and later.touched == {"ETH"} and later.unsnapshotted


def _touch_all(pipeline: FakePipeline, txn: Transaction, parts: list[Any], position: int) -> None:
    for part in parts:
        pipeline.process(b"{}", topic=part.topic, partition=part.partition, offset=position - 1,
                         timestamp_ms=1, key=f"K{part.partition}".encode())
        part.first_record(position - 1)
        part.position = position
        txn.dirty[part.tp] = part


def test_first_snapshots_keep_each_partitions_place_in_the_interval() -> None:
    """Six fresh partitions all snapshot in their first commit (no offset without a snapshot), but
    their next snapshots stay where ``snapshot_phase`` put them, not all at one time a second later."""
    producer, pipeline, partitions = FakeProducer(), FakePipeline(), Partitions()
    parts = [partitions.add(("in", p)) for p in range(6)]
    assigned = time.monotonic()
    phases = [assigned + 1.0 * (1 + (p + 0.5) / 6) for p in range(6)]  # as Recovery.restore sets them
    for part, due_at in zip(parts, phases, strict=True):
        part.snapshot_due_at = due_at
    ctx = _context(producer, pipeline, partitions)
    ctx.commit_interval_ms = 20
    txn = Transaction.begin(ctx)
    _touch_all(pipeline, txn, parts, 1)
    txn.commit()
    assert all(part.persisted and not part.unsnapshotted for part in parts)
    assert [part.snapshot_due_at for part in parts] == phases


def test_partitions_due_together_spread_over_commits() -> None:
    """All six due at once: each transaction snapshots the budget (6 x 20 ms / 1 s -> one), oldest
    first."""
    producer, pipeline, partitions = FakeProducer(), FakePipeline(), Partitions()
    parts = [partitions.add(("in", p)) for p in range(6)]
    for part in parts:
        part.persisted = True
        part.snapshot_due_at = 1.0 + (5 - part.partition) * 0.001  # partition 5 is the most overdue
    ctx = _context(producer, pipeline, partitions)
    ctx.commit_interval_ms = 20
    txn = Transaction.begin(ctx)                     # every partition changes: all owe a snapshot
    _touch_all(pipeline, txn, parts, 1)
    txn.commit()
    order: list[int] = []
    for position in range(2, 8):
        txn = Transaction.begin(ctx)
        _touch_all(pipeline, txn, parts, position)
        before = {part.partition for part in parts if part.persisted and part.snapshot_due_at < 2.0}
        txn.commit()
        after = {part.partition for part in parts if part.snapshot_due_at < 2.0}
        assert len(before - after) == 1
        order.extend(before - after)
    assert order == [5, 4, 3, 2, 1, 0]
    # Forced snapshots (shutdown, revocation) take every changed partition at once.
    for part in parts:
        part.snapshot_due_at = 1.0
    txn = Transaction.begin(ctx)
    _touch_all(pipeline, txn, parts, 8)
    txn.commit(snapshot=True)
    assert all(part.snapshot_due_at > 2.0 for part in parts)


def test_the_commit_interval_runs_from_the_end_of_the_previous_commit() -> None:
    producer, pipeline, partitions = FakeProducer(), FakePipeline(), Partitions()
    part = partitions.add(("in", 0))
    ctx = _context(producer, pipeline, partitions)
    first = Transaction.begin(ctx)
    assert first.interval_from == first.started                # no commit yet: from its first record
    assert first.due_in(first.started + 0.005, 20) == pytest.approx(0.015)
    part.position = 1
    first.dirty[part.tp] = part
    first.commit()
    closed = ctx.closed_at
    assert closed is not None and closed >= first.started
    # The next transaction's first record came 11 ms after that commit (a consume wait): it is due
    # 20 ms after the commit, not 20 ms after its first record.
    second = Transaction(ctx, closed + 0.011)
    assert second.interval_from == closed
    assert second.due_in(closed + 0.011, 20) == pytest.approx(0.009)
    assert second.due_in(closed + 0.020, 20) <= 0.0


def test_at_least_once_commit_fails_on_delivery_errors() -> None:
    producer, pipeline, partitions = FakeProducer(), FakePipeline(), Partitions()
    part = partitions.add(("in", 0))
    ctx = _context(producer, pipeline, partitions, eos=False)
    txn = Transaction.begin(ctx)
    part.position = 3
    txn.dirty[part.tp] = part

    def failing_flush(*_: Any) -> int:
        ctx.deliveries(KafkaError(KafkaError._MSG_TIMED_OUT), None)
        return 0

    producer.flush = failing_flush  # type: ignore[method-assign]
    with pytest.raises(AbortableKafkaError, match="1 deliveries failed"):
        txn.commit()
    assert part.committed is None                     # nothing advanced


class RefusingProducer(FakeProducer):
    """Refuses values above ``limit`` bytes like librdkafka (MSG_SIZE_TOO_LARGE); the first call
    of ``full_once`` raises BufferError."""

    def __init__(self, limit: int, full_once: bool = False) -> None:
        super().__init__()
        self.limit = limit
        self.full_once = full_once
        self.polls = 0

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kw: Any) -> None:
        if self.full_once:
            self.full_once = False
            raise BufferError("queue full")
        if value is not None and len(value) > self.limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        super().produce(topic, value, key, **kw)

    def poll(self, *_: Any) -> int:
        self.polls += 1
        return 0


def test_writer_waits_out_a_full_queue_and_replaces_an_oversized_record() -> None:
    producer = RefusingProducer(limit=2_000, full_once=True)
    queued: list[int] = []
    writer = OutputWriter(producer, {"enriched_trades": "out", "dead_letters": "dlq"}, 2_000, LOG,  # type: ignore[arg-type]
                          queued.append)
    writer.produce("out", b"k", b"v", None)
    assert producer.polls == 1 and queued == [0] and producer.produced == [("out", b"k", b"v")]
    big = OutputRecord("enriched_trades", b"BTC", b"x" * 5_000)
    sent = writer.recover(KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)), big, "in", 2, 7, 99)
    assert sent.role == "dead_letters" and len(sent.value) < 2_000
    headers = dict(sent.headers)
    assert headers["reason"] == b"output_too_large" and headers["original_size"] == b"5000"
    assert headers["source_offset"] == b"7" and producer.produced[-1][0] == "dlq"


def test_writer_maps_other_produce_errors_and_tombstones_oversized_snapshots() -> None:
    producer = RefusingProducer(limit=10)
    writer = OutputWriter(producer, {}, 10, LOG, lambda queued: None)  # type: ignore[arg-type]
    with pytest.raises(AbortableKafkaError):
        writer.recover(KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC)),
                       OutputRecord("enriched_trades", b"", b""), "in", 0, 0, 0)
    with pytest.raises(FatalKafkaError):
        writer.recover(KafkaException(KafkaError(KafkaError._FENCED, fatal=True)),
                       OutputRecord("enriched_trades", b"", b""), "in", 0, 0, 0)
    assert writer.produce_snapshot("cl", b"k", b"y" * 50, [], 0) is False   # tombstone instead
    assert producer.produced == [("cl", b"k", None)]
    with pytest.raises(AbortableKafkaError):                                   # a marker never is
        writer.produce_snapshot("cl", b"m", b"y" * 50, [], 0, may_tombstone=False)


def test_telemetry_counts_patterns_from_the_record_and_dead_letters_by_reason() -> None:
    telemetry = _telemetry()
    signal = OutputRecord("smc_signals", b"BTC", b"not json at all", pattern="fvg")
    dead = OutputRecord("dead_letters", b"", b"", (("reason", b"invalid_json"),))
    telemetry.batch(3, 0.003, {"in": 3}, {"sig": 1, "dlq": 1}, [("in", signal), ("in", dead)])
    registry = telemetry.metrics.registry
    assert registry.get_sample_value("smc_runtime_smc_patterns_detected_total",
                                     {"processor": "p", "pattern": "fvg"}) == 1
    assert registry.get_sample_value("smc_runtime_dead_letters_total",
                                     {"processor": "p", "reason": "invalid_json"}) == 1
    assert telemetry.status.messages_processed == 3 and telemetry.status.messages_failed == 1


class _Msg:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


def test_delivery_report_counts_failures_and_logs_one_line_per_topic_and_window(
        caplog: pytest.LogCaptureFixture) -> None:
    """A topic refusing every record fails thousands of deliveries a second: they are counted and
    remembered by topic, but logged once per topic and error per window, with the count in between."""
    now = [0.0]
    report = DeliveryReport(LOG, clock=lambda: now[0])
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            report(too_large, _Msg("out-a"))
        report(KafkaError(KafkaError._PURGE_QUEUE), _Msg("out-b"))  # an abort's purge: expected
        report(None, _Msg("out-b"))
        now[0] = DeliveryReport.LOG_EVERY_S
        report(too_large, _Msg("out-a"))
    lines = [r for r in caplog.records if "delivery failed" in r.getMessage()]
    assert len(lines) == 2
    assert report.errors == 1001
    assert report.take_failed_topics() == {"out-a": KafkaError.MSG_SIZE_TOO_LARGE}
    assert report.take_failed_topics() == {}


def test_a_commit_retrying_past_the_stall_limit_opens_the_breaker_until_it_succeeds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit call that keeps timing out (the broker does not answer, or refuses with a retriable
    error) is retried within its deadline; past STALLED_OUTPUT_S the breaker opens meanwhile (so /health
    and the operator see it), and the commit that succeeds in the end closes it."""
    from smc_runtime.kafka import output_health
    from smc_runtime.kafka.breaker import BreakerState, CircuitBreaker
    from tests.unit.runtime.test_readiness import _running, stall_commit
    from tests.unit.runtime.test_resume import _msgs

    monkeypatch.setattr(output_health, "STALLED_OUTPUT_S", 0.0)
    runner, consumer, producer, _ = _running(CircuitBreaker())
    states = stall_commit(producer, 2, lambda: runner.status.breaker_state)
    runner.process_batch(_msgs(range(0, 3)))
    runner.commit()
    assert states[1:] == ["open", "open"], states  # opened by the first retry, open while retrying
    assert runner.breaker.state is BreakerState.CLOSED and runner.breaker.times_opened == 1
    assert runner.status.breaker_state == "closed" and runner.txn is None
    assert runner.status.state.value == "running" and not consumer.paused  # ready again: resumed
