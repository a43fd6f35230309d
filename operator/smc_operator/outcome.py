"""What the handlers remember per CR, and how a reconcile's outcome is reported: status, events, metrics
and one structured log line. Shared by the kopf reconcile handler and the periodic full reconcile so both
report a problem, a success, a repair or a pause the same way."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from smc_operator import kube, metrics
from smc_operator.plan import Pause, Problem, pause_of
from smc_operator.reconcile import Applied
from smc_operator.render import Owner
from smc_operator.scaling import ScalerMemory
from smc_operator.status import (
    Condition,
    health_conditions,
    merge_conditions,
    paused_condition,
    workload_state,
    workload_status,
)

RESYNC_ENV = "SMC_OPERATOR_RESYNC_SECONDS"
DEFAULT_RESYNC_S = 120.0

log = logging.getLogger("smc_operator")


@dataclass
class Memory:
    """Per-CR in-process state (lost on restart; what must survive lives in status)."""

    next_poll: float = 0.0
    failures: int = 0
    reported_problem: tuple[str, str] | None = None
    reconcile_problem: tuple[str, str] | None = None
    scaler: ScalerMemory | None = None
    converging: bool = False  # last status written said Deploying/Scaling: refresh it between polls
    next_resync: float = 0.0
    pause_seen: Pause | None = None
    # The kopf handler and the periodic reconcile run in different threads: one reconcile at a time, so
    # a resync holding an older spec can never apply it after the handler applied a newer one.
    lock: threading.Lock = field(default_factory=threading.Lock)


def log_event(event: str, namespace: str, name: str, **context: Any) -> None:
    """One structured log line (fields become JSON keys with ``--log-format=json``)."""
    fields = {"event": event, "resource": f"{namespace}/{name}", **context}
    log.info("%s %s", event, json.dumps(context, default=str, sort_keys=True), extra={"smc": fields})


def resync_interval() -> float:
    """Seconds between full reconciles of each CR (``$SMC_OPERATOR_RESYNC_SECONDS``, default 120)."""
    return max(1.0, float(os.environ.get(RESYNC_ENV, DEFAULT_RESYNC_S)))


def pause_from(meta: Mapping[str, Any]) -> Pause:
    found = pause_of(meta.get("annotations"))
    return found if isinstance(found, Pause) else Pause()  # an invalid annotation: reconcile reports it


def paused_of(pause: Pause) -> Condition:
    return paused_condition(pause.reason, pause.describe())


def report_failure(owner: Owner, problem: Problem, status: Any, meta: Any, body: Any, mem: Memory) -> None:
    """The one failure path of a reconcile: Degraded in status, a Warning event, a metric, a log line."""
    mem.reconcile_problem = (problem.reason, problem.message)
    now = time.time()
    workload = workload_state(None, int(status.get("desiredReplicas") or 0))
    conditions = merge_conditions(
        list(status.get("conditions") or []),
        [*health_conditions(workload, (problem.reason, problem.message)), paused_of(pause_from(meta))],
        now=now,
        generation=meta.get("generation"),
    )
    kube.patch_status(owner.namespace, owner.name, {"phase": "Degraded", "conditions": conditions})
    kopf.warn(body, reason=problem.reason, message=problem.message)
    metrics.count(metrics.ERRORS, owner.namespace, owner.name, problem.reason)
    result = "invalid" if problem.permanent else "retry"
    metrics.count(metrics.RECONCILES, owner.namespace, owner.name, result)
    log_event(
        "degraded", namespace=owner.namespace, name=owner.name, reason=problem.reason, message=problem.message
    )


def report_success(
    owner: Owner, applied: Applied, status: Any, meta: Any, body: Any, mem: Memory, *, routine: bool = False
) -> None:
    """Status after an apply (or a paused no-op). ``routine`` (a periodic reconcile): the log line only
    when something was repaired, so an idle fleet does not log every CR every interval."""
    mem.reconcile_problem = None
    planned, rendered = applied.plan, applied.plan.rendered
    generation = meta.get("generation") if rendered is not None else None
    patch: dict[str, Any] = workload_status(
        applied.workload,
        planned.desired,
        mem.reported_problem,
        status,
        now=time.time(),
        generation=generation,
        scaling=False,
        paused=paused_of(planned.pause),
    )
    if rendered is not None:
        patch.update(
            observedGeneration=generation,
            selector=rendered.selector_string(),
            configHash=rendered.config_hash,
            processorId=f"{owner.name}-<ordinal>",
        )
    kube.patch_status(owner.namespace, owner.name, patch)
    metrics.count(metrics.RECONCILES, owner.namespace, owner.name, "paused" if rendered is None else "ok")
    metrics.DESIRED_REPLICAS.labels(owner.namespace, owner.name).set(planned.desired)
    if applied.repaired:
        kopf.warn(body, reason="Repaired", message="; ".join(applied.repaired))
    if routine and not applied.repaired:
        return
    summary = planned.pause.describe() if rendered is None else f"applied config {rendered.config_hash}"
    log_event(
        "reconciled",
        namespace=owner.namespace,
        name=owner.name,
        summary=summary,
        desired=planned.desired,
        repaired=applied.repaired,
        generation=generation,
    )


def report_missing_workload(
    name: str, namespace: str, status: dict[str, Any], pause: Pause, mem: Memory, now: float
) -> None:
    """Not Ready, Degraded ``WorkloadMissing`` until the next full reconcile recreates the StatefulSet."""
    missing = ("WorkloadMissing", f"StatefulSet {name!r} not found; the next full reconcile recreates it")
    problem = mem.reconcile_problem or missing
    desired = int(status.get("desiredReplicas") or 0)
    patch = workload_status(
        None,
        desired,
        problem,
        status,
        now=now,
        generation=None,
        scaling=False,
        paused=paused_of(pause),
    )
    kube.patch_status(namespace, name, patch)
    mem.reported_problem = problem


def announce_problem(
    name: str, namespace: str, problem: tuple[str, str] | None, body: Any, mem: Memory
) -> None:
    """An event and a log line when the reported problem changes (appears, changes or clears)."""
    if problem == mem.reported_problem:
        return
    if problem is not None:
        kopf.warn(body, reason=problem[0], message=problem[1])
        log_event("degraded", namespace=namespace, name=name, reason=problem[0], message=problem[1])
    else:
        kopf.info(body, reason="Recovered", message="problems cleared")
    mem.reported_problem = problem
