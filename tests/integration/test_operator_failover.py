"""Leader election in-cluster, on the test bed's real node: the operator deployed as users deploy it
(``kubectl apply -k manifests/overlays/local``, 2 replicas of ``localhost/smc-operator:dev`` on one node),
the two pods elect one leader (the Lease's holder), ``kubectl delete pod <leader>`` hands the Lease to
a live candidate (the standby, or the Deployment's replacement pod
if it asks first) within the lease duration, and the new leader keeps reconciling (a CR change reaches the
StatefulSet). The CR runs 0 replicas: only the operator's pods matter here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from tools import demo_k8s as k8s

from smc_operator.render import RESTART_NONCE_ANNOTATION
from tests.integration.operator_harness import apply, get, sample_cr, wait_for
from tests.testbed.fixture_types import Images, Kubectl, MakeTopic, Node

pytestmark = [pytest.mark.k8s, pytest.mark.kafka, pytest.mark.node, pytest.mark.slow]
LEASE = "smc-operator"  # in the operator's namespace, --leader-election-id's default
LEASE_DURATION_S = 15.0  # --lease-duration's default in manifests/base


def lease_holder(kubectl: Kubectl) -> str | None:
    out = kubectl("-n", k8s.OPERATOR_NAMESPACE, "get", "lease", LEASE, "-o", "json", check=False)
    if out.returncode != 0:
        return None
    holder = json.loads(out.stdout)["spec"].get("holderIdentity")
    return str(holder) if holder else None


def ready_pods(kubectl: Kubectl) -> list[str]:
    return sorted(p["metadata"]["name"] for p in k8s.operator_pods(kubectl) if k8s.pod_ready(p))


@pytest.fixture(scope="module")
def deployed(testbed_node: Node, smc_images: Images, kubectl: Kubectl) -> Iterator[None]:
    assert smc_images.operator == k8s.OPERATOR_IMAGE
    k8s.deploy_operator(kubectl)
    yield
    # Other modules run the operator as a subprocess: only one may serve the CRs.
    k8s.remove_operator(kubectl)


@pytest.fixture
def namespace(kubectl: Kubectl, deployed: None) -> Iterator[str]:
    name = f"failover-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("-n", name, "delete", "sp", "--all", "--timeout=60s", check=False, timeout=70)
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_two_operator_pods_elect_one_leader_and_the_standby_takes_over_when_it_is_deleted(
    kubectl: Kubectl, namespace: str, pod_kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    def two_ready() -> list[str] | None:
        found = ready_pods(kubectl)
        return found if len(found) == 2 else None

    def elected() -> str | None:
        holder = lease_holder(kubectl)
        return holder if holder in pods else None

    pods = wait_for(two_ready, timeout=90, what="2 Ready operator pods")
    leader = wait_for(elected, timeout=60, what="a leader")  # an earlier pod's Lease may take 45 s to expire
    (standby,) = [p for p in pods if p != leader]
    node_names = {p["spec"].get("nodeName") for p in k8s.operator_pods(kubectl)}
    print(f"\nleader {leader}, standby {standby}, node(s) {sorted(node_names)}")

    cr = sample_cr("ha", pod_kafka_bootstrap, [make_topic(prefix="failover")], replicas=0)
    apply(kubectl, namespace, cr)
    wait_for(lambda: get(kubectl, namespace, "statefulset", "ha"), timeout=30, what="the leader's reconcile")
    standby_log = kubectl("-n", k8s.OPERATOR_NAMESPACE, "logs", standby).stdout
    assert f"{namespace}/ha" not in standby_log, "the standby acted"

    started = time.monotonic()
    kubectl("-n", k8s.OPERATOR_NAMESPACE, "delete", "pod", leader, "--wait=false")
    holders: list[tuple[float, str | None]] = []

    def taken_over() -> str | None:
        # The standby, or the Deployment's replacement for the deleted pod if it starts and asks first
        # (both are live candidates; what matters is that leadership left the deleted pod at once).
        holder = lease_holder(kubectl)
        if not holders or holders[-1][1] != holder:
            holders.append((time.monotonic() - started, holder))
        return holder if holder and holder != leader else None

    try:
        new_leader = wait_for(taken_over, timeout=LEASE_DURATION_S + 5, what="takeover")
    except AssertionError:
        print(f"lease holders after the delete (s, holder): {holders}")
        print(kubectl("-n", k8s.OPERATOR_NAMESPACE, "get", "pods,lease", "-o", "wide", check=False).stdout)
        for pod in (leader, standby):
            print(f"--- logs of {pod}:")
            print(kubectl("-n", k8s.OPERATOR_NAMESPACE, "logs", pod, "--tail=40", check=False).stdout)
        raise
    took_over = time.monotonic() - started
    role = "standby" if new_leader == standby else "replacement pod"
    print(f"{role} {new_leader} took the Lease {took_over:.1f}s after `kubectl delete pod {leader}`; "
          f"holders seen: {holders}")
    assert took_over < LEASE_DURATION_S

    cr["spec"]["restartNonce"] = "after-failover"
    changed = time.monotonic()
    apply(kubectl, namespace, cr)

    def nonce() -> str | None:
        sts = get(kubectl, namespace, "statefulset", "ha") or {}
        annotations = sts.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
        return annotations.get(RESTART_NONCE_ANNOTATION)

    wait_for(lambda: nonce() == "after-failover" or None, timeout=30, what="the new leader's reconcile")
    print(f"CR change reached the StatefulSet {time.monotonic() - changed:.1f}s after it was applied")
    new_log = kubectl("-n", k8s.OPERATOR_NAMESPACE, "logs", new_leader).stdout
    assert f"{namespace}/ha" in new_log, "the new leader did not log the reconcile"
