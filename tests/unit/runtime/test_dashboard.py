"""The shipped Grafana dashboard only queries metrics the runtime actually exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from smc_runtime.service.metrics import RuntimeMetrics

DASHBOARD = Path(__file__).resolve().parents[3] / "manifests" / "grafana" / "smc-runtime-dashboard.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_series() -> set[str]:
    names: set[str] = set()
    for family in RuntimeMetrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def test_every_dashboard_query_uses_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = set(re.findall(r"smc_runtime_[a-z_]+", json.dumps(dashboard)))
    assert queried, "the dashboard queries nothing"
    assert queried <= exported_series(), sorted(queried - exported_series())


def test_dashboard_covers_performance_errors_lag_and_smc_patterns() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rows = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert {"Processing performance", "Errors and exactly-once", "Lag and throughput",
            "SMC pattern statistics"} <= rows
