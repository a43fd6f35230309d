"""/ready follows the circuit breaker without lag: the processor's state is derived from the breaker
state and the pause reasons (``status.running_state``), and it moves on the breaker's transitions
(open, half-open, closed), whoever causes them, instead of being polled once per pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from smc_runtime.config import KafkaSettings, ProcessorSettings
from smc_runtime.kafka import output_health
from smc_runtime.kafka.breaker import BreakerState, CircuitBreaker
from smc_runtime.kafka.processor import ProcessorRunner
from smc_runtime.service.health import HealthReport
from smc_runtime.service.metrics import RuntimeMetrics
from smc_runtime.service.status import ProcessorState, ProcessorStatus, running_state
from tests.kafka_fakes import FakeMessage
from tests.unit.runtime.test_resume import FakePipeline, FakeProducer

TP0 = ("in", 0)
T = TypeVar("T")
S = ProcessorState

# --- the derivation (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(("breaker", "paused_by", "state"), [
    ("closed", set(), S.RUNNING),
    ("half_open", set(), S.RUNNING),                       # the probe consumes: ready
    ("open", set(), S.BREAKER_OPEN),
    ("open", {"breaker"}, S.BREAKER_OPEN),
    ("open", {"breaker", "backpressure"}, S.BREAKER_OPEN),  # an open breaker wins over a pause
    ("closed", {"backpressure"}, S.PAUSED),                # working off its queue: ready
    ("half_open", {"backpressure"}, S.PAUSED),
])
def test_running_state_is_derived_from_breaker_and_pauses(breaker: str, paused_by: set[str],
                                                          state: ProcessorState) -> None:
    assert running_state(breaker, paused_by) is state


def _status() -> ProcessorStatus:
    return ProcessorStatus("p", "g", "exactly_once", ["in"], {}, 100, 10_000)


def test_flow_changes_move_a_running_state_but_not_a_lifecycle_step() -> None:
    status = _status()
    status.set_state(S.RESTORING)
    status.flow_changed(breaker_state="open")
    assert status.state is S.RESTORING and status.breaker_state == "open"
    status.enter_running()  # restored while the breaker is open: not ready
    assert status.state is S.BREAKER_OPEN
    status.flow_changed(paused_by=frozenset({"backpressure"}))
    status.flow_changed(breaker_state="half_open")
    assert status.state is S.PAUSED
    status.set_state(S.STOPPING)
    status.flow_changed(paused_by=frozenset())
    assert status.state is S.STOPPING


# --- the breaker's transitions -------------------------------------------------------------------------


def test_the_breaker_reports_every_transition_once() -> None:
    moves: list[BreakerState] = []
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=5.0, on_transition=moves.append)
    breaker.record_failure(0.0, {"out"})
    assert moves == []                                   # one failure: still closed
    breaker.trip(1.0)
    breaker.trip(2.0)                                    # open again: the cooldown restarts, no move
    assert not breaker.allows_work(6.9)
    assert breaker.allows_work(7.0)
    breaker.record_success(7.1, {"other"})               # did not write the refusing topic: stays
    breaker.record_failure(7.2)                          # the probe failed
    assert breaker.allows_work(12.5)
    breaker.record_success(12.6, {"out"})
    breaker.record_success(12.7, {"out"})                # closed already: no move
    assert moves == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN,
                     BreakerState.HALF_OPEN, BreakerState.CLOSED]
    assert breaker.times_opened == 2


# --- the loop: consumption paused exactly while open, /ready 503 exactly then -----------------------------


class PausingConsumer:
    """Records pause and resume of its one assigned partition."""

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(*TP0)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused = True
        self.pauses += 1

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused = False

    def seek(self, tp: TopicPartition) -> None:
        pass

    def consumer_group_metadata(self) -> None:
        return None


def _running(breaker: CircuitBreaker) -> tuple[ProcessorRunner, PausingConsumer, FakeProducer, HealthReport]:
    """A runner with an assigned, restored partition (ready), fake clients and ``breaker``."""
    settings = ProcessorSettings(consumer_group="g", input_topics=["in"], commit_interval_ms=100,
                                 snapshot_interval_ms=0)
    status = _status()
    runner = ProcessorRunner("p", settings, KafkaSettings(), "t-0", FakePipeline(), status, RuntimeMetrics(),
                             breaker=breaker)
    producer, consumer = FakeProducer(), PausingConsumer()
    runner.attach(producer, consumer, consumer)  # type: ignore[arg-type]
    part = runner.partitions.add(TP0)
    part.persisted = True
    part.snapshot_offset = 0
    runner.telemetry.assigned([TP0], 0, 1)
    return runner, consumer, producer, HealthReport({"p": status}, {}, 0.0)


def stall_commit(producer: FakeProducer, times: int, observe: Callable[[], T]) -> list[T]:
    """``commit_transaction`` times out ``times`` times, then commits; the list gets what ``observe``
    returned at each call (the last: the call that commits)."""
    seen: list[T] = []
    commit = producer.commit_transaction

    def stalled_commit(*args: Any) -> None:
        seen.append(observe())
        if len(seen) <= times:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "stalled", retriable=True))
        commit(*args)

    producer.commit_transaction = stalled_commit  # type: ignore[method-assign]
    return seen


def test_a_half_open_breaker_is_ready_at_once_after_a_stalled_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lag this fixes: a commit retrying past STALLED_OUTPUT_S opens the breaker; the commit then
    succeeds but wrote only to healthy topics, so the breaker stays open (it remembers the topic that
    refused records). The cooldown half-opens it: consumption resumes and /ready is 200 at that moment,
    not once a later commit closes it (up to ``memory_s`` = 30 s later)."""
    monkeypatch.setattr(output_health, "STALLED_OUTPUT_S", 0.0)
    runner, consumer, producer, report = _running(CircuitBreaker(failure_threshold=3, cooldown_s=0.5))
    runner.breaker.record_failure(time.monotonic(), {"alerts-out"})  # a refusal, earlier: remembered
    assert report.ready()[0] == 200
    during = stall_commit(producer, 2,
                          lambda: (report.ready()[0], consumer.paused, runner.status.state.value))
    runner.process_batch([FakeMessage("in", 0, o, b"{}", b"BTC") for o in range(3)])
    runner.commit()
    # Opened by the first retry: paused and not ready from then on, also after the commit succeeded.
    assert during[1:] == [(503, True, "breaker_open")] * 2, during
    assert runner.breaker.state is BreakerState.OPEN and runner.txn is None
    assert (report.ready()[0], consumer.paused) == (503, True)
    assert not runner.breaker.allows_work(time.monotonic())  # cooldown not over: nothing moves
    assert (report.ready()[0], consumer.paused) == (503, True)
    time.sleep(0.5)
    assert runner.breaker.allows_work(time.monotonic())      # the pass's check half-opens it ...
    checks = report.health(time.monotonic(), time.time())[1]["processors"]["p"]["checks"]
    assert checks["circuit_breaker"] == "half_open"
    assert (report.ready()[0], consumer.paused, runner.status.state) == (200, False, S.RUNNING)  # ... ready
    runner.breaker.record_failure(time.monotonic())          # the probe failed: open, not ready again
    assert (report.ready()[0], consumer.paused, runner.status.state) == (503, True, S.BREAKER_OPEN)


def test_a_closing_breaker_leaves_a_backpressure_pause_in_place() -> None:
    runner, consumer, _, report = _running(CircuitBreaker(failure_threshold=1, cooldown_s=0.0))
    runner.flow.producer_queue(runner.backpressure.high_water)
    assert (runner.status.state, report.ready()[0], consumer.paused) == (S.PAUSED, 200, True)
    runner.breaker.record_failure(time.monotonic())
    assert (runner.status.state, report.ready()[0]) == (S.BREAKER_OPEN, 503)
    runner.breaker.allows_work(time.monotonic())
    runner.breaker.record_success()
    assert (runner.status.state, report.ready()[0], consumer.paused) == (S.PAUSED, 200, True)
    assert runner.status.detail(time.monotonic())["paused_by"] == ["backpressure"]
    runner.flow.producer_queue(0)
    assert (runner.status.state, report.ready()[0], consumer.paused) == (S.RUNNING, 200, False)


def test_partitions_assigned_while_the_breaker_is_open_are_not_ready() -> None:
    """A rebalance restores new partitions while the breaker is open: the state is derived, so it
    stays ``breaker_open`` (was ``paused``, which counts as ready)."""
    runner, consumer, _, report = _running(CircuitBreaker(failure_threshold=1, cooldown_s=60.0))
    runner.breaker.record_failure(time.monotonic())
    runner.telemetry.restoring([("in", 1)])
    runner.telemetry.assigned([("in", 1)], 0, 2)
    assert (runner.status.state, report.ready()[0], consumer.paused) == (S.BREAKER_OPEN, 503, True)
