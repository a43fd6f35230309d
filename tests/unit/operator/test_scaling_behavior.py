"""scaling.decide: HPA-style behaviour (rate-limit policies, both stabilization windows, selectPolicy),
rate mode waiting for a rescale to settle, and no scale-out while a replica's breaker is open."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from smc_operator.scaling import (
    LagSample,
    PartitionLag,
    ScalerMemory,
    WorkloadSignals,
    decide,
    memory_from_status,
    memory_to_status,
)
from smc_operator.spec import AutoscalingSpec


def policy(**overrides: Any) -> AutoscalingSpec:
    base: dict[str, Any] = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 20,
        "lagThreshold": 100,
        "pollIntervalSeconds": 1,
    }
    base.update(overrides)
    return AutoscalingSpec.model_validate(base)


def lagged(t: float, total: int, partitions: int = 20, committed: int = 0) -> LagSample:
    per = total // partitions
    return LagSample(t, tuple(PartitionLag("in", i, committed + per, committed) for i in range(partitions)))


def test_default_scale_up_is_the_hpa_default_max_of_4_pods_or_100_percent_per_15s() -> None:
    p = policy()
    d = decide(p, current=1, sample=lagged(0, 2000), memory=ScalerMemory())
    assert d.recommended == 20 and d.desired == 5 and d.held_by == "policy"  # max(1 + 4, 2 x 1)
    d = decide(p, current=5, sample=lagged(10, 2000), memory=d.memory)
    assert d.desired == 5  # 4 added within the last 15 s: the period started at 1
    d = decide(p, current=5, sample=lagged(16, 2000), memory=d.memory)
    assert d.desired == 10  # new period from 5: max(5 + 4, 2 x 5)
    d = decide(p, current=10, sample=lagged(32, 2000), memory=d.memory)
    assert d.desired == 20


def test_custom_pods_policy_with_min_select_policy() -> None:
    behavior = {
        "scaleUp": {
            "selectPolicy": "Min",
            "policies": [
                {"type": "Pods", "value": 2, "periodSeconds": 30},
                {"type": "Percent", "value": 50, "periodSeconds": 30},
            ],
        }
    }
    p = policy(behavior=behavior)
    d = decide(p, current=4, sample=lagged(0, 2000), memory=ScalerMemory())
    assert d.desired == 6  # min(4 + 2, ceil(4 x 1.5))
    d = decide(p, current=6, sample=lagged(29, 2000), memory=d.memory)
    assert d.desired == 6  # still inside the 30 s period
    d = decide(p, current=6, sample=lagged(31, 2000), memory=d.memory)
    assert d.desired == 8


def test_disabled_scale_down_never_sheds_replicas() -> None:
    p = policy(behavior={"scaleDown": {"selectPolicy": "Disabled", "stabilizationWindowSeconds": 0}})
    d = decide(p, current=8, sample=lagged(0, 0), memory=ScalerMemory())
    assert d.recommended == 1 and d.desired == 8 and "disabled" in d.reason


def test_scale_down_pods_policy_and_window_from_behavior_override_the_legacy_field() -> None:
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 10}],
        }
    }
    p = policy(scaleDownStabilizationSeconds=300, behavior=behavior)
    d = decide(p, current=5, sample=lagged(0, 0), memory=ScalerMemory())
    assert d.desired == 4
    d = decide(p, current=4, sample=lagged(5, 0), memory=d.memory)
    assert d.desired == 4
    d = decide(p, current=4, sample=lagged(11, 0), memory=d.memory)
    assert d.desired == 3


def test_scale_up_stabilization_takes_the_lowest_recommendation_of_its_window() -> None:
    p = policy(behavior={"scaleUp": {"stabilizationWindowSeconds": 20}})
    d = decide(p, current=2, sample=lagged(0, 200), memory=ScalerMemory())
    assert d.desired == 2
    d = decide(p, current=2, sample=lagged(5, 600), memory=d.memory)
    assert d.recommended == 6 and d.desired == 2 and d.held_by == "stabilization"
    d = decide(p, current=2, sample=lagged(21, 600), memory=d.memory)
    assert d.desired == 6  # the t=0 recommendation of 2 left the window


def test_a_burst_never_outruns_the_policy() -> None:
    """Any lag sequence: every step stays within what the policy allows over its period."""

    @settings(max_examples=150, deadline=None)
    @given(
        lags=st.lists(st.integers(0, 5000), min_size=2, max_size=25),
        step=st.sampled_from([1.0, 3.0, 7.0]),
    )
    def run(lags: list[int], step: float) -> None:
        p = policy(behavior={"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 10}]}})
        memory, current = ScalerMemory(), 1
        history: list[tuple[float, int]] = [(-1000.0, 1)]
        for i, lag in enumerate(lags):
            t = i * step
            d = decide(p, current=current, sample=lagged(t, lag), memory=memory)
            # replicas 10 s ago (the period's start) + 2 bounds the count now
            start = [r for (tt, r) in history if tt <= t - 10][-1]
            recent_low = min([start] + [r for (tt, r) in history if tt > t - 10])
            assert d.desired <= max(current, recent_low + 2)
            memory, current = d.memory, d.desired
            history.append((t, current))

    run()


def test_rate_mode_holds_while_new_pods_are_not_ready_then_settle() -> None:
    p = policy(
        mode="rate",
        lagThreshold=1_000_000,
        targetCatchUpSeconds=10,
        rescaleSettleSeconds=20,
        rateWindowSeconds=30,
        behavior={"scaleUp": {"policies": [{"type": "Percent", "value": 1000, "periodSeconds": 1}]}},
    )
    ready = WorkloadSignals(ready=1)
    long_ready = ScalerMemory(ready_since=-100.0)  # the one pod has run for a while
    m = decide(p, current=1, sample=lagged(0, 6000, committed=0), memory=long_ready, signals=ready).memory
    # 1 replica consumed 500 in 10 s: 50/s; 6000 lag / 10 s target -> 12 replicas.
    d = decide(p, current=1, sample=lagged(10, 6000, committed=500 // 20 * 1), memory=m, signals=ready)
    assert d.memory.per_replica_rate is not None
    assert d.desired > 1
    n = d.desired
    # While the new pods start nothing is consumed and the lag grows: the decision holds.
    for t in (12, 14, 20):
        d = decide(
            p,
            current=n,
            sample=lagged(t, 9000, committed=25),
            memory=d.memory,
            signals=WorkloadSignals(ready=1),
        )
        assert d.desired == n and d.held_by == "settling", d.reason
    # All Ready at t=25: still settling for rescaleSettleSeconds (rebalance, restore).
    d = decide(
        p, current=n, sample=lagged(25, 9000, committed=25), memory=d.memory, signals=WorkloadSignals(ready=n)
    )
    assert d.desired == n and d.held_by == "settling"
    assert d.memory.ready_since == 25
    d = decide(
        p, current=n, sample=lagged(44, 9000, committed=25), memory=d.memory, signals=WorkloadSignals(ready=n)
    )
    assert d.held_by == "settling"
    d = decide(
        p, current=n, sample=lagged(46, 9000, committed=25), memory=d.memory, signals=WorkloadSignals(ready=n)
    )
    assert d.held_by != "settling"


def test_per_replica_rate_ignores_the_intervals_around_a_rescale() -> None:
    """The stall while new pods restore must not lower the per-replica estimate (the overshoot cause)."""
    p = policy(
        mode="rate",
        lagThreshold=1_000_000,
        targetCatchUpSeconds=60,
        rescaleSettleSeconds=5,
        rateWindowSeconds=60,
        maxReplicas=20,
        behavior={"scaleUp": {"policies": [{"type": "Percent", "value": 1000, "periodSeconds": 1}]}},
    )
    rate, parts = 100.0, 20
    memory, current, consumed, t = ScalerMemory(), 1, 0, 0.0
    lag_end = 60_000
    peak = 0
    stall_until = None
    for _ in range(60):
        ready = current if stall_until is None or t >= stall_until else 0
        d = decide(
            p,
            current=current,
            sample=LagSample(
                t, tuple(PartitionLag("in", i, lag_end // parts, consumed // parts) for i in range(parts))
            ),
            memory=memory,
            signals=WorkloadSignals(ready=ready),
        )
        if d.desired != current:
            stall_until = t + 8  # pods start and the group rebalances for 8 s
        memory, current = d.memory, d.desired
        peak = max(peak, current)
        t += 2.0
        if consumed + current * rate * 2 > lag_end:
            break  # caught up: the measured rate would now fall for want of records
        stalled = stall_until is not None and t < stall_until + 0.01
        # While the group rebalances and the new pods restore, only a trickle (20%) gets consumed.
        consumed += int(current * rate * 2 * (0.2 if stalled else 1.0))
        assert memory.per_replica_rate is None or memory.per_replica_rate >= rate * 0.99
    # lag 60000 / (n x 100/s) <= 60 s -> n = 10; the trickle must not push it higher (judged during the
    # stall, 20 replicas x 20/s would look needed: the maximum).
    assert peak == 10


def test_no_scale_out_while_a_replica_reports_the_breaker_open() -> None:
    p = policy(behavior={"scaleDown": {"stabilizationWindowSeconds": 0}})
    sick = WorkloadSignals(ready=2, breaker_open=1)
    d = decide(p, current=2, sample=lagged(0, 2000), memory=ScalerMemory(), signals=sick)
    assert d.desired == 2 and d.held_by == "breaker" and "circuit breaker" in d.reason
    down = decide(p, current=4, sample=lagged(1, 100), memory=ScalerMemory(), signals=sick)
    assert down.desired == 1  # scale-down is not blocked
    off = policy(holdOnOpenBreaker=False)
    assert decide(off, current=2, sample=lagged(0, 2000), memory=ScalerMemory(), signals=sick).desired == 6


def test_a_pod_that_is_not_ready_pauses_the_rate_measurement_but_not_decisions() -> None:
    p = policy(mode="rate", rescaleSettleSeconds=5, lagThreshold=100)
    d = decide(p, current=2, sample=lagged(0, 200), memory=ScalerMemory(), signals=WorkloadSignals(ready=1))
    assert d.memory.samples[-1].settled is False and d.held_by is None  # no rescale of ours pending
    d = decide(
        p, current=2, sample=lagged(3, 200, committed=10), memory=d.memory, signals=WorkloadSignals(ready=2)
    )
    assert d.memory.per_replica_rate is None and d.memory.ready_since == 3
    d = decide(
        p, current=2, sample=lagged(9, 200, committed=20), memory=d.memory, signals=WorkloadSignals(ready=2)
    )
    assert d.memory.samples[-1].settled is True


def test_new_memory_survives_a_status_round_trip() -> None:
    p = policy(mode="rate", rescaleSettleSeconds=5)
    d = decide(p, current=1, sample=lagged(0, 2000), memory=ScalerMemory(), signals=WorkloadSignals(ready=1))
    d = decide(
        p,
        current=d.desired,
        sample=lagged(3, 2000, committed=5),
        memory=d.memory,
        signals=WorkloadSignals(ready=0),
    )
    assert d.memory.events and d.memory.rescaled_at is not None
    assert memory_from_status(memory_to_status(d.memory)) == d.memory


def test_a_held_decision_reports_the_recommendation_but_records_no_scale_event() -> None:
    """A pause annotation holds the count: nothing moved, so nothing spends the policies' budget or
    starts a settle wait (the memory is what an unchanged poll leaves)."""
    p = policy(mode="rate", rescaleSettleSeconds=5)
    d = decide(p, current=1, sample=lagged(0, 2000), memory=ScalerMemory(), held=True)
    assert d.recommended == 20 and d.desired == 1 and not d.changed
    assert d.held_by == "pause" and d.reason.endswith("(paused: not applied)")
    assert d.memory.events == () and d.memory.rescaled_at is None
    assert d.memory.samples[-1].replicas == 1  # the count that really runs
    assert d.memory.recommendations[-1].replicas == 20  # the window still sees the demand


def test_after_a_pause_the_full_policy_budget_is_there() -> None:
    p = policy()
    d = decide(p, current=1, sample=lagged(0, 2000), memory=ScalerMemory(), held=True)
    d = decide(p, current=1, sample=lagged(5, 2000), memory=d.memory, held=True)
    unpaused = decide(p, current=1, sample=lagged(6, 2000), memory=d.memory)
    assert unpaused.desired == 5 and unpaused.memory.events[-1].delta == 4  # max(1 + 4, 2 x 1), as fresh


def test_held_changes_nothing_when_the_decision_would_not_move() -> None:
    p = policy()
    free = decide(p, current=2, sample=lagged(0, 200), memory=ScalerMemory())
    held = decide(p, current=2, sample=lagged(0, 200), memory=ScalerMemory(), held=True)
    assert free.desired == held.desired == 2 and held.held_by is None and held.memory == free.memory


@settings(max_examples=100, deadline=None)
@given(lags=st.lists(st.integers(0, 5000), min_size=1, max_size=15), current=st.integers(1, 8))
def test_a_held_decision_never_moves_or_records_an_event(lags: list[int], current: int) -> None:
    p = policy(mode="rate", rescaleSettleSeconds=3)
    memory = ScalerMemory()
    for i, lag in enumerate(lags):
        d = decide(p, current=current, sample=lagged(i * 2.0, lag), memory=memory, held=True)
        assert d.desired == current and d.memory.events == () and d.memory.rescaled_at is None
        memory = d.memory
