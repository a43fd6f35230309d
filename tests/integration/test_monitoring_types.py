"""manifests/monitoring decodes strictly into prometheus-operator's monitoring.coreos.com/v1 Go types
(unknown or misplaced fields fail) and every PrometheusRule expression parses with Prometheus's own PromQL
parser, with the checker built from the upstream modules (tests/testbed/monitoring.py); and deliberately
wrong objects are rejected, so the check can fail."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.testbed.monitoring import check_binary

pytestmark = pytest.mark.slow  # builds the checker from its Go module when the cache is cold

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checker() -> Path:
    binary = check_binary()
    assert binary is not None and binary.exists()
    return binary


def check(binary: Path, docs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary)], input=json.dumps(docs), capture_output=True, text=True, timeout=60)


def shipped() -> list[dict[str, Any]]:
    out = []
    for path in sorted((REPO / "manifests" / "monitoring").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            out.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return out


def test_shipped_monitoring_objects_match_the_upstream_types(checker: Path) -> None:
    docs = shipped()
    result = check(checker, docs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok") == len(docs) == 3


def test_a_misplaced_field_is_rejected(checker: Path) -> None:
    docs = shipped()
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    result = check(checker, [monitor])
    assert result.returncode == 1 and "intervall" in result.stdout, result.stdout


def test_a_rule_expression_prometheus_cannot_parse_is_rejected_by_name(checker: Path) -> None:
    rule = next(d for d in shipped() if d["kind"] == "PrometheusRule")
    group = rule["spec"]["groups"][0]
    group["rules"][1]["expr"] = "max by (namespace, name (smc_operator_degraded) == 1"  # unbalanced
    group["rules"][2]["expr"] = "rate(smc_operator_consumer_lag)"  # a range function given an instant vector
    result = check(checker, [rule])
    assert result.returncode == 1, result.stdout
    assert f"group {group['name']}, {group['rules'][1]['alert']}: expr:" in result.stdout
    assert f"{group['rules'][2]['alert']}: expr:" in result.stdout
    assert group["rules"][0]["alert"] not in result.stdout  # the good rules are not blamed
