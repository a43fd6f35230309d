"""scaling.decide: KEDA-compatible threshold rule, rate-aware rule, bounds, activation, stabilization.

HPA-style rate limits, settling and the breaker hold are in test_scaling_behavior.py; the formula tests here
lift the default scale-up limit (``FREE``) so they see the formula's result in one step."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from smc_operator.scaling import (
    LagSample,
    PartitionLag,
    SampleTotals,
    ScalerMemory,
    decide,
    memory_from_status,
    memory_to_status,
)
from smc_operator.spec import AutoscalingSpec

FREE = {"scaleUp": {"policies": [{"type": "Pods", "value": 1000, "periodSeconds": 1}]}}


def policy(**overrides: object) -> AutoscalingSpec:
    base: dict[str, object] = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 10,
        "lagThreshold": 1000,
        "scaleDownStabilizationSeconds": 30,
        "behavior": FREE,
        "rescaleSettleSeconds": 0,
        "pollIntervalSeconds": 1,  # R needs a run of max(2 polls, 5 s); these polls are 5-10 s apart
    }
    base.update(overrides)
    return AutoscalingSpec.model_validate(base)


def sample(t: float, lags: list[int], *, committed: int = 0, topic: str = "in") -> LagSample:
    """One partition per entry, each with `committed` consumed and `lag` more records on top."""
    return LagSample(
        time=t,
        partitions=tuple(
            PartitionLag(topic, i, log_end=committed + lag, committed=committed) for i, lag in enumerate(lags)
        ),
    )


def test_threshold_rule_scales_up_to_ceil_of_lag_over_threshold_at_once() -> None:
    d = decide(policy(), current=1, sample=sample(0, [500] * 10), memory=ScalerMemory())
    assert d.total_lag == 5000
    assert d.desired == 5 and d.direction == "up"


def test_never_more_replicas_than_partitions() -> None:
    d = decide(policy(maxReplicas=10), current=1, sample=sample(0, [50_000] * 3), memory=ScalerMemory())
    assert d.desired == 3


def test_never_more_than_max_replicas() -> None:
    d = decide(policy(maxReplicas=6), current=1, sample=sample(0, [50_000] * 12), memory=ScalerMemory())
    assert d.desired == 6


def test_tolerance_band_keeps_current_count() -> None:
    within = decide(policy(), current=5, sample=sample(0, [540] * 10), memory=ScalerMemory())
    beyond = decide(policy(), current=5, sample=sample(0, [560] * 10), memory=ScalerMemory())
    assert within.desired == 5 and not within.changed
    assert beyond.desired == 6


def test_activation_as_keda_decides_only_zero_or_not() -> None:
    p = policy(activationLagThreshold=500, minReplicas=0)
    idle = decide(p, current=0, sample=sample(0, [200, 200]), memory=ScalerMemory())
    active = decide(p, current=0, sample=sample(0, [400, 400]), memory=ScalerMemory())
    assert idle.desired == 0 and "inactive" in idle.reason
    assert active.desired == 1  # active: at least one replica, even though ceil(800 / 1000) is 1 anyway
    # With minReplicas >= 1 KEDA's activation changes nothing: lag 3000 <= activation 5000 still scales to 3.
    keda = policy(activationLagThreshold=5000, minReplicas=1, maxReplicas=10)
    assert decide(keda, current=1, sample=sample(0, [1000] * 3), memory=ScalerMemory()).desired == 3
    # Exactly at the threshold is inactive (KEDA: active when lag > activationLagThreshold).
    at = decide(p, current=0, sample=sample(0, [250, 250]), memory=ScalerMemory())
    assert at.desired == 0


def test_uncommitted_partition_counts_from_log_start() -> None:
    part = PartitionLag("in", 0, log_end=900, committed=None, log_start=100)
    assert part.lag == 800
    behind_start = PartitionLag("in", 0, log_end=900, committed=50, log_start=100)
    assert behind_start.lag == 800


def test_scale_down_waits_for_the_stabilization_window() -> None:
    p = policy(scaleDownStabilizationSeconds=30)
    up = decide(p, current=1, sample=sample(0, [500] * 10), memory=ScalerMemory())
    assert up.desired == 5
    held = decide(p, current=5, sample=sample(10, [0] * 10, committed=500), memory=up.memory)
    assert held.recommended == 1 and held.desired == 5 and "stabilization" in held.reason
    still = decide(p, current=5, sample=sample(29, [0] * 10, committed=500), memory=held.memory)
    assert still.desired == 5
    down = decide(p, current=5, sample=sample(31, [0] * 10, committed=500), memory=still.memory)
    assert down.desired == 1 and down.direction == "down"


def test_highest_recommendation_in_window_wins() -> None:
    p = policy(scaleDownStabilizationSeconds=30, maxReplicas=20)
    m = ScalerMemory()
    d = decide(p, current=1, sample=sample(0, [5000] + [0] * 9), memory=m)
    d = decide(p, current=d.desired, sample=sample(5, [3000] + [0] * 9), memory=d.memory)
    d = decide(p, current=d.desired, sample=sample(10, [2000] + [0] * 9), memory=d.memory)
    assert d.desired == 5
    d = decide(p, current=d.desired, sample=sample(31, [2000] + [0] * 9), memory=d.memory)
    assert d.desired == 3  # the t=0 recommendation (5) left the window; t=5 (3) is the highest left
    d = decide(p, current=d.desired, sample=sample(36, [2000] + [0] * 9), memory=d.memory)
    assert d.desired == 2


def test_zero_window_scales_down_immediately() -> None:
    p = policy(scaleDownStabilizationSeconds=0)
    up = decide(p, current=1, sample=sample(0, [400] * 10), memory=ScalerMemory())
    down = decide(p, current=up.desired, sample=sample(1, [0] * 10), memory=up.memory)
    assert (up.desired, down.desired) == (4, 1)


def _rate_sample(t: float, log_end: int, committed: int, partitions: int = 8) -> LagSample:
    per_end, per_com = log_end // partitions, committed // partitions
    return LagSample(
        time=t,
        partitions=tuple(PartitionLag("in", i, per_end, per_com) for i in range(partitions)),
    )


def test_rate_mode_falls_back_to_threshold_until_a_rate_is_measured() -> None:
    p = policy(mode="rate", targetCatchUpSeconds=60)
    d = decide(p, current=1, sample=_rate_sample(0, 8000, 0), memory=ScalerMemory())
    assert d.desired == 8 and "rate unknown" in d.reason


def test_rate_mode_picks_smallest_count_meeting_the_catch_up_target() -> None:
    p = policy(mode="rate", targetCatchUpSeconds=20, maxReplicas=8, lagThreshold=1_000_000)
    first = decide(p, current=1, sample=_rate_sample(0, 80_000, 0), memory=ScalerMemory())
    # 10 s later: the 1 replica consumed 800 (80/s), producers added 80 (8/s).
    second = decide(p, current=first.desired, sample=_rate_sample(10, 80_080, 800), memory=first.memory)
    assert first.desired == 1  # threshold fallback: ceil(80000 / 1e6)
    r, prod = second.memory.per_replica_rate, second.memory.produce_rate
    assert r is not None and prod is not None
    assert math.isclose(r, 800 / 10 / first.desired) and math.isclose(prod, 8.0)
    lag = second.total_lag
    expected = next((n for n in range(1, 9) if n * r - prod > 0 and lag / (n * r - prod) <= 20), 8)
    assert second.recommended == expected


def test_rate_mode_with_no_lag_keeps_up_with_producers() -> None:
    p = policy(mode="rate", minReplicas=1, maxReplicas=8, scaleDownStabilizationSeconds=0)
    m = ScalerMemory(samples=(SampleTotals(0, 8000, 8000, 4),))
    d = decide(p, current=4, sample=_rate_sample(10, 9000, 9000), memory=m)
    # 4 replicas consumed 100/s (25/s each); producers 100/s -> need 4 to keep up.
    assert d.total_lag == 0 and d.desired == 4


def test_rate_mode_unreachable_target_goes_to_upper_bound() -> None:
    p = policy(mode="rate", targetCatchUpSeconds=1, maxReplicas=5)
    m = ScalerMemory(samples=(SampleTotals(0, 800_000, 0, 5),))
    d = decide(p, current=5, sample=_rate_sample(10, 800_000, 500, partitions=8), memory=m)
    assert d.desired == 5 and "unreachable" in d.reason


def test_memory_survives_a_status_round_trip() -> None:
    p = policy()
    d = decide(p, current=1, sample=sample(0, [3000, 3000]), memory=ScalerMemory())
    d = decide(p, current=d.desired, sample=sample(5, [100, 100], committed=2900), memory=d.memory)
    restored = memory_from_status(memory_to_status(d.memory))
    assert restored == d.memory
    assert memory_from_status({"recommendations": "garbage"}) == ScalerMemory()


@settings(max_examples=300, deadline=None)
@given(
    lags=st.lists(st.lists(st.integers(0, 20_000), min_size=1, max_size=12), min_size=1, max_size=8),
    min_r=st.integers(0, 3),
    extra=st.integers(0, 8),
    window=st.integers(0, 50),
    mode=st.sampled_from(["threshold", "rate"]),
)
def test_invariants_hold_over_any_sequence(
    lags: list[list[int]], min_r: int, extra: int, window: int, mode: str
) -> None:
    p = policy(
        minReplicas=min_r, maxReplicas=max(1, min_r + extra), scaleDownStabilizationSeconds=window, mode=mode
    )
    memory, current = ScalerMemory(), 1
    history: list[tuple[float, int]] = []
    for step, row in enumerate(lags):
        t = step * 7.0
        d = decide(p, current=current, sample=sample(t, row, committed=step * 10), memory=memory)
        upper = max(p.min_replicas, min(p.max_replicas, len(row)))
        assert p.min_replicas <= d.recommended <= upper
        if d.recommended >= current:
            assert d.desired == d.recommended  # scale-up (or steady) is never delayed
        else:
            in_window = [r for (tt, r) in history if tt > t - window] + [d.recommended]
            assert d.desired == min(current, max(in_window))  # highest recommendation in the window
        history.append((t, d.recommended))
        memory, current = d.memory, d.desired
