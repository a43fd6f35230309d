"""Namespaced install mode against the real apiserver: an operator whose ServiceAccount has only the Role
and RoleBinding the chart / overlay generate (no ClusterRole at all) serves its namespace: it reconciles a
StreamProcessor, writes its status and polls its lag."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from smc_operator.chart import base_objects, namespaced_role
from tests.integration.operator_harness import (
    OperatorProcess,
    apply,
    get,
    install_manifests,
    sample_cr,
    status_of,
    wait_for,
)
from tests.testbed.common import free_ports
from tests.testbed.fixture_types import Kubectl, MakeTopic, Testbed

pytestmark = [pytest.mark.k8s, pytest.mark.kafka]


class ScopedOperator(OperatorProcess):
    """``smc-operator --standalone --namespace <ns>`` (kopf's namespaced mode)."""

    def __init__(self, namespace: str, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.namespace = namespace

    def start(self) -> None:
        self.health_port, self.metrics_port = free_ports(2)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "smc_operator.cli",
                "--standalone",
                f"--namespace={self.namespace}",
                f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
                f"--metrics-port={self.metrics_port}",
                "--metrics-address=127.0.0.1",
            ],
            env={**self.env, "KUBECONFIG": str(self.kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(self.alive, timeout=60, what="namespaced operator liveness")


@pytest.fixture
def scoped(
    testbed: Testbed, kubectl: Kubectl, operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """A namespace, a ServiceAccount in it bound only by the generated Role, and a kubeconfig for it."""
    install_manifests(kubectl)  # the CRD (cluster-scoped: installed once by an admin)
    ns = f"nsop-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", ns)
    kubectl("-n", ns, "create", "serviceaccount", "scoped-operator")
    role, binding = namespaced_role(base_objects(), ns)
    binding["subjects"] = [{"kind": "ServiceAccount", "name": "scoped-operator", "namespace": ns}]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, binding]))
    token = kubectl("-n", ns, "create", "token", "scoped-operator", "--duration=1h").stdout.strip()
    config = yaml.safe_load(operator_kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    path = tmp_path / "kubeconfig-scoped"
    path.write_text(yaml.safe_dump(config))
    yield ns, path
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_an_operator_with_only_namespaced_roles_serves_its_namespace(
    scoped: tuple[str, Path],
    testbed: Testbed,
    kubectl: Kubectl,
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: MakeTopic,
) -> None:
    ns, kubeconfig = scoped
    sa = f"system:serviceaccount:{ns}:scoped-operator"
    for verb, resource, where, allowed in (
        ("patch", "statefulsets.apps", ["-n", ns], "yes"),
        ("list", "pods", ["-n", ns], "yes"),
        ("list", "pods", ["-n", "default"], "no"),
        ("list", "customresourcedefinitions", [], "no"),
    ):
        answer = kubectl("auth", "can-i", verb, resource, *where, f"--as={sa}", check=False)
        assert answer.stdout.strip() == allowed, (verb, resource, where, answer.stdout)

    operator = ScopedOperator(ns, kubeconfig, testbed.env, tmp_path / "operator.log")
    operator.start()
    try:
        topic = make_topic(partitions=2, prefix="op-ns")
        apply(kubectl, ns, sample_cr("scoped", kafka_bootstrap, [topic]))
        wait_for(lambda: get(kubectl, ns, "statefulset", "scoped"), timeout=60, what="StatefulSet")
        status = wait_for(
            lambda: (s := status_of(kubectl, ns, "scoped")).get("consumerLag") and s,
            timeout=60,
            what="status with a lag poll",
        )
        assert status["consumerLag"]["total"] == 0 and status.get("configHash")
        # Changes are noticed (the CR watch in the namespace works), and nothing was forbidden.
        kubectl("-n", ns, "patch", "sp", "scoped", "--type=merge", "-p", '{"spec": {"replicas": 2}}')
        wait_for(
            lambda: (get(kubectl, ns, "statefulset", "scoped") or {}).get("spec", {}).get("replicas") == 2,
            timeout=30,
            what="the update reconciled",
        )
        assert "orbidden" not in operator.log(), operator.log()[-3000:]
    finally:
        kubectl("-n", ns, "delete", "streamprocessors", "--all", "--timeout=60s", check=False)
        operator.stop()
