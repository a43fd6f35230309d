"""Status and conditions of a StreamProcessor, pure (the caller passes ``now``).

Follows the Kubernetes API conventions: ``observedGeneration``; conditions ``Ready``, ``Progressing``
and ``Degraded`` with ``reason``/``message``/``lastTransitionTime`` (the time only moves when the
condition's status flips, so tools like Argo CD see real transitions); ``phase`` is a one-word summary
for ``kubectl get``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
PAUSED = "Paused"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


def merge_conditions(
    existing: list[dict[str, Any]] | None, updates: list[Condition], *, now: float, generation: int | None
) -> list[dict[str, Any]]:
    """Apply updates by type; keep ``lastTransitionTime`` unless the status flips."""
    by_type = {c.get("type"): dict(c) for c in existing or [] if isinstance(c, dict)}
    for cond in updates:
        status = "True" if cond.status else "False"
        old = by_type.get(cond.type)
        changed = old is None or old.get("status") != status
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": status,
            "reason": cond.reason,
            "message": cond.message[:4000],
            "lastTransitionTime": iso(now)
            if changed or old is None
            else old.get("lastTransitionTime", iso(now)),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        by_type[cond.type] = entry
    order = {READY: 0, PROGRESSING: 1, DEGRADED: 2, PAUSED: 3}
    return sorted(by_type.values(), key=lambda c: (order.get(str(c.get("type")), 9), str(c.get("type"))))


@dataclass(frozen=True, slots=True)
class WorkloadState:
    """What the StatefulSet reports."""

    desired: int
    replicas: int
    ready: int
    updated: int
    rolled_out: bool  # the controller has observed the latest template and updated every pod


def health_conditions(workload: WorkloadState, problem: tuple[str, str] | None) -> list[Condition]:
    """Ready/Progressing/Degraded from the workload and the last problem (reason, message), if any."""
    ready = workload.ready >= workload.desired
    ready_msg = f"{workload.ready}/{workload.desired} replicas ready"
    progressing = not ready or not workload.rolled_out
    conditions = [
        Condition(
            READY, ready and problem is None, "ReplicasReady" if ready else "ReplicasNotReady", ready_msg
        ),
        Condition(
            PROGRESSING,
            progressing,
            "RollingOut" if progressing else "Stable",
            f"{workload.updated}/{workload.desired} replicas updated, {ready_msg}",
        ),
    ]
    if problem is None:
        conditions.append(Condition(DEGRADED, False, "Healthy", "no problems observed"))
    else:
        conditions.append(Condition(DEGRADED, True, problem[0], problem[1]))
    return conditions


def paused_condition(reason: str | None, message: str) -> Condition:
    """``Paused``: True with ``reason`` while a pause annotation holds, else False/NotPaused."""
    return Condition(PAUSED, reason is not None, reason or "NotPaused", message)


def workload_status(
    workload: dict[str, Any] | None,
    desired: int,
    problem: tuple[str, str] | None,
    status: Mapping[str, Any],
    *,
    now: float,
    generation: int | None,
    scaling: bool,
    paused: Condition | None = None,
) -> dict[str, Any]:
    """The status fields that follow the workload: replica counts, phase and health conditions."""
    state = workload_state(workload, desired)
    updates = health_conditions(state, problem) + ([paused] if paused is not None else [])
    return {
        "desiredReplicas": desired,
        "replicas": state.replicas,
        "readyReplicas": state.ready,
        "phase": phase_of(state, problem, scaling=scaling),
        "conditions": merge_conditions(
            list(status.get("conditions") or []), updates, now=now, generation=generation
        ),
    }


def phase_of(workload: WorkloadState, problem: tuple[str, str] | None, scaling: bool) -> str:
    if problem is not None:
        return "Degraded"
    if scaling:
        return "Scaling"
    if workload.desired > 0 and workload.ready >= workload.desired and workload.rolled_out:
        return "Running"
    if workload.desired == 0 and workload.replicas == 0:
        return "Running"
    return "Deploying"


def workload_state(sts: dict[str, Any] | None, desired: int) -> WorkloadState:
    """Read a StatefulSet dict (as the API returns it); a missing one is an empty workload."""
    if not sts:
        return WorkloadState(desired, 0, 0, 0, rolled_out=False)
    status = sts.get("status") or {}
    meta = sts.get("metadata") or {}
    replicas = int(status.get("replicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    current_rev = status.get("currentRevision")
    update_rev = status.get("updateRevision")
    same_rev = current_rev is None or update_rev is None or current_rev == update_rev
    return WorkloadState(
        desired=desired,
        replicas=replicas,
        ready=int(status.get("readyReplicas") or 0),
        updated=updated,
        rolled_out=observed and same_rev and updated >= desired,
    )


def lag_status(total: int, per_topic: dict[str, int], partitions: int, now: float) -> dict[str, Any]:
    return {
        "total": total,
        "partitions": partitions,
        "perTopic": dict(sorted(per_topic.items())),
        "observedTime": iso(now),
    }
