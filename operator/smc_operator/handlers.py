"""kopf handlers: thin. They read the CR, call the pure cores (plan, render, scaling, status) and the
adapters (reconcile, kube, lag), and report what happened in status, events, logs and metrics.

* ``reconcile`` (create/update/resume): ``reconcile_once`` observes the children, ``plan`` decides
  (children, replicas, pause, refusals) and the apply step carries it out with server-side apply. While
  autoscaling is on, ``replicas`` is left out of the applied template and set only by the autoscaler's
  own field manager, so re-applying the CR never fights the scaler.
* ``poll_loop`` (a daemon per CR): ``poll`` reads consumer lag, decides replicas (autoscaling on, unless a
  pause annotation holds them) and refreshes status; ``resync`` is the periodic full reconcile that
  repairs deleted or edited children. While the pods
  roll out or scale (phase Deploying/Scaling), the workload part of status (ready replicas, phase,
  conditions) is also refreshed every ``CONVERGING_REFRESH_S`` between polls, so ``kubectl get sp`` turns
  Running within seconds of the last pod passing its readiness probe, not a whole poll interval later.
Failures set ``Degraded`` and retry with backoff; one CR's trouble never blocks the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from smc_operator import kube, metrics
from smc_operator.crd import GROUP, PLURAL, VERSION
from smc_operator.credentials import kafka_client_config
from smc_operator.lag import LagError, LagReader
from smc_operator.outcome import (
    Memory,
    announce_problem,
    log_event,
    pause_from,
    paused_of,
    report_failure,
    report_missing_workload,
    report_success,
    resync_interval,
)
from smc_operator.plan import Pause, Problem
from smc_operator.reconcile import reconcile_once
from smc_operator.render import Owner
from smc_operator.scaling import LagSample, decide, memory_from_status, memory_to_status
from smc_operator.signals import workload_signals
from smc_operator.spec import StreamProcessorSpec, parse_spec
from smc_operator.status import iso, lag_status, workload_status

MAX_BACKOFF_S = 120.0
PAUSE_CHECK_S = 1.0  # how soon the poll loop notices a pause annotation change
CONVERGING_REFRESH_S = 2.0
CONVERGING_PHASES = frozenset({"Deploying", "Scaling"})

log = logging.getLogger("smc_operator")
_lag_reader = LagReader()
_Memory = Memory  # the name the unit tests use


def _memory(memo: Any) -> Memory:
    found = getattr(memo, "smc", None)
    if not isinstance(found, Memory):
        found = Memory()
        memo.smc = found
    return found


def _backoff(attempt: int, base: float = 2.0) -> float:
    return float(min(MAX_BACKOFF_S, base * (2 ** min(attempt, 10))))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.execution.max_workers = 16
    kube.load()


@kopf.on.probe(id="alive")
def alive(**_: Any) -> float:
    return time.time()


# --- reconcile ------------------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def reconcile(
    name: str,
    namespace: str | None,
    uid: str,
    spec: Any,
    status: Any,
    meta: Any,
    body: Any,
    memo: Any,
    retry: int,
    **_: Any,
) -> None:
    """Plan and apply the children; a problem is reported, then retried with backoff (or not at all)."""
    assert namespace is not None  # a namespaced resource
    owner, mem = Owner(name, namespace, uid), _memory(memo)
    with mem.lock:
        outcome = reconcile_once(owner, spec, status, meta.get("annotations") or {})
    if isinstance(outcome, Problem):
        report_failure(owner, outcome, status, meta, body, mem)
        if outcome.permanent:
            raise kopf.PermanentError(f"{outcome.reason}: {outcome.message}")
        raise kopf.TemporaryError(outcome.message, delay=_backoff(retry))
    report_success(owner, outcome, status, meta, body, mem)
    if outcome.plan.rendered is not None:
        message = f"applied config {outcome.plan.rendered.config_hash}, {outcome.plan.desired} replica(s)"
        kopf.info(body, reason="Reconciled", message=message)


def resync(owner: Owner, spec: Any, status: Any, meta: Any, body: Any, mem: Memory) -> None:
    """The periodic full reconcile (and the one a pause annotation change triggers): repairs deleted or
    edited children and reports each repair as an event. Skipped until the first reconcile succeeded, so
    it never races the create handler's own retries. ``spec``/``status``/``meta`` are kopf's live views,
    read only once the lock is held (the latest spec wins)."""
    with mem.lock:
        mem.next_resync = time.time() + resync_interval()
        pause = pause_from(meta)
        pause_changed, mem.pause_seen = pause != mem.pause_seen, pause
        status = dict(status)
        if not status.get("configHash") and not pause_changed:
            return
        meta = dict(meta)
        outcome = reconcile_once(owner, dict(spec), status, meta.get("annotations") or {})
    if isinstance(outcome, Problem):
        report_failure(owner, outcome, status, meta, body, mem)
        return
    report_success(owner, outcome, status, meta, body, mem, routine=not pause_changed)
    if pause_changed:
        kopf.info(body, reason="Paused" if pause.active else "Resumed", message=pause.describe())


# --- lag poll and autoscaling -------------------------------------------------------------------------


@kopf.daemon(GROUP, VERSION, PLURAL, id="poll", cancellation_timeout=10.0)
async def poll_loop(
    name: str,
    namespace: str | None,
    uid: str,
    spec: Any,
    status: Any,
    meta: Any,
    body: Any,
    memo: Any,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """One loop per CR (``spec``/``status``/``meta`` are live views): the lag poll every
    ``autoscaling.pollIntervalSeconds``, the full reconcile every ``resync_interval()`` or as soon as a
    pause annotation changes (checked every ``PAUSE_CHECK_S``; kopf's own diffs ignore annotations under
    its storage prefix, which is our group), and status refreshes while the workload converges.

    A daemon rather than a timer: the interval is per CR, and the blocking Kafka/API calls run in a
    worker thread so a slow broker delays only this CR.
    """
    assert namespace is not None  # a namespaced resource
    mem = _memory(memo)
    owner = Owner(name, namespace, uid)
    mem.pause_seen, mem.next_resync = pause_from(meta), time.time() + resync_interval()
    while not stopped:
        if time.time() >= mem.next_resync or pause_from(meta) != mem.pause_seen:
            await _in_thread("ResyncFailed", owner, resync, owner, spec, status, meta, body, mem)
        if time.time() >= mem.next_poll:
            args = (name, namespace, dict(spec), dict(status), dict(meta), body, mem)
            if not await _in_thread("PollFailed", owner, poll, *args):  # one bad poll must not end the loop
                mem.next_poll = time.time() + _backoff(mem.failures + 1, base=1.0)
        elif mem.converging:
            refresh = (name, namespace, dict(status), dict(meta), mem)
            if not await _in_thread("StatusRefreshFailed", owner, refresh_workload_status, *refresh):
                mem.converging = False  # the next poll writes status anyway
        wake = min(next_wake(mem, time.time()), mem.next_resync, time.time() + PAUSE_CHECK_S)
        await stopped.wait(max(0.1, wake - time.time()))


async def _in_thread(failure: str, owner: Owner, fn: Callable[..., None], *args: Any) -> bool:
    """Run one blocking step in a worker thread; a failure is counted and logged, never raised (the loop
    must outlive it). False when it failed."""
    try:
        await asyncio.to_thread(fn, *args)
    except Exception as exc:
        metrics.count(metrics.ERRORS, owner.namespace, owner.name, failure)
        log.exception("%s for %s/%s: %s", failure, owner.namespace, owner.name, exc)
        return False
    return True


def next_wake(mem: Memory, now: float) -> float:
    """The next poll, or sooner while the workload converges (status refresh only)."""
    return min(mem.next_poll, now + CONVERGING_REFRESH_S) if mem.converging else mem.next_poll


def refresh_workload_status(
    name: str, namespace: str, status: dict[str, Any], meta: dict[str, Any], mem: Memory
) -> None:
    """Between polls: re-read the StatefulSet and rewrite replicas, phase and conditions (no lag read, no
    scaling decision; ``desiredReplicas`` and the last problem stay what the last poll decided)."""
    sts = kube.get("apps/v1", "StatefulSet", namespace, name)
    if sts is None or status.get("desiredReplicas") is None:
        mem.converging = False
        return
    problem = mem.reconcile_problem or mem.reported_problem
    generation = meta.get("generation") if mem.reconcile_problem is None else None
    patch = workload_status(
        sts,
        int(status["desiredReplicas"]),
        problem,
        status,
        now=time.time(),
        generation=generation,
        scaling=False,
        paused=paused_of(pause_from(meta)),
    )
    mem.converging = patch["phase"] in CONVERGING_PHASES
    kube.patch_status(namespace, name, patch)


@dataclass
class _PollResult:
    """What one poll decided: replicas, the problem it met, whether it scaled, status fields to add."""

    desired: int
    problem: tuple[str, str] | None = None
    scaling: bool = False
    patch: dict[str, Any] = field(default_factory=dict)
    breaker_open: int | None = None  # replicas reporting an open breaker (None: not asked)
    held_by: str | None = None  # what held the scaler's recommendation, for metrics
    scaled: str | None = None  # "up" / "down" when this poll changed the replicas


@dataclass(frozen=True)
class _Poll:
    """What one poll of one CR decides from (read once at the start of ``poll``)."""

    name: str
    namespace: str
    parsed: StreamProcessorSpec
    sts: dict[str, Any]
    current: int
    status: dict[str, Any]
    pause: Pause
    body: Any
    mem: Memory
    now: float


def poll(
    name: str,
    namespace: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    meta: dict[str, Any],
    body: Any,
    mem: Memory,
) -> None:
    """Read lag, decide replicas (autoscaling on), refresh status; sets ``mem.next_poll``."""
    now = time.time()
    parsed = parse_spec(spec)
    auto = parsed.autoscaling
    mem.next_poll = now + auto.poll_interval_seconds
    sts = kube.get("apps/v1", "StatefulSet", namespace, name)
    pause = pause_from(meta)
    if sts is None:
        mem.next_poll = now + min(auto.poll_interval_seconds, 1.0)
        if status.get("configHash"):  # reconciled before: the workload went missing (resync recreates it)
            report_missing_workload(name, namespace, status, pause, mem, now)
        return  # else reconcile has not created it yet
    current = int((sts.get("spec") or {}).get("replicas") or 0)
    sample = _read_lag(namespace, name, parsed, now)
    result = _decide(_Poll(name, namespace, parsed, sts, current, status, pause, body, mem, now), sample)
    problem = mem.reconcile_problem or result.problem
    announce_problem(name, namespace, problem, body, mem)

    metrics.observe_poll(
        namespace, name, now=now, error=sample.reason if isinstance(sample, LagError) else None,
        current=current, ready=int((sts.get("status") or {}).get("readyReplicas") or 0),
        desired=result.desired,
        breaker_open=result.breaker_open, held_by=result.held_by, scaled=result.scaled,
        degraded=problem is not None,
    )
    generation = meta.get("generation") if mem.reconcile_problem is None else None
    patch = result.patch
    patch.update(
        workload_status(
            sts,
            result.desired,
            problem,
            status,
            now=now,
            generation=generation,
            scaling=result.scaling,
            paused=paused_of(pause),
        )
    )
    mem.converging = patch["phase"] in CONVERGING_PHASES
    kube.patch_status(namespace, name, patch)


def _decide(p: _Poll, sample: LagSample | LagError) -> _PollResult:
    """The replicas this poll wants: the autoscaler's (on a good lag sample), else the count as it is
    (autoscaled or paused) or the spec's; a failed lag read backs the next poll off."""
    name, namespace, parsed, current, pause, mem, now = (
        p.name, p.namespace, p.parsed, p.current, p.pause, p.mem, p.now)
    auto = parsed.autoscaling
    desired = current if auto.enabled or pause.active else parsed.replicas
    if isinstance(sample, LagError):
        mem.failures += 1
        mem.next_poll = now + max(auto.poll_interval_seconds, _backoff(mem.failures, base=1.0))
        metrics.count(metrics.ERRORS, namespace, name, sample.reason)
        return _PollResult(desired, (sample.reason, sample.message))
    mem.failures = 0
    metrics.CONSUMER_LAG.labels(namespace, name).set(sample.total_lag)
    result = _autoscale(p, sample) if auto.enabled else _PollResult(desired)
    lag = lag_status(sample.total_lag, sample.per_topic(), sample.partition_count, now)
    result.patch["consumerLag"] = lag
    return result


def _read_lag(namespace: str, name: str, parsed: StreamProcessorSpec, now: float) -> LagSample | LagError:
    """The group's lag over the input topics, with the CR's own credentials."""
    group = str(parsed.processor.get("consumerGroup", ""))
    topics = [str(t) for t in parsed.processor.get("inputTopics", [])]
    config = kafka_client_config(namespace, name, parsed)
    if isinstance(config, Problem):
        return LagError(config.reason, config.message)
    return _lag_reader.read(config, group, topics, now)


def _autoscale(p: _Poll, sample: LagSample) -> _PollResult:
    """Decide replicas from the lag sample and apply the change, unless a pause annotation holds them."""
    name, namespace, parsed, current, mem, now = p.name, p.namespace, p.parsed, p.current, p.mem, p.now
    auto = parsed.autoscaling
    memory = mem.scaler if mem.scaler is not None else memory_from_status(p.status.get("autoscaler"))
    signals = workload_signals(namespace, name, p.sts, parsed.ports.health, auto.hold_on_open_breaker)
    # a pause annotation holds the replica count: the decision is reported, and records no move
    decision = decide(auto, current, sample, memory, signals, held=p.pause.active)
    mem.scaler = decision.memory
    result = _PollResult(decision.desired)
    result.breaker_open, result.held_by = signals.breaker_open, decision.held_by
    result.patch["autoscaler"] = {
        **memory_to_status(mem.scaler),
        "recommendedReplicas": decision.recommended,
        "decision": decision.reason,
        "heldBy": decision.held_by,
    }
    log_event(
        "scale_decision",
        namespace=namespace,
        name=name,
        desired=result.desired,
        recommended=decision.recommended,
        reason=decision.reason,
        **decision.inputs,
    )
    if decision.changed:
        try:
            kube.scale_workload(namespace, name, result.desired)
        except ApiException as exc:
            result.problem = ("ScaleFailed", kube.api_error_message(exc))
            result.desired = current
        else:
            result.scaling = True
            verb = "ScaledUp" if decision.direction == "up" else "ScaledDown"
            message = f"{current} -> {result.desired} replicas: {decision.reason}"
            kopf.info(p.body, reason=verb, message=message)
            result.patch["lastScaleTime"] = iso(now)
            result.patch["lastScaleReason"] = message
            metrics.count(metrics.SCALE_DECISIONS, namespace, name, decision.direction, auto.mode)
            result.scaled = decision.direction
    return result


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def forget(name: str, namespace: str | None, spec: Any = None, **_: Any) -> None:
    """Children go with the CR by garbage collection (owner references); metrics and the group's
    offset probe need cleaning."""
    metrics.forget(namespace or "", name)
    processor = (spec or {}).get("processor") if isinstance(spec, dict) else None
    if isinstance(processor, dict) and processor.get("consumerGroup"):
        _lag_reader.forget_group(str(processor["consumerGroup"]))
