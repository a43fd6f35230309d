"""The SRE features with running pods, on the test bed's real node (kubelet + containerd + scheduler):
spec.template reaching the running pods, the PodDisruptionBudget blocking a second eviction through the
Eviction API, a deleted StatefulSet coming back (pods Ready again) within one full-reconcile interval,
and a paused reconciliation leaving the running pods alone until it is resumed.

One StreamProcessor (2 replicas of ``localhost/smc-runtime:dev``) is shared by the tests, in order. The
operator runs as a subprocess under the non-admin identity, with a 3 s full reconcile interval.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tools import demo_k8s as k8s

from smc_operator.plan import PAUSE_RECONCILIATION
from tests.integration.operator_harness import condition, fresh_namespace, get, running_operator, wait_for
from tests.testbed.fixture_types import Images, Kubectl, Node, Testbed

pytestmark = [pytest.mark.k8s, pytest.mark.kafka, pytest.mark.node, pytest.mark.slow]
NAME = "placed"
RESYNC_S = 3.0
REPLICAS = 2


@dataclass
class Fleet:
    kubectl: Kubectl
    namespace: str
    node_name: str

    def pods(self) -> list[dict[str, Any]]:
        return [
            p
            for p in k8s.pods_of(self.kubectl, self.namespace, NAME)
            if not p["metadata"].get("deletionTimestamp")
        ]

    def ready_pods(self) -> list[dict[str, Any]]:
        def ready(pod: dict[str, Any]) -> bool:
            conds = (pod.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        return [p for p in self.pods() if ready(p)]

    def wait_ready(self, count: int, timeout: float = 90) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            pods = self.ready_pods()
            return pods if len(pods) == count else None

        return wait_for(
            enough,
            timeout=timeout,
            what=f"{count} Ready pods",
            interval=0.5,
        )

    def evict(self, pod: str) -> tuple[int, str]:
        """POST an Eviction (policy/v1); returns (0 or kubectl's exit code, stderr)."""
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod, "namespace": self.namespace},
        }
        out = self.kubectl(
            "create",
            "--raw",
            f"/api/v1/namespaces/{self.namespace}/pods/{pod}/eviction",
            "-f",
            "-",
            input=json.dumps(body),
            check=False,
        )
        return out.returncode, out.stderr


@pytest.fixture(scope="module")
def fleet(
    testbed: Testbed,
    testbed_node: Node,
    smc_images: Images,
    pod_kafka_bootstrap: str,
    kubectl: Kubectl,
    operator_kubeconfig: Path,
    kafka_admin: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    env = {**testbed.env, "SMC_OPERATOR_RESYNC_SECONDS": str(RESYNC_S)}
    log_dir = tmp_path_factory.mktemp("operator-pods")
    with running_operator(kubectl, operator_kubeconfig, env, log_dir), fresh_namespace(kubectl, "pods") as ns:
        yield from _placed_fleet(kubectl, ns, testbed_node, smc_images, pod_kafka_bootstrap, kafka_admin)


def _placed_fleet(
    kubectl: Kubectl, namespace: str, node: Node, images: Images, bootstrap: str, kafka_admin: Any
) -> Iterator[Fleet]:
    topics = k8s.Topics.of_sample({"trades": 1, "orderbook": 1, "klines": 1}, prefix=namespace)
    k8s.create_topics(kafka_admin, topics, output_partitions=1)
    kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": "smc-test-pods"},
                "value": 1000,
            }
        ),
    )
    cr = k8s.sample_processor(
        NAME,
        image=images.runtime,
        bootstrap=bootstrap,
        topics=topics,
        replicas=REPLICAS,
        template={
            "pod": {
                "metadata": {"labels": {"team": "quant"}, "annotations": {"cost-center": "42"}},
                "nodeSelector": {"kubernetes.io/hostname": node.name},
                "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
                "priorityClassName": "smc-test-pods",
                "terminationGracePeriodSeconds": 20,
            },
            "container": {
                "env": [{"name": "TZ", "value": "UTC"}],
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            },
        },
    )
    k8s.apply(kubectl, namespace, cr)
    try:
        yield Fleet(kubectl, namespace, node.name)
    finally:
        kubectl("delete", "priorityclass", "smc-test-pods", check=False)


def test_template_fields_reach_the_running_pods(fleet: Fleet) -> None:
    started = time.monotonic()
    pods = fleet.wait_ready(REPLICAS, timeout=120)
    print(f"\n{REPLICAS} pods Ready {time.monotonic() - started:.1f}s after the fixture")
    for pod in pods:
        spec = pod["spec"]
        assert spec["nodeName"] == fleet.node_name and spec["priority"] == 1000
        assert spec["terminationGracePeriodSeconds"] == 20
        assert {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        box = spec["containers"][0]
        assert {"name": "TZ", "value": "UTC"} in box["env"]
        assert box["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
        assert pod["metadata"]["labels"]["team"] == "quant"
        assert pod["metadata"]["annotations"]["cost-center"] == "42"


def _wait_budget_allows_one(fleet: Fleet, what: str) -> None:
    def allowed() -> bool:
        pdb = get(fleet.kubectl, fleet.namespace, "pdb", NAME) or {}
        return bool(pdb.get("status", {}).get("disruptionsAllowed") == 1)

    wait_for(allowed, timeout=30, what=what)


def test_budget_blocks_a_second_eviction(fleet: Fleet) -> None:
    fleet.wait_ready(REPLICAS)
    _wait_budget_allows_one(fleet, "the budget to allow one disruption")
    first, second = sorted(p["metadata"]["name"] for p in fleet.pods())
    code, err = fleet.evict(first)
    assert code == 0, err
    code, err = fleet.evict(second)
    assert code != 0 and "disruption budget" in err, err
    assert second in {p["metadata"]["name"] for p in fleet.ready_pods()}
    started = time.monotonic()
    fleet.wait_ready(REPLICAS, timeout=120)  # the evicted pod comes back; then the next eviction is allowed
    _wait_budget_allows_one(fleet, "the budget to allow a disruption again")
    print(f"\nevicted pod Ready again in {time.monotonic() - started:.1f}s")
    code, err = fleet.evict(second)
    assert code == 0, err
    fleet.wait_ready(REPLICAS, timeout=120)


def test_deleted_statefulset_comes_back_with_ready_pods(fleet: Fleet) -> None:
    fleet.wait_ready(REPLICAS)
    fleet.kubectl("-n", fleet.namespace, "delete", "statefulset", NAME, "--wait=false")
    started = time.monotonic()
    wait_for(
        lambda: (
            (sts := get(fleet.kubectl, fleet.namespace, "statefulset", NAME))
            and not sts["metadata"].get("deletionTimestamp")
        ),
        timeout=RESYNC_S * 2 + 10,
        what="the StatefulSet recreated",
    )
    recreated = time.monotonic() - started
    fleet.wait_ready(REPLICAS, timeout=120)
    ready = time.monotonic() - started
    print(f"\nStatefulSet recreated after {recreated:.1f}s, {REPLICAS} pods Ready after {ready:.1f}s")
    assert recreated <= RESYNC_S + 5


def test_pause_leaves_running_pods_alone_until_resumed(fleet: Fleet) -> None:
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in fleet.wait_ready(REPLICAS)}
    fleet.kubectl("-n", fleet.namespace, "annotate", f"sp/{NAME}", f"{PAUSE_RECONCILIATION}=true")
    wait_for(
        lambda: (
            condition(k8s.sp_status(fleet.kubectl, fleet.namespace, NAME), "Paused").get("status") == "True"
        ),
        timeout=15,
        what="Paused",
    )
    fleet.kubectl(
        "-n", fleet.namespace, "patch", f"sp/{NAME}", "--type=merge", "-p", '{"spec": {"restartNonce": "r1"}}'
    )
    time.sleep(RESYNC_S * 2)
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in fleet.ready_pods()} == pods  # nothing rolled

    fleet.kubectl("-n", fleet.namespace, "annotate", f"sp/{NAME}", f"{PAUSE_RECONCILIATION}-")
    started = time.monotonic()
    wait_for(
        lambda: (
            {p["metadata"]["uid"] for p in fleet.ready_pods()}.isdisjoint(pods.values())
            and len(fleet.ready_pods()) == REPLICAS
        ),
        timeout=180,
        what="every pod rolled once resumed",
        interval=1.0,
    )
    print(f"\nresumed: both pods rolled and Ready in {time.monotonic() - started:.1f}s")
