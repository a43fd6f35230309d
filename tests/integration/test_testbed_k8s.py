"""The test bed's Kubernetes is a real control plane: CRD validation, controllers, GC and RBAC all work."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.fixture_types import Kubectl

pytestmark = pytest.mark.k8s


def wait_until(what: str, condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll `condition` until it returns something truthy (and return that)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"testbed-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def widget_crd(kubectl: Kubectl) -> Iterator[tuple[str, str]]:
    """A namespaced example CRD (structural schema, printer column); unique group per session."""
    group = f"w{uuid.uuid4().hex[:8]}.testbed.smc.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                        "color": {"type": "string", "enum": ["red", "green"]},
                                    },
                                }
                            },
                        }
                    },
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
                    ],
                }
            ],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(crd))
    kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s")
    yield group, f"widgets.{group}"
    kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def _widget(group: str, name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
    )


def test_crd_printer_column_shows_in_kubectl_get(
    kubectl: Kubectl, namespace: str, widget_crd: tuple[str, str]
) -> None:
    group, resource = widget_crd
    kubectl("apply", "-n", namespace, "-f", "-", input=_widget(group, "small", {"size": 3, "color": "red"}))
    table = kubectl("get", resource, "-n", namespace).stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "SIZE", "COLOR"]
    assert table[1].split()[:3] == ["small", "3", "red"]


def test_schema_violation_is_rejected_with_a_clear_message(
    kubectl: Kubectl, namespace: str, widget_crd: tuple[str, str]
) -> None:
    group, resource = widget_crd
    result = kubectl(
        "apply", "-n", namespace, "-f", "-", input=_widget(group, "huge", {"size": 42}), check=False
    )
    assert result.returncode != 0
    assert "spec.size" in result.stderr and "less than or equal to 10" in result.stderr, result.stderr
    result = kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=_widget(group, "blue", {"size": 1, "color": "blue"}),
        check=False,
    )
    assert result.returncode != 0
    assert "spec.color" in result.stderr and "Unsupported value" in result.stderr, result.stderr
    assert kubectl("get", resource, "huge", "-n", namespace, "--ignore-not-found").stdout == ""


def test_deployment_gets_a_replicaset_from_the_controller_manager(kubectl: Kubectl, namespace: str) -> None:
    # Pods never run (no scheduler/kubelet); the ReplicaSet proves the deployment controller is active.
    kubectl("create", "deployment", "web", "--image=registry.invalid/none:1", "--replicas=2", "-n", namespace)

    def owned_replicasets() -> list[dict[str, Any]]:
        items = json.loads(kubectl("get", "rs", "-n", namespace, "-l", "app=web", "-o", "json").stdout)[
            "items"
        ]
        return [
            rs
            for rs in items
            if any(o["kind"] == "Deployment" for o in rs["metadata"].get("ownerReferences", []))
        ]

    replicasets = wait_until("a ReplicaSet owned by the Deployment", owned_replicasets)
    assert replicasets[0]["spec"]["replicas"] == 2
    # The replicaset controller acts too: it creates the (forever Pending) pods.
    wait_until(
        "pods of the ReplicaSet",
        lambda: len(json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]) == 2,
    )


def test_deleting_an_owner_garbage_collects_the_owned_configmap(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "configmap", "owner", "--from-literal=k=v", "-n", namespace)
    uid = kubectl("get", "configmap", "owner", "-n", namespace, "-o", "jsonpath={.metadata.uid}").stdout
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}],
        },
        "data": {"k": "v"},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(owned))
    kubectl("delete", "configmap", "owner", "-n", namespace)
    wait_until(
        "the garbage collector to delete the owned ConfigMap",
        lambda: (
            kubectl("get", "configmap", "owned", "-n", namespace, "--ignore-not-found", "-o", "name").stdout
            == ""
        ),
    )


def test_operator_identity_is_subject_to_rbac(
    kubectl: Kubectl, namespace: str, widget_crd: tuple[str, str], operator_kubeconfig: Path
) -> None:
    """The operator identity gets only what is bound to its ServiceAccount.

    Uses this session's unique Widget kind: no RBAC (e.g. manifests/ applied by other tests) can cover it.
    """
    group, resource = widget_crd
    kubectl("apply", "-n", namespace, "-f", "-", input=_widget(group, "guarded", {"size": 2}))
    as_operator = ("get", resource, "guarded", "-n", namespace)
    denied = kubectl(*as_operator, kubeconfig=operator_kubeconfig, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr
    assert "system:serviceaccount:smc-system:smc-operator" in denied.stderr

    # A binding to the ServiceAccount (as manifests/ will create) grants exactly that access.
    kubectl("create", "role", "widget-reader", "--verb=get,list", f"--resource={resource}", "-n", namespace)
    kubectl(
        "create",
        "rolebinding",
        "widget-reader",
        "--role=widget-reader",
        "--serviceaccount=smc-system:smc-operator",
        "-n",
        namespace,
    )
    wait_until(
        "the RoleBinding to take effect",
        lambda: kubectl(*as_operator, kubeconfig=operator_kubeconfig, check=False).returncode == 0,
    )
    still_denied = kubectl(
        "delete", resource, "guarded", "-n", namespace, kubeconfig=operator_kubeconfig, check=False
    )
    assert still_denied.returncode != 0 and "forbidden" in still_denied.stderr


def test_namespace_deletion_completes(kubectl: Kubectl) -> None:
    """The namespace controller empties and removes a deleted namespace."""
    name = f"testbed-gone-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("create", "configmap", "content", "-n", name)
    kubectl("delete", "namespace", name, "--timeout=60s")
    assert kubectl("get", "namespace", name, "--ignore-not-found", "-o", "name").stdout == ""
