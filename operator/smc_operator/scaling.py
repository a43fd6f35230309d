"""Consumer lag -> desired replica count, pure (time is an argument, never read from a clock).

Two modes share the same bounds, activation and stabilization:

* ``threshold`` (KEDA Kafka scaler compatible): ``desired = ceil(totalLag / lagThreshold)``.
  Inside the tolerance band (``|totalLag / (current * lagThreshold) - 1| <= tolerance``) nothing changes.
* ``rate``: with ``P`` the produce rate and ``R`` the measured consume rate per replica (both from
  offset deltas between polls), the smallest ``n`` with ``n*R > P`` and
  ``totalLag / (n*R - P) <= targetCatchUpSeconds`` (with no lag: the smallest ``n`` with ``n*R >= P``).
  Until ``R`` is measurable it falls back to ``threshold``.

Then: at or below ``activationLagThreshold`` the recommendation is ``minReplicas``; it is clamped to
``[minReplicas, min(maxReplicas, partitions)]`` (more consumers than partitions would idle). Scale-up
applies at once; scale-down applies the highest recommendation of the last
``scaleDownStabilizationSeconds`` (HPA behaviour), so a brief dip does not shed replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from smc_operator.spec import AutoscalingSpec


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
    """What the rate estimate needs of the previous poll (small enough to keep in status)."""

    time: float
    log_end: int
    committed: int
    replicas: int


@dataclass(frozen=True, slots=True)
class Recommendation:
    time: float
    replicas: int


@dataclass(frozen=True, slots=True)
class ScalerMemory:
    """State carried between polls. Kept in ``status.autoscaler`` so a restart resumes the window.

    ``recommendations`` is a monotonic queue: each entry is higher than every later one, so its head is
    the maximum of the stabilization window and it stays short.
    """

    recommendations: tuple[Recommendation, ...] = ()
    last_sample: SampleTotals | None = None
    produce_rate: float | None = None
    per_replica_rate: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    desired: int
    current: int
    recommended: int  # this poll's recommendation before stabilization
    total_lag: int
    partitions: int
    reason: str
    memory: ScalerMemory
    inputs: dict[str, float | int | str | None] = field(default_factory=dict)

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


def _rates(memory: ScalerMemory, sample: LagSample) -> tuple[float | None, float | None]:
    """Produce rate and per-replica consume rate from the offset deltas since the previous poll."""
    prev = memory.last_sample
    produce, per_replica = memory.produce_rate, memory.per_replica_rate
    if prev is None or sample.time <= prev.time:
        return produce, per_replica
    dt = sample.time - prev.time
    produce = max(0, sample.log_end_sum() - prev.log_end) / dt
    consumed = max(0, sample.consumed_sum() - prev.committed) / dt
    if prev.replicas > 0 and consumed > 0:
        per_replica = consumed / prev.replicas
    return produce, per_replica


def _push(
    window: tuple[Recommendation, ...], rec: Recommendation, horizon: float
) -> tuple[Recommendation, ...]:
    kept = [r for r in window if r.time > horizon]
    while kept and kept[-1].replicas <= rec.replicas:
        kept.pop()
    kept.append(rec)
    return tuple(kept)


def decide(policy: AutoscalingSpec, current: int, sample: LagSample, memory: ScalerMemory) -> Decision:
    """One autoscaling step; ``sample.time`` is "now"."""
    now = sample.time
    total = sample.total_lag
    upper = upper_bound(policy, sample.partition_count)
    produce, per_replica = _rates(memory, sample)

    if total <= policy.activation_lag_threshold and not (policy.mode == "rate" and (produce or 0) > 0):
        raw, why = (
            policy.min_replicas,
            f"lag {total} <= activation {policy.activation_lag_threshold}: minReplicas",
        )
    elif policy.mode == "rate" and per_replica is not None and per_replica > 0:
        raw, why = rate_recommendation(policy, total, produce or 0.0, per_replica, upper)
    else:
        raw, why = threshold_recommendation(policy, current, total)
        if policy.mode == "rate":
            why = f"rate unknown yet, threshold rule: {why}"

    recommended = min(max(raw, policy.min_replicas), upper)
    if recommended != raw:
        why += (
            f", clamped to [{policy.min_replicas}, {upper}]"
            f" (max {policy.max_replicas}, {sample.partition_count} partitions)"
        )

    horizon = now - policy.scale_down_stabilization_seconds
    window = _push(memory.recommendations, Recommendation(now, recommended), horizon)
    if recommended >= current:
        desired = recommended
    else:
        desired = min(current, window[0].replicas)
        if desired > recommended:
            why += (
                f"; scale-down held at {desired} by the {policy.scale_down_stabilization_seconds}s"
                " stabilization window"
            )

    new_memory = replace(
        memory,
        recommendations=window,
        last_sample=SampleTotals(now, sample.log_end_sum(), sample.consumed_sum(), desired),
        produce_rate=produce,
        per_replica_rate=per_replica,
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
    }
    return Decision(desired, current, recommended, total, sample.partition_count, why, new_memory, inputs)


def memory_to_status(memory: ScalerMemory) -> dict[str, object]:
    out: dict[str, object] = {
        "recommendations": [{"time": r.time, "replicas": r.replicas} for r in memory.recommendations],
    }
    if memory.last_sample is not None:
        s = memory.last_sample
        out["lastSample"] = {
            "time": s.time,
            "logEnd": s.log_end,
            "committed": s.committed,
            "replicas": s.replicas,
        }
    if memory.produce_rate is not None:
        out["produceRate"] = memory.produce_rate
    if memory.per_replica_rate is not None:
        out["perReplicaRate"] = memory.per_replica_rate
    return out


def memory_from_status(raw: object) -> ScalerMemory:
    """Inverse of ``memory_to_status``; anything malformed is forgotten rather than trusted."""
    if not isinstance(raw, dict):
        return ScalerMemory()
    recs = []
    for item in raw.get("recommendations") or []:
        if isinstance(item, dict) and isinstance(item.get("replicas"), int):
            recs.append(Recommendation(float(item.get("time", 0.0)), int(item["replicas"])))
    sample = None
    last = raw.get("lastSample")
    if isinstance(last, dict) and all(k in last for k in ("time", "logEnd", "committed", "replicas")):
        sample = SampleTotals(
            float(last["time"]), int(last["logEnd"]), int(last["committed"]), int(last["replicas"])
        )
    produce = raw.get("produceRate")
    per_replica = raw.get("perReplicaRate")
    return ScalerMemory(
        recommendations=tuple(recs),
        last_sample=sample,
        produce_rate=float(produce) if isinstance(produce, int | float) else None,
        per_replica_rate=float(per_replica) if isinstance(per_replica, int | float) else None,
    )
