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
   help) when ``holdOnOpenBreaker``.
4. Stabilization as the HPA's: the lowest recommendation of the scale-up window and the highest of the
   scale-down window bound the move.
5. Rate limits as the HPA's ``behavior`` policies: the replicas added (removed) within each policy's
   ``periodSeconds`` count against it; ``selectPolicy`` Max takes the policy allowing the biggest change,
   Min the smallest, Disabled forbids that direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from smc_operator.spec import AutoscalingSpec, ScalingPolicy


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    log_end: int
    committed: int | None  # None: the group has no committed offset for this partition
    log_start: int = 0

    @property
    def lag(self) -> int:
        """Records the group still has to read (from the log start when it never committed)."""
        position = self.log_start if self.committed is None else max(self.committed, self.log_start)
        return max(0, self.log_end - position)

    @property
    def consumed(self) -> int:
        return self.log_start if self.committed is None else self.committed


@dataclass(frozen=True, slots=True)
class LagSample:
    """Offsets of every input partition at one instant."""

    time: float
    partitions: tuple[PartitionLag, ...]

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def partition_count(self) -> int:
        return len(self.partitions)

    def per_topic(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.partitions:
            out[p.topic] = out.get(p.topic, 0) + p.lag
        return out

    def log_end_sum(self) -> int:
        return sum(p.log_end for p in self.partitions)

    def consumed_sum(self) -> int:
        return sum(p.consumed for p in self.partitions)


@dataclass(frozen=True, slots=True)
class SampleTotals:
    """One poll as the rate estimate needs it (small enough to keep a window of them in status).

    ``replicas``: the count that runs from this poll on; ``settled``: the workload had settled when taken.
    """

    time: float
    log_end: int
    committed: int
    replicas: int
    settled: bool = True


@dataclass(frozen=True, slots=True)
class Recommendation:
    time: float
    replicas: int


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """A replica change the operator made (``delta`` > 0 added), counted against the rate-limit policies."""

    time: float
    delta: int


@dataclass(frozen=True, slots=True)
class WorkloadSignals:
    """What the pods say (read by the handler): Ready replicas, and how many report the breaker open.
    ``None``: not known (treated as all Ready, breaker closed)."""

    ready: int | None = None
    breaker_open: int = 0


@dataclass(frozen=True, slots=True)
class ScalerMemory:
    """State carried between polls. Kept in ``status.autoscaler`` so a restart resumes the windows.

    ``recommendations``: the recommendations of the longest stabilization window (consecutive equal
    values keep only the newest: the older one can never be the only one in a window). ``samples``: the
    rate window. ``ready_since``: when every replica was first seen Ready after the last rescale.
    """

    recommendations: tuple[Recommendation, ...] = ()
    samples: tuple[SampleTotals, ...] = ()
    events: tuple[ScaleEvent, ...] = ()
    produce_rate: float | None = None
    per_replica_rate: float | None = None
    rescaled_at: float | None = None
    ready_since: float | None = None

    @property
    def last_sample(self) -> SampleTotals | None:
        return self.samples[-1] if self.samples else None


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
    held_by: str | None = None  # "breaker" | "settling" | "stabilization" | "policy" | None

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


# Status lists are bounded (the CRD's maxItems is 4096): a window longer than this many polls keeps the
# newest MAX_KEPT entries (pollIntervalSeconds 0.5 with a 3600 s window: the newest 4000 polls, ~33 minutes).
MAX_KEPT = 4000

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


def decide(
    policy: AutoscalingSpec,
    current: int,
    sample: LagSample,
    memory: ScalerMemory,
    signals: WorkloadSignals | None = None,
) -> Decision:
    """One autoscaling step; ``sample.time`` is "now"."""
    signals = signals or WorkloadSignals()
    now = sample.time
    total = sample.total_lag
    upper = upper_bound(policy, sample.partition_count)
    is_settled, ready_since = settled(policy, memory, current, signals, now)
    min_span = min(float(policy.rate_window_seconds), max(2 * policy.poll_interval_seconds, 5.0))
    produce, per_replica = window_rates(
        memory, sample, current, policy.rate_window_seconds, settled_now=is_settled, min_span_s=min_span
    )
    active = total > policy.activation_lag_threshold
    held_by: str | None = None

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
    if policy.mode == "rate" and memory.rescaled_at is not None and not is_settled and recommended != current:
        held_by = "settling"
        why += (
            f"; held at {current} while the last rescale settles (ready {signals.ready}/{current},"
            f" then {policy.rescale_settle_seconds}s)"
        )
        recommended_effective = current
    elif policy.hold_on_open_breaker and signals.breaker_open > 0 and recommended > current:
        held_by = "breaker"
        why += f"; no scale-up: {signals.breaker_open} replica(s) report the circuit breaker open"
        recommended_effective = current
    else:
        recommended_effective = recommended

    up_window, up_select, up_policies = up_rules(policy)
    down_window, down_select, down_policies = down_rules(policy)
    horizon = now - max(up_window, down_window)
    window = _push(memory.recommendations, Recommendation(now, recommended_effective), horizon)
    up_floor = min(r.replicas for r in window if r.time > now - up_window or r.time == now)
    down_ceiling = max(r.replicas for r in window if r.time > now - down_window or r.time == now)
    desired = current
    if desired < up_floor:
        desired = up_floor
    if desired > down_ceiling:
        desired = down_ceiling
    if recommended_effective > current and desired < recommended_effective and held_by is None:
        held_by = "stabilization"
        why += f"; scale-up held at {desired} by the {up_window}s stabilization window"
    if recommended_effective < current and desired > recommended_effective and held_by is None:
        held_by = "stabilization"
        why += f"; scale-down held at {desired} by the {down_window}s stabilization window"

    if desired > current:
        if up_select == "Disabled":
            desired, held_by = current, "policy"
            why += "; scale-up disabled (selectPolicy Disabled)"
        else:
            limit = _policy_limit(up_policies, up_select, current, memory.events, now, up=True)
            if desired > limit:
                desired, held_by = limit, "policy"
                why += f"; scale-up limited to {limit} by the behavior policies"
    elif desired < current:
        if down_select == "Disabled":
            desired, held_by = current, "policy"
            why += "; scale-down disabled (selectPolicy Disabled)"
        else:
            limit = _policy_limit(down_policies, down_select, current, memory.events, now, up=False)
            if desired < limit:
                desired, held_by = limit, "policy"
                why += f"; scale-down limited to {limit} by the behavior policies"

    longest_period = max(p.period_seconds for p in (*up_policies, *down_policies))
    events = tuple(e for e in memory.events if e.time > now - longest_period)
    rescaled_at = memory.rescaled_at
    if desired != current:
        events += (ScaleEvent(now, desired - current),)
        rescaled_at, ready_since, is_settled = now, None, False
    elif is_settled:
        rescaled_at = None
    samples = (
        *(s for s in memory.samples if s.time >= now - policy.rate_window_seconds),
        SampleTotals(now, sample.log_end_sum(), sample.consumed_sum(), desired, is_settled),
    )[-MAX_KEPT:]
    new_memory = replace(
        memory,
        recommendations=window,
        samples=samples,
        events=events,
        produce_rate=produce,
        per_replica_rate=per_replica,
        rescaled_at=rescaled_at,
        ready_since=ready_since,
    )
    inputs: dict[str, float | int | str | None] = {
        "mode": policy.mode,
        "total_lag": total,
        "partitions": sample.partition_count,
        "current": current,
        "lag_threshold": policy.lag_threshold,
        "produce_rate": produce,
        "per_replica_rate": per_replica,
        "target_catch_up_seconds": policy.target_catch_up_seconds,
        "ready": signals.ready,
        "breaker_open": signals.breaker_open,
        "settled": str(is_settled),
        "held_by": held_by,
    }
    return Decision(
        desired, current, recommended, total, sample.partition_count, why, new_memory, inputs, held_by
    )


def memory_to_status(memory: ScalerMemory) -> dict[str, object]:
    out: dict[str, object] = {
        "recommendations": [{"time": r.time, "replicas": r.replicas} for r in memory.recommendations],
        "samples": [
            {
                "time": s.time,
                "logEnd": s.log_end,
                "committed": s.committed,
                "replicas": s.replicas,
                "settled": s.settled,
            }
            for s in memory.samples
        ],
        "scaleEvents": [{"time": e.time, "delta": e.delta} for e in memory.events],
    }
    if memory.produce_rate is not None:
        out["produceRate"] = memory.produce_rate
    if memory.per_replica_rate is not None:
        out["perReplicaRate"] = memory.per_replica_rate
    if memory.rescaled_at is not None:
        out["rescaledAt"] = memory.rescaled_at
    if memory.ready_since is not None:
        out["readySince"] = memory.ready_since
    return out


def _number(raw: object) -> float | None:
    return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None


def memory_from_status(raw: object) -> ScalerMemory:
    """Inverse of ``memory_to_status``; anything malformed is forgotten rather than trusted."""
    if not isinstance(raw, dict):
        return ScalerMemory()
    recs = []
    for item in raw.get("recommendations") or []:
        if isinstance(item, dict) and isinstance(item.get("replicas"), int):
            recs.append(Recommendation(float(item.get("time", 0.0)), int(item["replicas"])))
    samples = []
    for item in raw.get("samples") or []:
        if isinstance(item, dict) and all(k in item for k in ("time", "logEnd", "committed", "replicas")):
            samples.append(
                SampleTotals(
                    float(item["time"]),
                    int(item["logEnd"]),
                    int(item["committed"]),
                    int(item["replicas"]),
                    bool(item.get("settled", True)),
                )
            )
    events = []
    for item in raw.get("scaleEvents") or []:
        if isinstance(item, dict) and isinstance(item.get("delta"), int):
            events.append(ScaleEvent(float(item.get("time", 0.0)), int(item["delta"])))
    return ScalerMemory(
        recommendations=tuple(recs),
        samples=tuple(samples),
        events=tuple(events),
        produce_rate=_number(raw.get("produceRate")),
        per_replica_rate=_number(raw.get("perReplicaRate")),
        rescaled_at=_number(raw.get("rescaledAt")),
        ready_since=_number(raw.get("readySince")),
    )
