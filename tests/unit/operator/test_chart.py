"""The Helm chart and the namespaced overlay's Role are generated from manifests/base: the committed files
are what ``python -m smc_operator.chart`` writes (``helm template`` == kustomize is the integration test)."""

from __future__ import annotations

from pathlib import Path

import yaml

from smc_operator.chart import REPO, base_objects, chart_files, overlay_files, values


def test_committed_chart_and_overlay_are_what_the_generator_writes() -> None:
    files = {f"charts/smc-operator/{rel}": text for rel, text in chart_files().items()} | overlay_files()
    stale = [
        rel for rel, text in files.items() if not (REPO / rel).exists() or (REPO / rel).read_text() != text
    ]
    assert not stale, f"run: python -m smc_operator.chart ({stale})"
    on_disk = {str(p.relative_to(REPO)) for p in (REPO / "charts" / "smc-operator").rglob("*") if p.is_file()}
    assert on_disk <= set(files), sorted(on_disk - set(files))


def test_values_default_to_the_base_deployment() -> None:
    v = values(base_objects())
    assert v["replicas"] == 2 and v["leaderElection"] == {"enabled": True}
    assert f"{v['image']['repository']}:{v['image']['tag']}" == "ghcr.io/smc-stream/smc-operator:0.1.0"
    assert v["watchNamespaces"] == []


def test_namespaced_role_has_no_cluster_scoped_rules_and_keeps_the_rest() -> None:
    role, binding = [
        d for d in yaml.safe_load_all(Path(REPO / "manifests/overlays/namespaced/role.yaml").read_text())
    ]
    assert role["kind"] == "Role" and binding["roleRef"]["kind"] == "Role"
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert not resources & {"customresourcedefinitions", "namespaces"}
    assert {"streamprocessors", "statefulsets", "pods", "secrets", "events"} <= resources
