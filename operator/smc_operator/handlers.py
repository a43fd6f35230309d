"""kopf handlers: thin. They read the CR, call the pure cores (render, scaling, status) and the adapters
(kube, lag), and report what happened in status, events, logs and metrics.

* ``reconcile`` (create/update/resume): render ConfigMap + headless Service + StatefulSet and apply them
  with server-side apply. While autoscaling is on, ``replicas`` is left out of the applied template and
  set only by the autoscaler's own field manager, so re-applying the CR never fights the scaler.
* ``poll`` (timer): read consumer lag, decide replicas (autoscaling on), refresh status. While the pods
  roll out or scale (phase Deploying/Scaling), the workload part of status (ready replicas, phase,
  conditions) is also refreshed every ``CONVERGING_REFRESH_S`` between polls, so ``kubectl get sp`` turns
  Running within seconds of the last pod passing its readiness probe, not a whole poll interval later.
Failures set ``Degraded`` and retry with backoff; one CR's trouble never blocks the others.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from smc_operator import kube, metrics
from smc_operator.crd import GROUP, PLURAL, VERSION
from smc_operator.lag import LagError, LagReader, client_config
from smc_operator.render import Owner, RenderProblem, referenced_secrets, render
from smc_operator.scaling import ScalerMemory, decide, memory_from_status, memory_to_status
from smc_operator.signals import workload_signals
from smc_operator.spec import StreamProcessorSpec, parse_spec
from smc_operator.status import (
    health_conditions,
    iso,
    lag_status,
    merge_conditions,
    phase_of,
    workload_state,
)

MAX_BACKOFF_S = 120.0
CONVERGING_REFRESH_S = 2.0
CONVERGING_PHASES = frozenset({"Deploying", "Scaling"})

log = logging.getLogger("smc_operator")
_lag_reader = LagReader()


@dataclass
class _Memory:
    """Per-CR in-process state (lost on restart; what must survive lives in status)."""

    next_poll: float = 0.0
    failures: int = 0
    reported_problem: tuple[str, str] | None = None
    reconcile_problem: tuple[str, str] | None = None
    scaler: ScalerMemory | None = None
    converging: bool = False  # last status written said Deploying/Scaling: refresh it between polls
    extra: dict[str, Any] = field(default_factory=dict)


def _memory(memo: Any) -> _Memory:
    found = getattr(memo, "smc", None)
    if not isinstance(found, _Memory):
        found = _Memory()
        memo.smc = found
    return found


def _log(event: str, namespace: str, name: str, **context: Any) -> None:
    """One structured log line (fields become JSON keys with ``--log-format=json``)."""
    fields = {"event": event, "resource": f"{namespace}/{name}", **context}
    log.info("%s %s", event, json.dumps(context, default=str, sort_keys=True), extra={"smc": fields})


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


def _missing_secrets(namespace: str, spec: StreamProcessorSpec) -> list[str]:
    missing = []
    for secret_name, keys in referenced_secrets(spec):
        secret = kube.get("v1", "Secret", namespace, secret_name)
        if secret is None:
            missing.append(f"Secret {secret_name!r} not found")
            continue
        data = secret.get("data") or {}
        missing.extend(f"Secret {secret_name!r} has no key {key!r}" for key in keys if key not in data)
    return missing


def _report_problem(
    body: Any, namespace: str, name: str, status: Any, generation: int | None, reason: str, message: str
) -> None:
    now = time.time()
    conditions = merge_conditions(
        list(status.get("conditions") or []),
        [
            *health_conditions(
                workload_state(None, int(status.get("desiredReplicas") or 0)), (reason, message)
            )
        ],
        now=now,
        generation=generation,
    )
    kube.patch_status(namespace, name, {"phase": "Degraded", "conditions": conditions})
    kopf.warn(body, reason=reason, message=message)
    metrics.ERRORS.labels(reason).inc()
    _log("degraded", namespace=namespace, name=name, reason=reason, message=message)


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
    assert namespace is not None  # a namespaced resource
    mem = _memory(memo)
    generation = meta.get("generation")
    parsed = parse_spec(dict(spec))
    auto = parsed.autoscaling
    existing = kube.get("apps/v1", "StatefulSet", namespace, name)
    existing_replicas = ((existing or {}).get("spec") or {}).get("replicas")

    if auto.enabled:
        remembered = status.get("desiredReplicas")
        initial = existing_replicas if existing_replicas is not None else remembered
        desired = min(
            max(int(initial if initial is not None else auto.min_replicas), auto.min_replicas),
            auto.max_replicas,
        )
        rendered_replicas = None if existing is not None else desired
    else:
        desired = parsed.replicas
        rendered_replicas = desired

    rendered = render(Owner(name, namespace, uid), parsed, replicas=rendered_replicas)
    if isinstance(rendered, RenderProblem):
        mem.reconcile_problem = ("InvalidConfig", rendered.message())
        _report_problem(body, namespace, name, status, generation, "InvalidConfig", rendered.message())
        metrics.RECONCILES.labels("invalid").inc()
        raise kopf.PermanentError(f"invalid processor config: {rendered.message()}")

    try:
        missing = _missing_secrets(namespace, parsed)
    except ApiException as exc:
        missing = [f"cannot read Secrets: {kube.api_error_message(exc)}"]
    if missing:
        message = "; ".join(missing)
        mem.reconcile_problem = ("SecretMissing", message)
        _report_problem(body, namespace, name, status, generation, "SecretMissing", message)
        metrics.RECONCILES.labels("retry").inc()
        raise kopf.TemporaryError(message, delay=_backoff(retry))

    try:
        kube.apply(rendered.config_map)
        kube.apply(rendered.service)
        if auto.enabled and existing is not None and existing_replicas is not None:
            # The scaler co-owns replicas before the template apply stops listing them.
            kube.scale_workload(namespace, name, int(existing_replicas))
        workload = kube.apply(rendered.workload)
        if auto.enabled and existing is None:
            kube.scale_workload(namespace, name, desired)
    except ApiException as exc:
        message = kube.api_error_message(exc)
        mem.reconcile_problem = ("ApplyFailed", message)
        _report_problem(body, namespace, name, status, generation, "ApplyFailed", message)
        metrics.RECONCILES.labels("retry").inc()
        raise kopf.TemporaryError(message, delay=_backoff(retry)) from exc

    mem.reconcile_problem = None
    patch: dict[str, Any] = {
        "observedGeneration": generation,
        "selector": rendered.selector_string(),
        "configHash": rendered.config_hash,
        "processorId": f"{name}-<ordinal>",
        **_workload_status(
            workload,
            desired,
            mem.reported_problem,
            status,
            now=time.time(),
            generation=generation,
            scaling=False,
        ),
    }
    kube.patch_status(namespace, name, patch)
    metrics.RECONCILES.labels("ok").inc()
    metrics.DESIRED_REPLICAS.labels(namespace, name).set(desired)
    kopf.info(
        body, reason="Reconciled", message=f"applied config {rendered.config_hash}, {desired} replica(s)"
    )
    _log(
        "reconciled",
        namespace=namespace,
        name=name,
        config_hash=rendered.config_hash,
        desired=desired,
        autoscaling=auto.enabled,
        generation=generation,
    )


# --- lag poll and autoscaling -------------------------------------------------------------------------


def _kafka_client_config(namespace: str, spec: StreamProcessorSpec) -> dict[str, str] | str:
    """The operator's AdminClient settings, credentials from the CR's Secrets; a str is a problem."""
    sec = spec.kafka.security
    sasl = None
    ca_pem = None

    def read(secret_name: str, key: str) -> str | None:
        secret = kube.get("v1", "Secret", namespace, secret_name)
        raw = ((secret or {}).get("data") or {}).get(key)
        return base64.b64decode(raw).decode("utf-8") if raw is not None else None

    if sec.sasl is not None:
        user = read(sec.sasl.secret_name, sec.sasl.username_key)
        password = read(sec.sasl.secret_name, sec.sasl.password_key)
        if user is None or password is None:
            return f"Secret {sec.sasl.secret_name!r} with SASL credentials not found or incomplete"
        sasl = (sec.sasl.mechanism, user, password)
    if sec.ca_secret is not None:
        ca_pem = read(sec.ca_secret.name, sec.ca_secret.key)
        if ca_pem is None:
            return f"Secret {sec.ca_secret.name!r} has no key {sec.ca_secret.key!r}"
    return client_config(spec.kafka.bootstrap_servers, sec.protocol, sasl, ca_pem)


@kopf.daemon(GROUP, VERSION, PLURAL, id="poll", cancellation_timeout=10.0)
async def poll_loop(
    name: str,
    namespace: str | None,
    spec: Any,
    status: Any,
    meta: Any,
    body: Any,
    memo: Any,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """One loop per CR, every ``autoscaling.pollIntervalSeconds`` (``spec``/``status`` are live views).

    A daemon rather than a timer: the interval is per CR, and the blocking Kafka/API calls run in a
    worker thread so a slow broker delays only this CR.
    """
    assert namespace is not None  # a namespaced resource
    mem = _memory(memo)
    while not stopped:
        if time.time() >= mem.next_poll:
            try:
                await asyncio.to_thread(
                    poll, name, namespace, dict(spec), dict(status), dict(meta), body, mem
                )
            except Exception as exc:  # report and keep polling: one bad poll must not end the loop
                metrics.ERRORS.labels("PollFailed").inc()
                log.exception("poll failed for %s/%s: %s", namespace, name, exc)
                mem.next_poll = time.time() + _backoff(mem.failures + 1, base=1.0)
        else:
            try:
                await asyncio.to_thread(
                    refresh_workload_status, name, namespace, dict(status), dict(meta), mem
                )
            except Exception as exc:  # the next poll writes status anyway
                metrics.ERRORS.labels("StatusRefreshFailed").inc()
                log.warning("status refresh failed for %s/%s: %s", namespace, name, exc)
                mem.converging = False
        await stopped.wait(max(0.1, next_wake(mem, time.time()) - time.time()))


def next_wake(mem: _Memory, now: float) -> float:
    """The next poll, or sooner while the workload converges (status refresh only)."""
    return min(mem.next_poll, now + CONVERGING_REFRESH_S) if mem.converging else mem.next_poll


def refresh_workload_status(
    name: str, namespace: str, status: dict[str, Any], meta: dict[str, Any], mem: _Memory
) -> None:
    """Between polls: re-read the StatefulSet and rewrite replicas, phase and conditions (no lag read, no
    scaling decision; ``desiredReplicas`` and the last problem stay what the last poll decided)."""
    sts = kube.get("apps/v1", "StatefulSet", namespace, name)
    if sts is None or status.get("desiredReplicas") is None:
        mem.converging = False
        return
    problem = mem.reconcile_problem or mem.reported_problem
    generation = meta.get("generation") if mem.reconcile_problem is None else None
    patch = _workload_status(
        sts,
        int(status["desiredReplicas"]),
        problem,
        status,
        now=time.time(),
        generation=generation,
        scaling=False,
    )
    mem.converging = patch["phase"] in CONVERGING_PHASES
    kube.patch_status(namespace, name, patch)


def poll(
    name: str,
    namespace: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    meta: dict[str, Any],
    body: Any,
    mem: _Memory,
) -> None:
    """Read lag, decide replicas (autoscaling on), refresh status; sets ``mem.next_poll``."""
    now = time.time()
    parsed = parse_spec(spec)
    auto = parsed.autoscaling
    mem.next_poll = now + auto.poll_interval_seconds
    sts = kube.get("apps/v1", "StatefulSet", namespace, name)
    if sts is None:
        mem.next_poll = now + min(auto.poll_interval_seconds, 1.0)
        return  # reconcile has not created it yet
    current = int((sts.get("spec") or {}).get("replicas") or 0)
    group = str(parsed.processor.get("consumerGroup", ""))
    topics = [str(t) for t in parsed.processor.get("inputTopics", [])]

    config = _kafka_client_config(namespace, parsed)
    sample = (
        LagError("SecretMissing", config)
        if isinstance(config, str)
        else _lag_reader.read(config, group, topics, now)
    )
    patch: dict[str, Any] = {}
    problem: tuple[str, str] | None
    desired = current if auto.enabled else parsed.replicas
    scaling_now = False
    signals, held_by, scaled = None, None, None  # for metrics.observe_poll
    if isinstance(sample, LagError):
        problem = (sample.reason, sample.message)
        mem.failures += 1
        mem.next_poll = now + max(auto.poll_interval_seconds, _backoff(mem.failures, base=1.0))
        metrics.ERRORS.labels(sample.reason).inc()
    else:
        problem = None
        mem.failures = 0
        patch["consumerLag"] = lag_status(sample.total_lag, sample.per_topic(), sample.partition_count, now)
        metrics.CONSUMER_LAG.labels(namespace, name).set(sample.total_lag)
        if auto.enabled:
            memory = mem.scaler if mem.scaler is not None else memory_from_status(status.get("autoscaler"))
            signals = workload_signals(namespace, name, sts, parsed.ports.health, auto.hold_on_open_breaker)
            decision = decide(auto, current, sample, memory, signals)
            held_by = decision.held_by
            mem.scaler = decision.memory
            desired = decision.desired
            patch["autoscaler"] = {
                **memory_to_status(decision.memory),
                "recommendedReplicas": decision.recommended,
                "decision": decision.reason,
                "heldBy": decision.held_by,
            }
            _log(
                "scale_decision",
                namespace=namespace,
                name=name,
                desired=desired,
                recommended=decision.recommended,
                reason=decision.reason,
                **decision.inputs,
            )
            if decision.changed:
                try:
                    kube.scale_workload(namespace, name, desired)
                except ApiException as exc:
                    problem = ("ScaleFailed", kube.api_error_message(exc))
                    desired = current
                else:
                    scaling_now = True
                    verb = "ScaledUp" if decision.direction == "up" else "ScaledDown"
                    message = f"{current} -> {desired} replicas: {decision.reason}"
                    kopf.info(body, reason=verb, message=message)
                    patch["lastScaleTime"] = iso(now)
                    patch["lastScaleReason"] = message
                    metrics.SCALE_DECISIONS.labels(decision.direction, auto.mode).inc()
                    scaled = decision.direction
    problem = mem.reconcile_problem or problem
    if problem != mem.reported_problem:
        if problem is not None:
            kopf.warn(body, reason=problem[0], message=problem[1])
            _log("degraded", namespace=namespace, name=name, reason=problem[0], message=problem[1])
        else:
            kopf.info(body, reason="Recovered", message="problems cleared")
        mem.reported_problem = problem

    metrics.observe_poll(
        namespace, name, now=now, error=sample.reason if isinstance(sample, LagError) else None,
        current=current, ready=int((sts.get("status") or {}).get("readyReplicas") or 0), desired=desired,
        breaker_open=signals.breaker_open if signals is not None else None, held_by=held_by, scaled=scaled,
        degraded=problem is not None,
    )
    generation = meta.get("generation") if mem.reconcile_problem is None else None
    patch.update(
        _workload_status(sts, desired, problem, status, now=now, generation=generation, scaling=scaling_now)
    )
    mem.converging = patch["phase"] in CONVERGING_PHASES
    kube.patch_status(namespace, name, patch)


def _workload_status(
    workload: dict[str, Any] | None,
    desired: int,
    problem: tuple[str, str] | None,
    status: Mapping[str, Any],
    *,
    now: float,
    generation: int | None,
    scaling: bool,
) -> dict[str, Any]:
    """The status fields that follow the workload: replica counts, phase and health conditions."""
    state = workload_state(workload, desired)
    return {
        "desiredReplicas": desired,
        "replicas": state.replicas,
        "readyReplicas": state.ready,
        "phase": phase_of(state, problem, scaling=scaling),
        "conditions": merge_conditions(
            list(status.get("conditions") or []),
            health_conditions(state, problem),
            now=now,
            generation=generation,
        ),
    }


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def forget(name: str, namespace: str | None, spec: Any = None, **_: Any) -> None:
    """Children go with the CR by garbage collection (owner references); metrics and the group's
    offset probe need cleaning."""
    metrics.forget(namespace or "", name)
    processor = (spec or {}).get("processor") if isinstance(spec, dict) else None
    if isinstance(processor, dict) and processor.get("consumerGroup"):
        _lag_reader.forget_group(str(processor["consumerGroup"]))
