"""What the processor pods say, for the scaler: Ready replicas and how many report the circuit breaker open.

How the operator learns the breaker state (decided here, documented in docs/operator.md "Autoscaling"):
pod readiness alone cannot tell an open breaker from a pod that is still restoring (both make ``/ready``
503), so the operator reads each running pod's ``GET :<ports.health>/health`` over the pod IP, the same
document the runtime serves to kubelet probes, and counts pods where any processor's
``checks.circuit_breaker`` is not ``closed`` (``open`` or ``half_open``: the probe transaction has not
succeeded yet) or whose ``checks.broker_reachable`` is false: a broker that stops answering leaves the loop
blocked inside a transactional call (librdkafka ignores its timeout there) before the breaker can count
a failure, and the runtime's broker probe reports it within seconds; scaling out cannot help that either.
A pod that does not answer counts as unknown, not open: a missing signal must not freeze scaling.
The per-pod timeout is short and the probes run in parallel so a sick node delays one poll by at
most ``PROBE_TIMEOUT_S``.

The pure part (``breaker_open_in``) reads a ``/health`` document; the rest is I/O.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from smc_operator.render import selector_for
from smc_operator.scaling import WorkloadSignals

log = logging.getLogger("smc_operator")
PROBE_TIMEOUT_S = 1.0
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="smc-breaker-probe")


def breaker_open_in(health: Mapping[str, Any]) -> bool:
    """True when any processor of a runtime ``/health`` document reports its breaker not closed or
    the broker unreachable."""
    processors = health.get("processors")
    if not isinstance(processors, Mapping):
        return False
    for proc in processors.values():
        checks = proc.get("checks") if isinstance(proc, Mapping) else None
        if not isinstance(checks, Mapping):
            continue
        state = checks.get("circuit_breaker")
        if (isinstance(state, str) and state != "closed") or checks.get("broker_reachable") is False:
            return True
    return False


def _probe(url: str) -> bool | None:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:  # 503 still carries the document
        body = exc.read()
    except OSError:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return breaker_open_in(doc) if isinstance(doc, Mapping) else None


def _pod_urls(namespace: str, name: str, health_port: int) -> list[str]:
    selector = ",".join(f"{k}={v}" for k, v in sorted(selector_for(name).items()))
    pods = client.CoreV1Api().list_namespaced_pod(namespace, label_selector=selector)
    urls = []
    for pod in pods.items:
        ip = pod.status.pod_ip if pod.status else None
        if ip and pod.status.phase == "Running" and not pod.metadata.deletion_timestamp:
            host = f"[{ip}]" if ":" in ip else ip
            urls.append(f"http://{host}:{health_port}/health")
    return urls


def workload_signals(
    namespace: str, name: str, sts: Mapping[str, Any], health_port: int, probe_breakers: bool
) -> WorkloadSignals:
    """Ready replicas from the StatefulSet status; open breakers from the pods' ``/health``."""
    ready = int((sts.get("status") or {}).get("readyReplicas") or 0)
    if not probe_breakers:
        return WorkloadSignals(ready=ready)
    try:
        urls = _pod_urls(namespace, name, health_port)
    except ApiException as exc:  # no pod list (RBAC, API hiccup): scale on lag alone this poll
        log.warning("cannot list pods of %s/%s for breaker probes: %s", namespace, name, exc.reason)
        return WorkloadSignals(ready=ready)
    results = list(_POOL.map(_probe, urls))
    return WorkloadSignals(ready=ready, breaker_open=sum(1 for r in results if r))
