"""The lag poll under the pause annotations: the autoscaler's decision is reported, not applied; and a
workload that went missing after a reconcile shows as not Ready (the API and Kafka are stubbed here; the
same behaviour runs against the real ones in tests/integration/test_operator_sre.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from smc_operator import handlers, kube
from smc_operator.plan import PAUSE_RECONCILIATION, PAUSED_REPLICAS
from smc_operator.scaling import LagSample, PartitionLag, WorkloadSignals

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "manifests" / "samples" / "market-data-processor.yaml"


class Body(dict[str, Any]):
    """kopf.info/warn only need something to name; recorded instead of posted."""


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state: dict[str, Any] = {"sts": None, "patches": [], "scaled": [], "events": []}
    monkeypatch.setattr(kube, "get", lambda api_version, kind, ns, name: state["sts"])
    monkeypatch.setattr(kube, "patch_status", lambda ns, name, patch: state["patches"].append(patch))
    monkeypatch.setattr(kube, "scale_workload", lambda ns, name, n: state["scaled"].append(n))
    monkeypatch.setattr(handlers.kopf, "info", lambda body, reason, message: state["events"].append(reason))
    monkeypatch.setattr(handlers.kopf, "warn", lambda body, reason, message: state["events"].append(reason))
    lag = LagSample(time=0.0, partitions=tuple(PartitionLag("t", p, 1000, 0) for p in range(4)))
    monkeypatch.setattr(handlers._lag_reader, "read", lambda config, group, topics, now: lag)
    # the pods' /health (breaker probes) is I/O: every replica Ready, no breaker open
    monkeypatch.setattr(handlers, "workload_signals",
                        lambda ns, name, sts, port, probe: WorkloadSignals(ready=None, breaker_open=0))
    return state


def autoscaled_spec() -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(yaml.safe_load(SAMPLE.read_text())["spec"])
    spec["autoscaling"] = {"enabled": True, "minReplicas": 1, "maxReplicas": 4, "lagThreshold": 100}
    return spec


def sts(replicas: int) -> dict[str, Any]:
    return {"metadata": {"generation": 1}, "spec": {"replicas": replicas}, "status": {"replicas": replicas}}


@pytest.mark.parametrize(
    ("annotations", "reason"),
    [
        ({PAUSED_REPLICAS: "1"}, "ReplicasPaused"),
        ({PAUSE_RECONCILIATION: "true"}, "ReconciliationPaused"),
    ],
)
def test_paused_poll_reports_the_decision_without_scaling(
    world: dict[str, Any], annotations: dict[str, str], reason: str
) -> None:
    world["sts"] = sts(1)
    mem = handlers._Memory()
    meta = {"generation": 1, "annotations": annotations}
    handlers.poll("sp", "ns", autoscaled_spec(), {}, meta, Body(), mem)
    patch = world["patches"][-1]
    assert world["scaled"] == [] and "ScaledUp" not in world["events"]
    assert patch["desiredReplicas"] == 1 and patch["autoscaler"]["recommendedReplicas"] == 4
    assert patch["autoscaler"]["decision"].endswith("(paused: not applied)")
    paused = next(c for c in patch["conditions"] if c["type"] == "Paused")
    assert paused["status"] == "True" and paused["reason"] == reason


def test_unpaused_poll_scales(world: dict[str, Any]) -> None:
    world["sts"] = sts(1)
    handlers.poll("sp", "ns", autoscaled_spec(), {}, {"generation": 1}, Body(), handlers._Memory())
    assert world["scaled"] == [4] and "ScaledUp" in world["events"]
    paused = next(c for c in world["patches"][-1]["conditions"] if c["type"] == "Paused")
    assert paused["status"] == "False"


def test_missing_workload_after_a_reconcile_is_not_ready(world: dict[str, Any]) -> None:
    mem = handlers._Memory()
    handlers.poll("sp", "ns", autoscaled_spec(), {}, {"generation": 1}, Body(), mem)
    assert world["patches"] == []  # never reconciled: nothing to report yet
    status = {"configHash": "abc", "desiredReplicas": 2}
    handlers.poll("sp", "ns", autoscaled_spec(), status, {"generation": 1}, Body(), mem)
    patch = world["patches"][-1]
    conditions = {c["type"]: c for c in patch["conditions"]}
    assert conditions["Ready"]["status"] == "False" and patch["readyReplicas"] == 0
    assert conditions["Degraded"]["reason"] == "WorkloadMissing" and patch["phase"] == "Degraded"
