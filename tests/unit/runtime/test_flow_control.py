"""Circuit breaker and backpressure: the pure decisions behind pausing consumption."""

from __future__ import annotations

import pytest

from smc_runtime.kafka.backpressure import Backpressure, FlowAction
from smc_runtime.kafka.breaker import BreakerState, CircuitBreaker


def test_breaker_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=5.0)
    breaker.record_failure(now=1.0)
    breaker.record_failure(now=2.0)
    breaker.record_success()  # a success in between resets the streak
    breaker.record_failure(now=3.0)
    breaker.record_failure(now=4.0)
    assert breaker.state is BreakerState.CLOSED and breaker.allows_work(4.0)
    breaker.record_failure(now=5.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows_work(9.9)


def test_breaker_half_open_probe_closes_on_success_and_reopens_on_failure() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5.0)
    breaker.record_failure(now=0.0)
    assert breaker.allows_work(5.0) and breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure(now=5.5)  # the probe failed: open again, new cooldown
    assert breaker.state is BreakerState.OPEN and not breaker.allows_work(10.0)
    assert breaker.allows_work(10.5)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.times_opened == 2


def test_breaker_counts_a_success_only_if_it_wrote_to_the_refusing_topics() -> None:
    """A topic refuses every record: transactions that touch only other topics commit in between
    (records of other input partitions). They neither reset the streak nor close a half-open breaker."""
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=5.0)
    breaker.record_failure(1.0, {"trades-out"})
    breaker.record_success(1.1, {"book-out"})
    breaker.record_failure(1.2, {"trades-out"})
    breaker.record_success(1.3, set())  # a snapshot-only commit, say
    breaker.record_failure(1.4, ())  # the produce that found the transaction failed names no topic
    assert breaker.state is BreakerState.OPEN
    assert breaker.allows_work(6.4) and breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(6.5, {"book-out", "changelog"})
    assert breaker.state is BreakerState.HALF_OPEN, "the probe did not write the refusing topic"
    breaker.record_failure(6.6, {"trades-out"})
    assert breaker.state is BreakerState.OPEN and breaker.times_opened == 2
    assert breaker.allows_work(11.6)
    breaker.record_success(11.7, {"trades-out", "book-out"})  # the topic takes records again
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0
    assert not breaker.failing_topics


def test_breaker_forgets_failing_topics_that_stay_unwritten() -> None:
    """The refused records may never come back (their partitions moved to another replica): after
    ``memory_s`` without a failure, any success closes the breaker."""
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5.0, memory_s=30.0)
    breaker.record_failure(0.0, {"alerts-out"})
    assert breaker.allows_work(5.0)
    breaker.record_success(20.0, {"book-out"})
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(30.0, {"book-out"})
    assert breaker.state is BreakerState.CLOSED and not breaker.failing_topics


def test_breaker_success_of_unknown_topics_closes() -> None:
    breaker = CircuitBreaker(failure_threshold=1)
    breaker.record_failure(0.0, {"t"})
    assert breaker.allows_work(10.0)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_breaker_trip_opens_at_once_and_restarts_the_cooldown() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=5.0)
    breaker.trip(1.0)
    assert breaker.state is BreakerState.OPEN and breaker.times_opened == 1
    breaker.trip(4.0)
    assert breaker.times_opened == 1 and not breaker.allows_work(8.9) and breaker.allows_work(9.0)


def test_breaker_gauge_encoding() -> None:
    assert [s.gauge for s in (BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN)] == [0, 1, 2]


def test_backpressure_pauses_above_high_water_and_resumes_below_low_water() -> None:
    flow = Backpressure(high_water=100, low_water=20)
    actions = [flow.update(q) for q in (10, 99, 100, 150, 50, 21, 20, 60, 100)]
    assert actions == [FlowAction.NONE, FlowAction.NONE, FlowAction.PAUSE, FlowAction.NONE, FlowAction.NONE,
                       FlowAction.NONE, FlowAction.RESUME, FlowAction.NONE, FlowAction.PAUSE]


def test_backpressure_rejects_inverted_water_marks() -> None:
    with pytest.raises(ValueError):
        Backpressure(high_water=10, low_water=10)
