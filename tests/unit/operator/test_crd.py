"""The CRD is generated from the models: the committed file matches, and nothing of the runtime is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from smc_operator.crd import CRD_FILE, build_crd, render_crd_yaml
from smc_operator.render import Owner, Rendered, _model_of, render
from smc_operator.scaling import ScalerMemory, memory_to_status
from smc_operator.schema import snake_to_camel
from smc_operator.spec import parse_spec
from smc_operator.status import WorkloadState, health_conditions, lag_status, merge_conditions
from smc_runtime.config import ProcessorSettings

REPO = Path(__file__).resolve().parents[3]


def schema_root() -> dict[str, Any]:
    root: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def test_committed_crd_is_what_the_models_generate() -> None:
    committed = (REPO / "crds" / CRD_FILE).read_text()
    assert committed == render_crd_yaml(), "run: python -m smc_operator.crd > crds/" + CRD_FILE


def _assert_covers(model: type[BaseModel], schema: dict[str, Any], path: str) -> None:
    props = schema["properties"]
    for name, field in model.model_fields.items():
        camel = snake_to_camel(name)
        assert camel in props, f"{path}.{camel} missing from the CRD"
        sub = _model_of(field.annotation)
        if sub is not None:
            _assert_covers(sub, props[camel], f"{path}.{camel}")
        elif (
            field.default is not None
            and not isinstance(field.default, BaseModel)
            and field.is_required() is False
        ):
            default = field.default
            if isinstance(default, str | int | float | bool | list):
                expected = default.value if hasattr(default, "value") else default
                assert props[camel].get("default") == expected, f"{path}.{camel} default drifted"


def test_processor_schema_covers_every_runtime_field_with_its_default() -> None:
    _assert_covers(
        ProcessorSettings, schema_root()["properties"]["spec"]["properties"]["processor"], "processor"
    )


def test_schema_is_structural() -> None:
    def walk(node: dict[str, Any], path: str) -> None:
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert "additionalProperties" not in node or "properties" not in node, path
        assert not {"anyOf", "oneOf", "allOf", "$ref"} & node.keys(), path
        for key, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    spec = schema_root()["properties"]["spec"]
    assert not spec.get("x-kubernetes-preserve-unknown-fields")
    walk(spec, "spec")


def _assert_conforms(value: Any, schema: dict[str, Any], path: str) -> None:
    if isinstance(value, dict):
        if "properties" in schema:
            for key, item in value.items():
                assert key in schema["properties"], (
                    f"{path}.{key} is not in the status schema (would be pruned)"
                )
                _assert_conforms(item, schema["properties"][key], f"{path}.{key}")
        else:
            assert "additionalProperties" in schema, path
    elif isinstance(value, list):
        for item in value:
            _assert_conforms(item, schema["items"], f"{path}[]")


def test_everything_status_py_writes_is_declared() -> None:
    status_schema = schema_root()["properties"]["status"]
    w = WorkloadState(1, 1, 0, 1, rolled_out=True)
    r = render(
        Owner("x", "ns", "u"),
        parse_spec(
            yaml.safe_load((REPO / "manifests/samples/market-data-processor.yaml").read_text())["spec"]
        ),
        replicas=1,
    )
    assert isinstance(r, Rendered)
    status = {
        "observedGeneration": 1,
        "phase": "Running",
        "conditions": merge_conditions([], health_conditions(w, ("X", "y")), now=0, generation=1),
        "replicas": 1,
        "readyReplicas": 0,
        "desiredReplicas": 1,
        "selector": r.selector_string(),
        "configHash": r.config_hash,
        "processorId": "x-<ordinal>",
        "consumerLag": lag_status(10, {"a": 10}, 3, 0.0),
        "lastScaleTime": "2026-01-01T00:00:00Z",
        "lastScaleReason": "why",
        "autoscaler": {**memory_to_status(ScalerMemory()), "recommendedReplicas": 2, "decision": "d"},
    }
    _assert_conforms(status, status_schema, "status")


def test_crd_names_columns_and_subresources() -> None:
    crd = build_crd()
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]
    assert crd["metadata"]["name"] == "streamprocessors.smc-trading.io"
    assert names["shortNames"] == ["sp"] and names["categories"] == ["smc"]
    assert [c["name"] for c in version["additionalPrinterColumns"]][:5] == [
        "Phase",
        "Mode",
        "Desired",
        "Ready",
        "Lag",
    ]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert "status" in version["subresources"]


def _walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, child in node.items():
            yield from _walk(child, f"{path}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _walk(child, f"{path}[{index}]")


def test_integer_bounds_survive_the_apiservers_float64_schema() -> None:
    """The apiserver keeps minimum/maximum as float64: 2**63-1 rounds to 2**63 and wraps to -2**63, so
    the CRD is refused ("should be less than or equal to -9223372036854775808")."""
    bad = []
    for path, node in _walk(schema_root()):
        if node.get("type") != "integer":
            continue
        for bound in ("minimum", "maximum"):
            value = node.get(bound)
            if value is not None and (int(float(value)) != value or not -(2**63) <= value < 2**63):
                bad.append(f"{path}.{bound} = {value}")
    assert not bad, bad
