"""manifests/monitoring (ServiceMonitor, PodMonitor, PrometheusRule) and the dashboard's operator panels:
well-formed, pointed at ports and labels that exist, and querying only metrics that are exported.

The prometheus-operator CRD YAML is not in a Go module the proxy serves (the main module is refused; the
pkg/apis/monitoring module holds only Go types), so the field names checked here are those of its
monitoring.coreos.com/v1 types, written down once below.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Counter, Gauge

from smc_operator import metrics
from smc_runtime.service.metrics import RuntimeMetrics

REPO = Path(__file__).resolve().parents[3]
MONITORING = REPO / "manifests" / "monitoring"
DASHBOARD = REPO / "manifests" / "grafana" / "smc-runtime-dashboard.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}

# monitoring.coreos.com/v1 field names (pkg/apis/monitoring/v1 of prometheus-operator v0.95.2).
SERVICE_MONITOR_SPEC = {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels"}
POD_MONITOR_SPEC = {"selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel", "podTargetLabels"}
ENDPOINT = {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings", "metricRelabelings"}
RULE = {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MONITORING / name).read_text()) if d]


def exported() -> set[str]:
    names: set[str] = set()
    registries = [RuntimeMetrics().registry.collect(), metrics.RECONCILES.collect()]
    from prometheus_client import REGISTRY

    registries.append(REGISTRY.collect())
    for families in registries:
        for family in families:
            names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def test_kustomization_lists_every_monitoring_file() -> None:
    listed = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in MONITORING.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_service_monitor_selects_the_operator_service_port() -> None:
    (sm,) = docs("servicemonitor.yaml")
    assert (sm["apiVersion"], sm["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    assert set(sm["spec"]) <= SERVICE_MONITOR_SPEC
    services = [
        d
        for d in yaml.safe_load_all((REPO / "manifests/base/operator.yaml").read_text())
        if d and d["kind"] == "Service"
    ]
    (svc,) = services
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    ports = {p["name"] for p in svc["spec"]["ports"]}
    for endpoint in sm["spec"]["endpoints"]:
        assert set(endpoint) <= ENDPOINT and endpoint["port"] in ports


def test_pod_monitor_selects_what_the_operator_renders() -> None:
    from smc_operator.render import Owner, Rendered, render
    from smc_operator.spec import parse_spec

    (pm,) = docs("podmonitor.yaml")
    assert (pm["apiVersion"], pm["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert set(pm["spec"]) <= POD_MONITOR_SPEC
    sample = yaml.safe_load((REPO / "manifests/samples/market-data-processor.yaml").read_text())
    rendered = render(Owner("p", "ns", "uid"), parse_spec(sample["spec"]), replicas=1)
    assert isinstance(rendered, Rendered)
    template = rendered.workload["spec"]["template"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    for endpoint in pm["spec"]["podMetricsEndpoints"]:
        assert set(endpoint) <= ENDPOINT and endpoint["port"] in ports


def test_rules_alert_on_lag_degraded_aborts_and_breaker_with_exported_metrics() -> None:
    (rule,) = docs("prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    alerts = {}
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "rules", "interval"}
        for r in group["rules"]:
            assert set(r) <= RULE and r["expr"].strip()
            assert re.fullmatch(r"\d+[smh]", r["for"])
            assert r["labels"]["severity"] in {"warning", "critical"}
            assert r["expr"].count("(") == r["expr"].count(")")
            alerts[r["alert"]] = r["expr"]
    assert {
        "SmcConsumerLagGrowing",
        "SmcStreamProcessorDegraded",
        "SmcTransactionsAborting",
        "SmcCircuitBreakerOpen",
        "SmcLagPollStale",
    } <= alerts.keys()
    queried = set(re.findall(r"smc_(?:operator|runtime)_[a-z_]+", " ".join(alerts.values())))
    assert queried <= exported(), sorted(queried - exported())


def test_dashboard_operator_panels_query_exported_metrics_per_cr() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rows = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert "Operator" in rows
    queried = set(re.findall(r"smc_operator_[a-z_]+", json.dumps(dashboard)))
    assert "smc_operator_lag_poll_last_success_timestamp_seconds" in queried
    assert queried <= exported(), sorted(queried - exported())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_poll_metrics_carry_namespace_and_name_and_are_forgotten() -> None:
    metrics.observe_poll(
        "ns-a",
        "cr-a",
        now=123.0,
        error=None,
        current=2,
        ready=1,
        desired=3,
        breaker_open=1,
        held_by="breaker",
        scaled="up",
    )
    metrics.observe_poll("ns-a", "cr-a", now=124.0, error="KafkaUnreachable", current=2, ready=1, desired=3)
    text = "\n".join(
        f"{s.name}{s.labels}{s.value}" for fam in metrics.LAST_POLL_SUCCESS.collect() for s in fam.samples
    )
    assert "'namespace': 'ns-a', 'name': 'cr-a'}123.0" in text  # the failed poll did not move it
    assert metrics.SCALER_HELD.labels("ns-a", "cr-a", "breaker")._value.get() == 0  # second poll: not held
    metrics.forget("ns-a", "cr-a")
    left = [
        s
        for fam in (
            *metrics.LAST_POLL_SUCCESS.collect(),
            *metrics.POLL_ERRORS.collect(),
            *metrics.SCALES.collect(),
            *metrics.SCALER_HELD.collect(),
        )
        for s in fam.samples
        if s.labels.get("name") == "cr-a"
    ]
    assert left == []


def _operator_labels() -> dict[str, set[str]]:
    """Each operator metric's exported name -> its label names (from the live collectors)."""
    out: dict[str, set[str]] = {}
    for collector in vars(metrics).values():
        if isinstance(collector, Counter | Gauge):
            name = collector._name + ("_total" if isinstance(collector, Counter) else "")
            out[name] = set(collector._labelnames)
    return out


def _label_uses(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, labels it is grouped by or selected on) for every operator metric in one expression:
    ``by (a, b) (fn(metric{c=~...}...))`` and ``metric{c=...}``."""
    uses = []
    for grouped, metric in re.findall(r"by \(([\w, ]+)\)\s*\((?:\w+\()?(smc_operator_\w+)", expr):
        uses.append((metric, {label.strip() for label in grouped.split(",")}))
    for metric, selector in re.findall(r"(smc_operator_\w+)\{([^}]*)\}", expr):
        uses.append((metric, set(re.findall(r"(\w+)\s*=~?", selector))))
    return uses


def test_rules_and_panels_group_operator_metrics_by_labels_they_carry() -> None:
    labels = _operator_labels()
    (rule,) = docs("prometheusrule.yaml")
    exprs = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    exprs += re.findall(r'"expr": "((?:[^"\\]|\\.)*)"', DASHBOARD.read_text())
    checked = 0
    for expr in exprs:
        for metric, used in _label_uses(expr.replace('\\"', '"')):
            assert used <= labels[metric], (metric, sorted(used - labels[metric]), expr)
            checked += 1
    assert checked >= 10  # the regexes found the operator panels and rules


def test_every_per_cr_counter_carries_namespace_and_name_and_is_forgotten() -> None:
    for collector in (metrics.RECONCILES, metrics.ERRORS, metrics.SCALE_DECISIONS):
        assert collector._labelnames[:2] == ("namespace", "name")
    metrics.count(metrics.RECONCILES, "ns-b", "cr-b", "ok")
    metrics.count(metrics.ERRORS, "ns-b", "cr-b", "KafkaUnreachable")
    metrics.count(metrics.SCALE_DECISIONS, "ns-b", "cr-b", "up", "threshold")
    assert metrics.RECONCILES.labels("ns-b", "cr-b", "ok")._value.get() == 1
    metrics.forget("ns-b", "cr-b")
    left = [
        s
        for c in (metrics.RECONCILES, metrics.ERRORS, metrics.SCALE_DECISIONS)
        for fam in c.collect()
        for s in fam.samples
        if s.labels.get("name") == "cr-b"
    ]
    assert left == []
