"""plan: children, replicas, pause and refusals decided from the spec and what was observed (pure)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from smc_operator.plan import (
    PAUSE_RECONCILIATION,
    PAUSED_REPLICAS,
    Observed,
    Pause,
    Plan,
    Problem,
    child_refs,
    pause_of,
    plan,
    repairs,
)
from smc_operator.render import Owner
from smc_operator.spec import parse_spec

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "manifests" / "samples" / "market-data-processor.yaml"
OWNER = Owner(name="mdp", namespace="trading", uid="uid-1")
REFS = child_refs("mdp")


def spec(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(yaml.safe_load(SAMPLE.read_text())["spec"])
    raw.update(overrides)
    return raw


def owned(kind_ref: tuple[str, str, str], uid: str = "uid-1", **extra: Any) -> dict[str, Any]:
    api, kind, name = kind_ref
    refs = [{"uid": uid, "controller": True, "kind": "StreamProcessor", "name": "mdp"}]
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "ownerReferences": refs}, **extra}


def nothing() -> dict[tuple[str, str, str], dict[str, Any] | None]:
    return dict.fromkeys(REFS.values())


def planned(raw: dict[str, Any], annotations: dict[str, str] | None = None, **observed: Any) -> Plan:
    out = plan(OWNER, parse_spec(raw), annotations or {}, Observed(**{"children": nothing(), **observed}))
    assert isinstance(out, Plan), out
    return out


def kinds(p: Plan) -> list[str]:
    return [obj["kind"] for obj in p.apply]


def test_new_cr_applies_config_service_workload_budget_in_order() -> None:
    p = planned(spec(replicas=3))
    assert kinds(p) == ["ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"]
    assert p.desired == 3 and p.apply[2]["spec"]["replicas"] == 3
    assert p.scale_before is None and p.scale_after is None and p.delete == ()


def test_disabled_budget_is_deleted_only_when_it_exists() -> None:
    raw = spec(template={"podDisruptionBudget": {"enabled": False}})
    assert planned(raw).delete == ()
    children = {**nothing(), REFS["pdb"]: owned(REFS["pdb"])}
    p = planned(raw, children=children)
    assert "PodDisruptionBudget" not in kinds(p) and p.delete == (REFS["pdb"],)


def test_autoscaled_new_workload_is_scaled_after_existing_one_keeps_its_count() -> None:
    auto = {"enabled": True, "minReplicas": 2, "maxReplicas": 5}
    fresh = planned(spec(autoscaling=auto))
    assert fresh.scale_after == 2 and fresh.apply[2]["spec"]["replicas"] == 2
    sts = owned(REFS["workload"], spec={"replicas": 4})
    running = planned(spec(autoscaling=auto), children={**nothing(), REFS["workload"]: sts})
    assert "replicas" not in running.apply[2]["spec"]
    assert running.scale_before == 4 and running.desired == 4 and running.scale_after is None


def test_paused_replicas_fix_the_count_even_with_autoscaling() -> None:
    sts = owned(REFS["workload"], spec={"replicas": 4})
    children = {**nothing(), REFS["workload"]: sts}
    p = planned(spec(autoscaling={"enabled": True}), {PAUSED_REPLICAS: "2"}, children=children)
    assert p.desired == 2 and p.scale_before == 2 and p.pause == Pause(False, 2)
    manual = planned(spec(replicas=5), {PAUSED_REPLICAS: "1"})
    assert manual.apply[2]["spec"]["replicas"] == 1


def test_paused_reconciliation_applies_nothing_and_keeps_the_live_count() -> None:
    sts = owned(REFS["workload"], spec={"replicas": 3})
    p = planned(
        spec(replicas=1), {PAUSE_RECONCILIATION: "true"}, children={**nothing(), REFS["workload"]: sts}
    )
    assert p.rendered is None and p.apply == () and p.delete == () and p.desired == 3
    assert p.pause.reason == "ReconciliationPaused"


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, Pause()),
        ({PAUSE_RECONCILIATION: "True"}, Pause(True, None)),
        ({PAUSE_RECONCILIATION: "false", PAUSED_REPLICAS: "0"}, Pause(False, 0)),
    ],
)
def test_pause_annotations(annotations: dict[str, str], expected: Pause) -> None:
    assert pause_of(annotations) == expected


@pytest.mark.parametrize("value", ["-1", "two", "1.5", ""])
def test_invalid_paused_replicas_is_a_problem(value: str) -> None:
    out = plan(OWNER, parse_spec(spec()), {PAUSED_REPLICAS: value}, Observed(children=nothing()))
    assert isinstance(out, Problem) and out.reason == "InvalidAnnotation"


def test_foreign_children_are_refused_not_adopted() -> None:
    foreign = owned(REFS["service"], uid="someone-else")
    foreign["metadata"].pop("ownerReferences")
    out = plan(OWNER, parse_spec(spec()), {}, Observed(children={**nothing(), REFS["service"]: foreign}))
    assert isinstance(out, Problem) and out.reason == "OwnershipConflict" and not out.permanent
    assert "Service 'mdp'" in out.message
    other_owner = {**nothing(), REFS["pdb"]: owned(REFS["pdb"], uid="old-cr")}
    out = plan(OWNER, parse_spec(spec()), {}, Observed(children=other_owner))
    assert isinstance(out, Problem) and "PodDisruptionBudget 'mdp'" in out.message
    # With the budget disabled, someone else's budget of that name is neither refused nor deleted.
    no_budget = spec(template={"podDisruptionBudget": {"enabled": False}})
    kept = plan(OWNER, parse_spec(no_budget), {}, Observed(children=other_owner))
    assert isinstance(kept, Plan) and kept.delete == ()


def test_missing_secret_and_plain_password_on_the_wire_stop_the_reconcile() -> None:
    out = plan(OWNER, parse_spec(spec()), {}, Observed(children=nothing(), missing_secrets=("no 'x'",)))
    assert isinstance(out, Problem) and out.reason == "SecretMissing"
    sasl = {"protocol": "SASL_PLAINTEXT", "sasl": {"mechanism": "PLAIN", "secretName": "creds"}}
    raw = spec()
    raw["kafka"]["security"] = sasl
    out = plan(OWNER, parse_spec(raw), {}, Observed(children=nothing()))
    assert isinstance(out, Problem) and out.reason == "InsecureCredentials" and out.permanent
    raw["kafka"]["security"] = {**sasl, "allowPlaintextCredentials": True}
    assert isinstance(plan(OWNER, parse_spec(raw), {}, Observed(children=nothing())), Plan)


def test_invalid_processor_config_is_permanent() -> None:
    raw = spec()
    raw["processor"]["batchSize"] = 0
    out = plan(OWNER, parse_spec(raw), {}, Observed(children=nothing()))
    assert isinstance(out, Problem) and out.reason == "InvalidConfig" and out.permanent


def test_repairs_name_recreated_and_edited_children_only() -> None:
    cm, sts, svc = REFS["config_map"], REFS["workload"], REFS["service"]

    def obj(
        version: str, generation: int | None = None, labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        meta = {"resourceVersion": version, "labels": labels or {}}
        return {"metadata": {**meta, **({"generation": generation} if generation else {})}}

    before = {cm: None, sts: obj("10", 3), svc: obj("5")}
    after = {cm: obj("11"), sts: obj("12", 3), svc: obj("5", labels={})}
    assert repairs(before, after) == ["ConfigMap/mdp-config recreated"]  # status-only change: no repair
    after[sts] = obj("13", 4)
    after[svc] = obj("6", labels={"a": "b"})
    assert repairs(before, after) == [
        "ConfigMap/mdp-config recreated",
        "StatefulSet/mdp restored",
        "Service/mdp restored",
    ]
