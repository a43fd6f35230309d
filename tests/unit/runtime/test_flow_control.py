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
