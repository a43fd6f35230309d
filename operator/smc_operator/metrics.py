"""Prometheus metrics of the operator itself (served on ``--metrics-port``)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, start_http_server

RECONCILES = Counter("smc_operator_reconciles_total", "Reconciliations of StreamProcessors", ["result"])
ERRORS = Counter("smc_operator_errors_total", "Failures by reason", ["reason"])
SCALE_DECISIONS = Counter(
    "smc_operator_scale_decisions_total", "Autoscaling decisions that changed replicas", ["direction", "mode"]
)
CONSUMER_LAG = Gauge("smc_operator_consumer_lag", "Total consumer lag observed", ["namespace", "name"])
DESIRED_REPLICAS = Gauge(
    "smc_operator_desired_replicas", "Replicas the operator wants", ["namespace", "name"]
)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Start the metrics HTTP server (``port`` 0 disables it)."""
    if port > 0:
        start_http_server(port, addr=address)


def forget(namespace: str, name: str) -> None:
    for gauge in (CONSUMER_LAG, DESIRED_REPLICAS):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
