"""Prometheus metrics of the operator itself (served on ``--metrics-port``).

Every series about one StreamProcessor carries ``namespace`` and ``name`` labels (KEDA's convention) and
is removed when the CR is deleted, so an alert or a panel can say which CR. Only ``smc_operator_leader``
is about the operator replica itself.
"""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, start_http_server

_CR = ["namespace", "name"]
RECONCILES = Counter(
    "smc_operator_reconciles_total", "Reconciliations of a StreamProcessor, by result", [*_CR, "result"]
)
ERRORS = Counter("smc_operator_errors_total", "Failures for a StreamProcessor, by reason", [*_CR, "reason"])
SCALE_DECISIONS = Counter(
    "smc_operator_scale_decisions_total",
    "Autoscaling decisions that changed replicas",
    [*_CR, "direction", "mode"],
)
CONSUMER_LAG = Gauge("smc_operator_consumer_lag", "Total consumer lag observed", _CR)
DESIRED_REPLICAS = Gauge("smc_operator_desired_replicas", "Replicas the operator wants", _CR)
LEADER = Gauge(
    "smc_operator_leader", "1 while this operator replica holds the leader Lease (or runs standalone)"
)
LAST_POLL_SUCCESS = Gauge(
    "smc_operator_lag_poll_last_success_timestamp_seconds",
    "Unix time of the last lag poll that read every input partition's offsets",
    _CR,
)
POLL_ERRORS = Counter(
    "smc_operator_lag_poll_errors_total", "Lag polls that failed, by reason", [*_CR, "reason"]
)
SCALES = Counter(
    "smc_operator_scale_events_total", "Replica changes made by the autoscaler", [*_CR, "direction"]
)
CURRENT_REPLICAS = Gauge("smc_operator_workload_replicas", "StatefulSet spec.replicas at the last poll", _CR)
READY_REPLICAS = Gauge(
    "smc_operator_workload_ready_replicas", "StatefulSet readyReplicas at the last poll", _CR
)
BREAKER_OPEN = Gauge(
    "smc_operator_breaker_open_replicas", "Replicas whose /health reports the circuit breaker not closed", _CR
)
SCALER_HELD = Gauge(
    "smc_operator_scaler_held",
    "1 while the scaler holds a move back, by cause (pause, breaker, settling, stabilization, policy)",
    [*_CR, "cause"],
)
DEGRADED = Gauge("smc_operator_degraded", "1 while the CR reports Degraded (the problem's reason label)", _CR)

_HELD_CAUSES = ("pause", "breaker", "settling", "stabilization", "policy")
_labelled: set[tuple[Counter, tuple[str, ...]]] = set()  # per-CR counter children, removed on forget


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Start the metrics HTTP server (``port`` 0 disables it)."""
    if port > 0:
        start_http_server(port, addr=address)


def count(counter: Counter, namespace: str, name: str, *labels: str) -> None:
    """Increment a per-CR counter child and remember it, so ``forget`` removes it with the CR."""
    counter.labels(namespace, name, *labels).inc()
    _labelled.add((counter, (namespace, name, *labels)))


def observe_poll(
    namespace: str,
    name: str,
    *,
    now: float,
    error: str | None,
    current: int,
    ready: int | None,
    desired: int,
    breaker_open: int | None = None,
    held_by: str | None = None,
    scaled: str | None = None,
    degraded: bool = False,
) -> None:
    """Everything one lag poll of one CR has to say, in one call (the handler's only metrics hook)."""
    if error is None:
        LAST_POLL_SUCCESS.labels(namespace, name).set(now)
    else:
        count(POLL_ERRORS, namespace, name, error)
    CURRENT_REPLICAS.labels(namespace, name).set(current)
    if ready is not None:
        READY_REPLICAS.labels(namespace, name).set(ready)
    DESIRED_REPLICAS.labels(namespace, name).set(desired)
    if breaker_open is not None:
        BREAKER_OPEN.labels(namespace, name).set(breaker_open)
    for cause in _HELD_CAUSES:
        SCALER_HELD.labels(namespace, name, cause).set(1 if held_by == cause else 0)
    if scaled is not None:
        count(SCALES, namespace, name, scaled)
    DEGRADED.labels(namespace, name).set(1 if degraded else 0)


def forget(namespace: str, name: str) -> None:
    for gauge in (
        CONSUMER_LAG,
        DESIRED_REPLICAS,
        LAST_POLL_SUCCESS,
        CURRENT_REPLICAS,
        READY_REPLICAS,
        BREAKER_OPEN,
        DEGRADED,
    ):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
    for cause in _HELD_CAUSES:
        with contextlib.suppress(KeyError):
            SCALER_HELD.remove(namespace, name, cause)
    for counter, labels in [item for item in _labelled if item[1][:2] == (namespace, name)]:
        _labelled.discard((counter, labels))
        with contextlib.suppress(KeyError):
            counter.remove(*labels)
