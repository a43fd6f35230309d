"""Between polls, while pods roll out or scale, the operator rewrites the workload part of status from the
StatefulSet (no lag read), so the phase follows readiness within seconds."""

from __future__ import annotations

from typing import Any

import pytest

from smc_operator import handlers, kube


def _sts(replicas: int, ready: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 3},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 3,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
            "currentRevision": "r1",
            "updateRevision": "r1",
        },
    }


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    world: dict[str, Any] = {"sts": None, "patches": []}
    monkeypatch.setattr(kube, "get", lambda api_version, kind, ns, name: world["sts"])
    monkeypatch.setattr(kube, "patch_status", lambda ns, name, patch: world["patches"].append(patch))
    return world


def test_refresh_turns_running_when_the_last_pod_is_ready_and_stops_refreshing(api: dict[str, Any]) -> None:
    mem = handlers._Memory(next_poll=1_000.0, converging=True)
    status = {"desiredReplicas": 4, "phase": "Scaling", "conditions": []}
    api["sts"] = _sts(4, 3)
    handlers.refresh_workload_status("sp", "ns", status, {"generation": 1}, mem)
    assert api["patches"][-1]["phase"] == "Deploying" and api["patches"][-1]["readyReplicas"] == 3
    assert mem.converging and handlers.next_wake(mem, now=100.0) == 100.0 + handlers.CONVERGING_REFRESH_S

    api["sts"] = _sts(4, 4)
    handlers.refresh_workload_status("sp", "ns", status, {"generation": 1}, mem)
    patch = api["patches"][-1]
    assert patch["phase"] == "Running" and patch["desiredReplicas"] == 4 and patch["readyReplicas"] == 4
    assert "consumerLag" not in patch and "autoscaler" not in patch  # the poll's business
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == 1
    assert not mem.converging and handlers.next_wake(mem, now=100.0) == 1_000.0


def test_refresh_keeps_the_last_problem_and_skips_what_the_poll_has_not_decided(api: dict[str, Any]) -> None:
    mem = handlers._Memory(next_poll=1_000.0, converging=True,
                           reported_problem=("KafkaUnreachable", "cannot reach Kafka"))
    api["sts"] = _sts(1, 1)
    handlers.refresh_workload_status("sp", "ns", {"desiredReplicas": 1}, {"generation": 2}, mem)
    patch = api["patches"][-1]
    assert patch["phase"] == "Degraded"
    degraded = next(c for c in patch["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "KafkaUnreachable"
    assert not mem.converging

    mem.converging = True
    handlers.refresh_workload_status("sp", "ns", {}, {"generation": 2}, mem)  # no desiredReplicas yet
    api["sts"] = None
    handlers.refresh_workload_status("sp", "ns", {"desiredReplicas": 1}, {"generation": 2}, mem)
    assert len(api["patches"]) == 1 and not mem.converging
