"""Consumer lag -> desired replica count, pure (time is an argument, never read from a clock).

Two modes share the same bounds, activation, stabilization and rate limits:

* ``threshold`` (KEDA Kafka scaler compatible): ``desired = ceil(totalLag / lagThreshold)``.
  Inside the tolerance band (``|totalLag / (current * lagThreshold) - 1| <= tolerance``) nothing changes.
* ``rate``: with ``P`` the produce rate and ``R`` the consume rate per replica, both averaged over the
  last ``rateWindowSeconds``, the smallest ``n`` with ``n*R > P`` and
  ``totalLag / (n*R - P) <= targetCatchUpSeconds`` (with no lag: the smallest ``n`` with ``n*R >= P``).
  ``R`` is measured only over intervals in which the replica count did not change and the workload was
  *settled* (every replica Ready, then ``rescaleSettleSeconds`` for the rebalance and state restore), and
  no decision is taken while a rescale settles, so restoring pods never look slow and ratchet replicas up.
  Until ``R`` is measurable it falls back to ``threshold``.

Then, in this order:

1. Activation as KEDA: the scaler is *active* when ``totalLag > activationLagThreshold``. Inactive with
   ``minReplicas: 0`` recommends 0; active, at least 1; with ``minReplicas >= 1`` activation changes nothing.
2. Clamp to ``[minReplicas, min(maxReplicas, partitions)]`` (more consumers than partitions would idle).
3. No scale-up while a replica reports its circuit breaker open (the broker is sick, more pods would not
   help) when ``holdOnOpenBreaker``; no move at all while the caller says the count is ``held`` (a pause
   annotation): the recommendation is still reported, but no scale event is recorded and no settle wait
   starts, since nothing changed.
4. Stabilization as the HPA's: the lowest recommendation of the scale-up window and the highest of the
   scale-down window bound the move.
5. Rate limits as the HPA's ``behavior`` policies: the replicas added (removed) within each policy's
   ``periodSeconds`` count against it; ``selectPolicy`` Max takes the policy allowing the biggest change,
   Min the smallest, Disabled forbids that direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from smc_operator.scaling_state import (
    MAX_KEPT,
    LagSample,
    PartitionLag,
    Recommendation,
    SampleTotals,
    ScaleEvent,
    ScalerMemory,
    WorkloadSignals,
    memory_from_status,
    memory_to_status,
)
from smc_operator.spec import AutoscalingSpec, ScalingPolicy

__all__ = [  # the data types live in scaling_state; re-exported for the callers that import them here
    "Decision",
    "LagSample",
    "PartitionLag",
    "ScalerMemory",
    "WorkloadSignals",
    "decide",
    "memory_from_status",
    "memory_to_status",
]


@dataclass(frozen=True, slots=True)
class Decision:
    desired: int
    current: int
    recommended: int  # this poll's recommendation before stabilization and rate limits
    total_lag: int
    partitions: int
    reason: str
    memory: ScalerMemory
    inputs: dict[str, float | int | str | None] = field(default_factory=dict)
    held_by: str | None = None  # "pause" | "breaker" | "settling" | "stabilization" | "policy" | None

    @property
    def changed(self) -> bool:
        return self.desired != self.current

    @property
    def direction(self) -> str:
        if self.desired > self.current:
            return "up"
        if self.desired < self.current:
            return "down"
        return "none"


# The HPA's defaults (k8s.io/api autoscaling/v2 HPAScalingRules).
DEFAULT_SCALE_UP = (
    ScalingPolicy(type="Pods", value=4, period_seconds=15),
    ScalingPolicy(type="Percent", value=100, period_seconds=15),
)
DEFAULT_SCALE_DOWN = (ScalingPolicy(type="Percent", value=100, period_seconds=15),)


def up_rules(policy: AutoscalingSpec) -> tuple[int, str, tuple[ScalingPolicy, ...]]:
    rules = policy.behavior.scale_up
    window = rules.stabilization_window_seconds or 0
    return window, rules.select_policy, tuple(rules.policies or DEFAULT_SCALE_UP)


def down_rules(policy: AutoscalingSpec) -> tuple[int, str, tuple[ScalingPolicy, ...]]:
    rules = policy.behavior.scale_down
    window = rules.stabilization_window_seconds
    if window is None:
        window = policy.scale_down_stabilization_seconds
    return window, rules.select_policy, tuple(rules.policies or DEFAULT_SCALE_DOWN)


def upper_bound(policy: AutoscalingSpec, partitions: int) -> int:
    """maxReplicas, but never more replicas than input partitions (and never below minReplicas)."""
    return max(policy.min_replicas, min(policy.max_replicas, max(partitions, 1)))


def threshold_recommendation(policy: AutoscalingSpec, current: int, total_lag: int) -> tuple[int, str]:
    raw = math.ceil(total_lag / policy.lag_threshold)
    if current > 0:
        ratio = total_lag / (current * policy.lag_threshold)
        if abs(ratio - 1.0) <= policy.tolerance:
            return current, (
                f"lag {total_lag} within {policy.tolerance:.0%} of {current} x {policy.lag_threshold}: keep"
            )
    return raw, f"ceil(lag {total_lag} / threshold {policy.lag_threshold}) = {raw}"


def rate_recommendation(
    policy: AutoscalingSpec, total_lag: int, produce_rate: float, per_replica_rate: float, upper: int
) -> tuple[int, str]:
    """Smallest n whose projected catch-up time lag / (n*R - P) is within the target."""
    lo = max(policy.min_replicas, 1 if (total_lag > 0 or produce_rate > 0) else 0)
    for n in range(lo, upper + 1):
        capacity = n * per_replica_rate - produce_rate
        if total_lag == 0 and capacity >= 0:
            return n, f"no lag; {n} x {per_replica_rate:.1f}/s keeps up with produce {produce_rate:.1f}/s"
        if capacity > 0 and total_lag / capacity <= policy.target_catch_up_seconds:
            eta = total_lag / capacity
            return n, (
                f"catch-up {eta:.1f}s <= {policy.target_catch_up_seconds}s with {n} x "
                f"{per_replica_rate:.1f}/s - produce {produce_rate:.1f}/s"
            )
    return upper, f"target {policy.target_catch_up_seconds}s unreachable within {upper} replicas"


def settled(
    policy: AutoscalingSpec, memory: ScalerMemory, current: int, signals: WorkloadSignals, now: float
) -> tuple[bool, float | None]:
    """Whether consumption runs at steady state (every replica Ready for ``rescaleSettleSeconds``: the
    group has rebalanced and state is restored), and the updated ``ready_since``."""
    if signals.ready is not None and signals.ready < current:
        return False, None
    ready_since = memory.ready_since if memory.ready_since is not None else now
    if signals.ready is None and memory.rescaled_at is None:
        return True, ready_since  # nothing known and nothing changed: trust the measurement
    return now - ready_since >= policy.rescale_settle_seconds, ready_since


def window_rates(
    memory: ScalerMemory,
    sample: LagSample,
    current: int,
    window_s: float,
    *,
    settled_now: bool = True,
    min_span_s: float = 0.0,
) -> tuple[float | None, float | None]:
    """Produce rate over the window; per-replica consume rate over its trailing run of settled samples
    taken at the current replica count, once that run spans ``min_span_s`` (consumers commit in bursts:
    a rate over a second or two is noise). Until then, and while unsettled, the earlier estimate stays."""
    produce, per_replica = memory.produce_rate, memory.per_replica_rate
    horizon = sample.time - window_s
    in_window = [s for s in memory.samples if s.time >= horizon and s.time < sample.time]
    if in_window:
        first = in_window[0]
        produce = max(0, sample.log_end_sum() - first.log_end) / (sample.time - first.time)
    run: list[SampleTotals] = []
    for s in reversed(in_window):
        if not s.settled or s.replicas != current:
            break
        run.append(s)
    if run and current > 0 and settled_now and sample.time - run[-1].time >= min_span_s:
        first = run[-1]
        consumed = max(0, sample.consumed_sum() - first.committed) / (sample.time - first.time)
        if consumed > 0:
            per_replica = consumed / current
    return produce, per_replica


def _push(
    window: tuple[Recommendation, ...], rec: Recommendation, horizon: float
) -> tuple[Recommendation, ...]:
    kept = [r for r in window if r.time > horizon]
    if kept and kept[-1].replicas == rec.replicas:
        kept.pop()
    kept.append(rec)
    return tuple(kept[-MAX_KEPT:])


def _policy_limit(
    policies: tuple[ScalingPolicy, ...],
    select: str,
    current: int,
    events: tuple[ScaleEvent, ...],
    now: float,
    up: bool,
) -> int:
    """The furthest the replica count may move from ``current`` now (the HPA's period accounting)."""
    limits = []
    for pol in policies:
        recent = [e.delta for e in events if e.time > now - pol.period_seconds]
        added = sum(d for d in recent if d > 0)
        removed = -sum(d for d in recent if d < 0)
        start = current - added + removed  # replicas at the start of the period
        if pol.type == "Pods":
            limits.append(start + pol.value if up else start - pol.value)
        elif up:
            limits.append(math.ceil(start * (1 + pol.value / 100)))
        else:
            limits.append(math.floor(start * (1 - pol.value / 100)))
    if up:
        limit = max(limits) if select == "Max" else min(limits)
        return max(limit, current, 1)
    limit = min(limits) if select == "Max" else max(limits)
    return min(max(limit, 0), current)


def _raw_recommendation(
    policy: AutoscalingSpec,
    current: int,
    sample: LagSample,
    rates: tuple[float | None, float | None],
    upper: int,
) -> tuple[int, str]:
    """This poll's recommendation: activation, then the mode's rule, then the bounds."""
    total = sample.total_lag
    produce, per_replica = rates
    active = total > policy.activation_lag_threshold
    if not active and policy.min_replicas == 0:
        raw, why = 0, f"lag {total} <= activation {policy.activation_lag_threshold}: inactive, scale to zero"
    elif policy.mode == "rate" and per_replica is not None and per_replica > 0:
        raw, why = rate_recommendation(policy, total, produce or 0.0, per_replica, upper)
    else:
        raw, why = threshold_recommendation(policy, current, total)
        if policy.mode == "rate":
            why = f"rate unknown yet, threshold rule: {why}"
    if active and raw < 1:
        raw = 1
        why += f"; active (lag {total} > activation {policy.activation_lag_threshold}): at least 1"
    recommended = min(max(raw, policy.min_replicas), upper)
    if recommended != raw:
        why += (
            f", clamped to [{policy.min_replicas}, {upper}]"
            f" (max {policy.max_replicas}, {sample.partition_count} partitions)"
        )
    return recommended, why


def _hold(
    policy: AutoscalingSpec,
    current: int,
    recommended: int,
    memory: ScalerMemory,
    signals: WorkloadSignals,
    is_settled: bool,
) -> tuple[int, str | None, str]:
    """What may enter the stabilization window: ``current`` while a rescale settles (rate mode) or a
    breaker is open and the move is up. Returns (effective recommendation, cause, reason suffix)."""
    if policy.mode == "rate" and memory.rescaled_at is not None and not is_settled and recommended != current:
        return current, "settling", (
            f"; held at {current} while the last rescale settles (ready {signals.ready}/{current},"
            f" then {policy.rescale_settle_seconds}s)"
        )
    if policy.hold_on_open_breaker and signals.breaker_open > 0 and recommended > current:
        why = f"; no scale-up: {signals.breaker_open} replica(s) report the circuit breaker open"
        return current, "breaker", why
    return recommended, None, ""


def _stabilize(
    policy: AutoscalingSpec, current: int, effective: int, memory: ScalerMemory, now: float
) -> tuple[int, tuple[Recommendation, ...], str]:
    """The HPA's windows: the lowest recommendation of the scale-up window and the highest of the
    scale-down window bound the move. Returns (desired, the new window, reason suffix)."""
    up_window, _, _ = up_rules(policy)
    down_window, _, _ = down_rules(policy)
    window = _push(memory.recommendations, Recommendation(now, effective), now - max(up_window, down_window))
    up_floor = min(r.replicas for r in window if r.time > now - up_window or r.time == now)
    down_ceiling = max(r.replicas for r in window if r.time > now - down_window or r.time == now)
    desired = min(max(current, up_floor), down_ceiling)
    if effective > current and desired < effective:
        return desired, window, f"; scale-up held at {desired} by the {up_window}s stabilization window"
    if effective < current and desired > effective:
        return desired, window, f"; scale-down held at {desired} by the {down_window}s stabilization window"
    return desired, window, ""


def _rate_limit(
    policy: AutoscalingSpec, current: int, desired: int, events: tuple[ScaleEvent, ...], now: float
) -> tuple[int, str]:
    """The behavior policies (and selectPolicy Disabled) applied to a move; reason suffix when limited."""
    if desired == current:
        return desired, ""
    up = desired > current
    _, select, policies = up_rules(policy) if up else down_rules(policy)
    word = "scale-up" if up else "scale-down"
    if select == "Disabled":
        return current, f"; {word} disabled (selectPolicy Disabled)"
    limit = _policy_limit(policies, select, current, events, now, up=up)
    if (up and desired > limit) or (not up and desired < limit):
        return limit, f"; {word} limited to {limit} by the behavior policies"
    return desired, ""


def _remember(
    policy: AutoscalingSpec,
    memory: ScalerMemory,
    sample: LagSample,
    current: int,
    desired: int,
    window: tuple[Recommendation, ...],
    rates: tuple[float | None, float | None],
    *,
    settled: bool,
    ready_since: float | None,
) -> ScalerMemory:
    """The memory after this poll: a real move is a scale event and starts a settle wait; the rate
    window gets this poll (at the count that runs from now on)."""
    _, _, up_policies = up_rules(policy)
    _, _, down_policies = down_rules(policy)
    longest_period = max(p.period_seconds for p in (*up_policies, *down_policies))
    now = sample.time
    events = tuple(e for e in memory.events if e.time > now - longest_period)
    rescaled_at = memory.rescaled_at
    if desired != current:
        events += (ScaleEvent(now, desired - current),)
        rescaled_at, ready_since, settled = now, None, False
    elif settled:
        rescaled_at = None
    samples = (
        *(s for s in memory.samples if s.time >= now - policy.rate_window_seconds),
        SampleTotals(now, sample.log_end_sum(), sample.consumed_sum(), desired, settled),
    )[-MAX_KEPT:]
    return replace(
        memory,
        recommendations=window,
        samples=samples,
        events=events,
        produce_rate=rates[0],
        per_replica_rate=rates[1],
        rescaled_at=rescaled_at,
        ready_since=ready_since,
    )


def decide(
    policy: AutoscalingSpec,
    current: int,
    sample: LagSample,
    memory: ScalerMemory,
    signals: WorkloadSignals | None = None,
    *,
    held: bool = False,
) -> Decision:
    """One autoscaling step; ``sample.time`` is "now". ``held``: the replica count is frozen by the
    caller (a pause annotation); the decision then keeps ``current`` and records no scale event."""
    signals = signals or WorkloadSignals()
    now = sample.time
    upper = upper_bound(policy, sample.partition_count)
    is_settled, ready_since = settled(policy, memory, current, signals, now)
    min_span = min(float(policy.rate_window_seconds), max(2 * policy.poll_interval_seconds, 5.0))
    rates = window_rates(
        memory, sample, current, policy.rate_window_seconds, settled_now=is_settled, min_span_s=min_span
    )
    recommended, why = _raw_recommendation(policy, current, sample, rates, upper)
    effective, held_by, note = _hold(policy, current, recommended, memory, signals, is_settled)
    desired, window, stabilized = _stabilize(policy, current, effective, memory, now)
    if held_by is None and stabilized:
        held_by, note = "stabilization", stabilized
    desired, limited = _rate_limit(policy, current, desired, memory.events, now)
    if limited:
        held_by, note = "policy", note + limited
    if held and desired != current:
        held_by, note = "pause", note + f"; held at {current} by a pause annotation (paused: not applied)"
        desired = current
    why += note

    new_memory = _remember(
        policy, memory, sample, current, desired, window, rates, settled=is_settled, ready_since=ready_since
    )
    inputs: dict[str, float | int | str | None] = {
        "mode": policy.mode,
        "total_lag": sample.total_lag,
        "partitions": sample.partition_count,
        "current": current,
        "lag_threshold": policy.lag_threshold,
        "produce_rate": rates[0],
        "per_replica_rate": rates[1],
        "target_catch_up_seconds": policy.target_catch_up_seconds,
        "ready": signals.ready,
        "breaker_open": signals.breaker_open,
        "settled": str(is_settled and desired == current),
        "held_by": held_by,
    }
    total, parts = sample.total_lag, sample.partition_count
    return Decision(desired, current, recommended, total, parts, why, new_memory, inputs, held_by)
