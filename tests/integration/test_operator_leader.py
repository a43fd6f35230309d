"""Two operator processes against the real apiserver with ``--leader-election``: exactly one leads (holds the
Lease, runs kopf, scales), the other waits; killing the leader hands over within the lease time, and the
new leader scales. A graceful stop releases the Lease at once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.operator_harness import (
    OperatorProcess,
    apply,
    get,
    install_manifests,
    sample_cr,
    sts_replicas,
    wait_for,
)
from tests.integration.test_operator_scaling import produce_backlog
from tests.testbed.common import free_ports
from tests.testbed.fixture_types import Kubectl, MakeTopic, Testbed

pytestmark = [pytest.mark.k8s, pytest.mark.kafka, pytest.mark.slow]

LEASE_S, RENEW_S, RETRY_S = 4.0, 1.0, 0.5
LEASE_NS = "smc-system"


class Candidate(OperatorProcess):
    """``smc-operator --leader-election`` with its own identity and a short lease."""

    def __init__(self, identity: str, lease: str, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.identity, self.lease = identity, lease

    def start(self) -> None:
        self.health_port, self.metrics_port = free_ports(2)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "smc_operator.cli",
                "--standalone",
                "--all-namespaces",
                f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
                f"--metrics-port={self.metrics_port}",
                "--metrics-address=127.0.0.1",
                "--leader-election",
                f"--leader-election-namespace={LEASE_NS}",
                f"--leader-election-id={self.lease}",
                f"--identity={self.identity}",
                f"--lease-duration={LEASE_S}",
                f"--renew-period={RENEW_S}",
                f"--retry-period={RETRY_S}",
            ],
            env={**self.env, "KUBECONFIG": str(self.kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(self.alive, timeout=60, what=f"{self.identity} liveness (standby or active)")

    def leading(self) -> bool:
        match = re.search(r"^smc_operator_leader (\S+)$", self.metrics(), re.M)
        return match is not None and float(match.group(1)) == 1.0


def holder(kubectl: Kubectl, lease: str) -> str | None:
    obj = get(kubectl, LEASE_NS, "lease", lease)
    return None if obj is None else obj["spec"].get("holderIdentity")


@pytest.fixture
def setup(
    testbed: Testbed, kubectl: Kubectl, operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[tuple[str, str, list[Candidate]]]:
    install_manifests(kubectl)
    lease = f"smc-op-{uuid.uuid4().hex[:6]}"
    ns = f"lead-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", ns)
    started: list[Candidate] = []
    yield lease, ns, started
    survivors = [c for c in started if c.proc is not None and c.proc.poll() is None]
    kubectl("-n", ns, "delete", "streamprocessors", "--all", "--timeout=60s", check=False)
    for c in survivors:
        c.stop()
    kubectl("delete", "namespace", ns, "--wait=false", check=False)
    kubectl("-n", LEASE_NS, "delete", "lease", lease, check=False)


def _candidate(name: str, lease: str, testbed: Testbed, kubeconfig: Path, tmp: Path) -> Candidate:
    return Candidate(name, lease, kubeconfig, testbed.env, tmp / f"{name}.log")


def test_two_operators_elect_one_leader_and_fail_over_within_the_lease_time(
    setup: tuple[str, str, list[Candidate]],
    testbed: Testbed,
    kubectl: Kubectl,
    operator_kubeconfig: Path,
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: MakeTopic,
) -> None:
    lease, ns, started = setup
    a = _candidate("op-a", lease, testbed, operator_kubeconfig, tmp_path)
    b = _candidate("op-b", lease, testbed, operator_kubeconfig, tmp_path)
    a.start()
    started.append(a)
    wait_for(lambda: holder(kubectl, lease) == "op-a", timeout=20, what="op-a to take the Lease")
    b.start()
    started.append(b)
    time.sleep(LEASE_S)  # several renew/retry rounds: b must stay standby while a renews
    assert holder(kubectl, lease) == "op-a"
    assert a.leading() and not b.leading()

    partitions = 3
    topic = make_topic(partitions=partitions, prefix="op-lead")
    cr = sample_cr("led", kafka_bootstrap, [topic])
    cr["spec"]["autoscaling"] = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 3,
        "lagThreshold": 100,
        "pollIntervalSeconds": 0.5,
    }
    apply(kubectl, ns, cr)
    wait_for(
        lambda: sts_replicas(kubectl, ns, "led") == 1, timeout=30, what="the leader creates the workload"
    )
    # the leader did the work (its reconcile log line may land just after the StatefulSet appears)
    wait_for(lambda: "\"led\"" in a.log(), timeout=10, what="the leader's log to name the CR")
    assert "\"led\"" not in b.log()  # the standby watched nothing

    a.kill()  # SIGKILL: no release, b has to wait the lease out
    killed = time.monotonic()
    wait_for(lambda: holder(kubectl, lease) == "op-b", timeout=LEASE_S + 10, what="op-b to take over")
    took_over = time.monotonic() - killed
    produce_backlog(kafka_bootstrap, topic, partitions, 200)
    wait_for(lambda: sts_replicas(kubectl, ns, "led") == partitions, timeout=30, what="op-b scales")
    scaled = time.monotonic() - killed
    print(f"\nfailover: Lease to op-b after {took_over:.1f}s (lease {LEASE_S}s), scaled after {scaled:.1f}s")
    assert took_over <= LEASE_S + RETRY_S + 2.0
    assert b.leading()
    lease_obj = get(kubectl, LEASE_NS, "lease", lease)
    assert lease_obj is not None and lease_obj["spec"]["leaseTransitions"] >= 1
    print(json.dumps(lease_obj["spec"]))


def test_a_graceful_stop_hands_the_lease_over_at_once(
    setup: tuple[str, str, list[Candidate]],
    testbed: Testbed,
    kubectl: Kubectl,
    operator_kubeconfig: Path,
    tmp_path: Path,
) -> None:
    lease, _, started = setup
    a = _candidate("op-a", lease, testbed, operator_kubeconfig, tmp_path)
    b = _candidate("op-b", lease, testbed, operator_kubeconfig, tmp_path)
    for c in (a, b):
        c.start()
        started.append(c)
    first = wait_for(lambda: holder(kubectl, lease), timeout=20, what="a leader")
    leader, standby = (a, b) if first == "op-a" else (b, a)
    time.sleep(2 * RENEW_S)
    assert holder(kubectl, lease) == first and leader.leading() and not standby.leading()  # exactly one
    stopped = time.monotonic()
    leader.stop()  # SIGTERM: kopf stops, the Lease is released
    assert leader.proc is not None and leader.proc.returncode == 0
    wait_for(lambda: holder(kubectl, lease) == standby.identity, timeout=LEASE_S, what="handover")
    handover = time.monotonic() - stopped
    print(f"\ngraceful handover after {handover:.1f}s")
    assert handover < LEASE_S
