"""``helm template`` of charts/smc-operator equals ``kubectl kustomize`` of the manifests, object by object
(parsed, so quoting and key order do not matter): cluster-wide with default values, and the namespaced
install mode (``watchNamespaces``) against manifests/overlays/namespaced. helm is built from its Go
module (tests/testbed/helm.py); kubectl is the bed's. The chart then installs into the real apiserver."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.testbed.fixture_types import Kubectl
from tests.testbed.helm import helm_binary

pytestmark = [pytest.mark.k8s]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "smc-operator"


@pytest.fixture(scope="module")
def helm() -> Path:
    binary = helm_binary()
    assert binary is not None and binary.exists()
    return binary


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's floats are YAML 1.1 (``1e-12`` is a string there); kustomize writes YAML 1.2 (``1e-12``
    for the CRD's ``1.0e-12``): parse both the 1.2 way so only real differences differ."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def objects(text: str) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    out = {}
    for doc in yaml.load_all(text, Loader=_Yaml12Loader):
        if not doc:
            continue
        meta = doc["metadata"]
        key = (doc["apiVersion"], doc["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in out, f"duplicate {key}"
        out[key] = doc
    return out


def render(helm: Path, *args: str) -> str:
    """``helm template`` as a user installing into smc-system would run it (CRDs and Namespace included)."""
    result = subprocess.run(
        [
            str(helm),
            "template",
            "smc-operator",
            str(CHART),
            "--namespace",
            "smc-system",
            "--include-crds",
            "--set",
            "createNamespace=true",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def template(helm: Path, *args: str) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return objects(render(helm, *args))


def kustomize(kubectl: Kubectl, path: Path) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return objects(kubectl("kustomize", str(path)).stdout)


def assert_same(helm_objs: dict[Any, Any], kustomize_objs: dict[Any, Any]) -> None:
    assert sorted(helm_objs) == sorted(kustomize_objs)
    for key, obj in kustomize_objs.items():
        assert helm_objs[key] == obj, key


def test_helm_template_equals_the_kustomize_build(helm: Path, kubectl: Kubectl) -> None:
    assert_same(template(helm), kustomize(kubectl, REPO / "manifests"))


def test_namespaced_helm_values_equal_the_namespaced_overlay(helm: Path, kubectl: Kubectl) -> None:
    helm_objs = template(helm, "--set", "watchNamespaces={smc-apps}")
    assert_same(helm_objs, kustomize(kubectl, REPO / "manifests" / "overlays" / "namespaced"))
    kinds = {k[1] for k in helm_objs}
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds


def test_values_reach_the_deployment(helm: Path) -> None:
    objs = template(
        helm,
        "--set",
        "image.repository=registry.example/smc-operator",
        "--set",
        "image.tag=1.2.3",
        "--set",
        "replicas=3",
        "--set",
        "resources.limits.memory=512Mi",
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "watchNamespaces={a,b}",
    )
    deploy = objs[("apps/v1", "Deployment", "smc-system", "smc-operator")]
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert deploy["spec"]["replicas"] == 3
    assert container["image"] == "registry.example/smc-operator:1.2.3"
    assert container["resources"]["limits"]["memory"] == "512Mi"
    assert "--leader-election" not in container["args"]
    assert container["args"][:2] == ["--namespace=a", "--namespace=b"]
    assert {(k[1], k[2]) for k in objs if k[1] in ("Role", "RoleBinding")} >= {
        ("Role", "a"),
        ("Role", "b"),
        ("RoleBinding", "a"),
        ("RoleBinding", "b"),
    }


def test_the_rendered_chart_is_accepted_by_the_apiserver(helm: Path, kubectl: Kubectl) -> None:
    """Server-side dry run: every object validates against the real apiserver's schemas (the CRD too).
    The namespace must exist for real (a dry-run creates nothing), whichever module ran first."""
    namespace = kubectl("create", "namespace", "smc-system", "--dry-run=client", "-o", "yaml").stdout
    kubectl("apply", "-f", "-", input=namespace)
    applied = kubectl(
        "apply", "--dry-run=server", "--server-side", "--force-conflicts", "-f", "-", input=render(helm)
    )
    assert "deployment.apps/smc-operator" in applied.stdout


def test_helm_lint_passes_with_default_and_namespaced_values(helm: Path) -> None:
    for extra in ([], ["--set", "watchNamespaces={a,b}", "--set", "leaderElection.enabled=false"]):
        result = subprocess.run(
            [str(helm), "lint", str(CHART), *extra], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and "0 chart(s) failed" in result.stdout, result.stdout + result.stderr
