"""The scaler's data: what a lag poll saw, what the pods say, and the memory carried between polls
(kept in ``status.autoscaler`` so an operator restart resumes the windows). Pure data and its status
(de)serialisation; the decision itself lives in ``scaling``."""

from __future__ import annotations

from dataclasses import dataclass

# Status lists are bounded (the CRD's maxItems is 4096): a window longer than this many polls keeps the
# newest MAX_KEPT entries (pollIntervalSeconds 0.5 with a 3600 s window: the newest 4000 polls, ~33 minutes).
MAX_KEPT = 4000


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
