"""Lag-driven autoscaling against the real broker and apiserver (no runtime pods: the tests play the consumers
by committing the group's offsets, which is all the operator looks at). The policy-bounded burst and the
rate-mode rescale run with real processor pods in ``test_operator_pods_scaling.py``.

The breaker hold runs there too, against a pod whose broker refuses an output topic; its pure parts (the
hold decision, reading a ``/health`` document) are unit-tested in ``tests/unit/operator/``.

Decisions observed are printed (run with ``-s`` to see the table).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.integration.operator_harness import (
    OperatorProcess,
    apply,
    events,
    fresh_namespace,
    get,
    running_operator,
    sample_cr,
    status_of,
    sts_replicas,
    wait_for,
    wait_replicas,
)
from tests.testbed.fixture_types import Kubectl, MakeTopic, Testbed

pytestmark = [pytest.mark.k8s, pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def operator(
    testbed: Testbed, kubectl: Kubectl, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log_dir = tmp_path_factory.mktemp("operator-scaling")
    with running_operator(kubectl, operator_kubeconfig, testbed.env, log_dir) as op:
        yield op


@pytest.fixture
def namespace(kubectl: Kubectl, operator: OperatorProcess) -> Iterator[str]:
    with fresh_namespace(kubectl, "scale") as name:
        yield name


def produce_backlog(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for p in range(partitions):
        for i in range(per_partition):
            producer.produce(topic, value=b'{"n": %d}' % i, partition=p)
        producer.poll(0)
    assert producer.flush(30) == 0


class GroupCommitter:
    """Commits offsets for a consumer group without joining it (what a consumer fleet would leave behind)."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int) -> None:
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self.topic = topic
        self.positions = [0] * partitions

    def commit(self) -> None:
        offsets = [TopicPartition(self.topic, p, off) for p, off in enumerate(self.positions)]
        self.consumer.commit(offsets=offsets, asynchronous=False)

    def advance(self, records: int, ends: list[int]) -> None:
        """Consume ``records`` more, spread over the partitions that still have some."""
        for _ in range(records):
            open_parts = [p for p in range(len(ends)) if self.positions[p] < ends[p]]
            if not open_parts:
                break
            p = min(open_parts, key=lambda q: self.positions[q])
            self.positions[p] += 1

    def close(self) -> None:
        self.consumer.close()


def _row(kubectl: Kubectl, ns: str, name: str, t0: float) -> dict[str, Any]:
    s = status_of(kubectl, ns, name)
    auto = s.get("autoscaler") or {}
    return {
        "t": round(time.monotonic() - t0, 1),
        "replicas": sts_replicas(kubectl, ns, name),
        "lag": (s.get("consumerLag") or {}).get("total"),
        "desired": s.get("desiredReplicas"),
        "recommended": auto.get("recommendedReplicas"),
        "perReplicaRate": auto.get("perReplicaRate"),
        "produceRate": auto.get("produceRate"),
        "decision": auto.get("decision"),
    }


def _print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    last = None
    for row in rows:
        key = (row["replicas"], row["decision"])
        if key != last:
            print(f"  t={row['t']:>5}s replicas={row['replicas']} lag={row['lag']} :: {row['decision']}")
        last = key


def test_threshold_scaling_up_bounded_by_partitions_down_after_window_across_restart(
    operator: OperatorProcess,
    kubectl: Kubectl,
    namespace: str,
    kafka_bootstrap: str,
    make_topic: MakeTopic,
) -> None:
    partitions, per_partition, window = 4, 1000, 10
    topic = make_topic(partitions=partitions, prefix="op-scale")
    produce_backlog(kafka_bootstrap, topic, partitions, per_partition)
    cr = sample_cr("lagged", kafka_bootstrap, [topic])
    cr["spec"]["autoscaling"] = {
        "enabled": True,
        "mode": "threshold",
        "minReplicas": 1,
        "maxReplicas": 10,
        "lagThreshold": 500,
        "pollIntervalSeconds": 1,
        "scaleDownStabilizationSeconds": window,
    }
    t0 = time.monotonic()
    apply(kubectl, namespace, cr)
    rows: list[dict[str, Any]] = []

    # 4000 records of lag / 500 per replica = 8, but only 4 partitions: 4 replicas.
    wait_replicas(kubectl, namespace, "lagged", partitions, timeout=60, what="scale-up to 4")
    rows.append(_row(kubectl, namespace, "lagged", t0))
    status = status_of(kubectl, namespace, "lagged")
    assert status["consumerLag"]["total"] == partitions * per_partition
    assert status["desiredReplicas"] == partitions and "4 partitions" in status["lastScaleReason"]
    assert any(e["reason"] == "ScaledUp" for e in events(kubectl, namespace, "lagged"))
    time.sleep(2)
    assert sts_replicas(kubectl, namespace, "lagged") == partitions  # steady while the lag stays
    config_hash = status["configHash"]

    # The fleet catches up: commit the group's offsets to the end of every partition.
    committer = GroupCommitter(kafka_bootstrap, "lagged-group", topic, partitions)
    committer.positions = [per_partition] * partitions
    committer.commit()
    committer.close()
    t_commit = time.monotonic()
    wait_for(
        lambda: status_of(kubectl, namespace, "lagged").get("consumerLag", {}).get("total") == 0,
        timeout=20,
        what="lag 0 in status",
    )
    rows.append(_row(kubectl, namespace, "lagged", t0))

    # Crash the operator inside the stabilization window and start it again: the window survives in status.
    operator.kill()
    operator.start()
    while time.monotonic() < t_commit + window - 2:
        row = _row(kubectl, namespace, "lagged", t0)
        rows.append(row)
        assert row["replicas"] == partitions, f"scaled down inside the stabilization window: {rows}"
        time.sleep(0.5)

    wait_replicas(kubectl, namespace, "lagged", 1, timeout=window + 20, what="scale-down")
    t_down = time.monotonic()
    rows.append(_row(kubectl, namespace, "lagged", t0))
    _print_table("threshold mode (lagThreshold 500, 4 partitions, window 10 s):", rows)
    assert t_down - t_commit >= window - 1.5
    assert any(e["reason"] == "ScaledDown" for e in events(kubectl, namespace, "lagged"))

    # No duplicates and nothing lost across the restart.
    selector = "app.kubernetes.io/instance=lagged"
    for kind in ("statefulsets", "configmaps", "services"):
        names = kubectl("-n", namespace, "get", kind, "-l", selector, "-o", "name").stdout.split()
        assert len(names) == 1, (kind, names)
    after = status_of(kubectl, namespace, "lagged")
    assert after["configHash"] == config_hash and after["desiredReplicas"] == 1
    assert "smc_operator_scale_decisions_total" in operator.metrics()


def test_rate_mode_scales_to_the_catch_up_target_then_back(
    operator: OperatorProcess,
    kubectl: Kubectl,
    namespace: str,
    kafka_bootstrap: str,
    make_topic: MakeTopic,
) -> None:
    partitions, per_partition, per_replica_rate, target, window = 8, 375, 50.0, 10, 6
    topic = make_topic(partitions=partitions, prefix="op-rate")
    produce_backlog(kafka_bootstrap, topic, partitions, per_partition)
    ends = [per_partition] * partitions
    cr = sample_cr("rated", kafka_bootstrap, [topic])
    cr["spec"]["resources"] = UNSCHEDULABLE
    cr["spec"]["autoscaling"] = {
        "enabled": True,
        "mode": "rate",
        "minReplicas": 1,
        "maxReplicas": 8,
        "lagThreshold": 100_000,  # the threshold fallback alone would keep 1 replica
        "pollIntervalSeconds": 1,
        "scaleDownStabilizationSeconds": window,
        "targetCatchUpSeconds": target,
        "rescaleSettleSeconds": 1,  # the simulated fleet runs at full speed as soon as its pods are Ready
    }
    apply(kubectl, namespace, cr)
    wait_for(lambda: get(kubectl, namespace, "statefulset", "rated"), timeout=30, what="StatefulSet")

    # Simulated fleet: each replica the operator asks for consumes 50 records/s.
    committer = GroupCommitter(kafka_bootstrap, "rated-group", topic, partitions)
    stop = threading.Event()

    def fleet() -> None:
        carry, last = 0.0, time.monotonic()
        while not stop.is_set():
            replicas = sts_replicas(kubectl, namespace, "rated") or 0
            now = time.monotonic()
            carry += replicas * per_replica_rate * (now - last)
            last = now
            whole = int(carry)
            carry -= whole
            committer.advance(whole, ends)
            committer.commit()
            stop.wait(0.1)

    t0 = time.monotonic()
    worker = threading.Thread(target=fleet, daemon=True)
    worker.start()
    rows: list[dict[str, Any]] = []
    checked = 0
    # Rate mode judges only Ready fleets: the pods turn Ready as soon as they exist.
    kubelet = FakeKubelet(kubectl, namespace, "rated", start_delay=0.0).__enter__()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            row = _row(kubectl, namespace, "rated", t0)
            rows.append(row)
            decision = row["decision"] or ""
            if decision.startswith("catch-up") and row["lag"]:
                r, p = row["perReplicaRate"], row["produceRate"] or 0.0
                expected = next(
                    (n for n in range(1, 9) if n * r - p > 0 and row["lag"] / (n * r - p) <= target), 8
                )
                assert row["recommended"] == expected, row
                checked += 1
            if row["lag"] == 0 and row["replicas"] == 1 and len(rows) > 5:
                break
            time.sleep(0.3)
    finally:
        kubelet.__exit__()
        stop.set()
        worker.join(timeout=10)
        committer.close()
    _print_table(f"rate mode (50 rec/s per replica, target {target}s, window {window}s):", rows)
    peak = max(r["replicas"] or 0 for r in rows)
    first_lag = partitions * per_partition
    assert checked >= 1, "no rate-based decision observed"
    # Proportional to need: about ceil(3000 / (50 * 10)) = 6, not the maximum (8) nor the threshold rule (1).
    assert 4 <= peak <= 8 and math.ceil(first_lag / (per_replica_rate * target)) - 2 <= peak
    assert rows[-1]["lag"] == 0 and rows[-1]["replicas"] == 1, rows[-1]


UNSCHEDULABLE = {"requests": {"cpu": "1000", "memory": "64Mi"}, "limits": {"memory": "64Mi"}}


class FakeKubelet:
    """Plays the kubelet for a StatefulSet's pods on a bed without a node: a pod first seen at ``t`` turns
    Running and Ready (pod IP 127.0.0.1) at ``t + start_delay`` through the pods' status subresource, so
    the StatefulSet controller counts it in ``readyReplicas`` as it would a real one. CRs it serves ask
    for ``UNSCHEDULABLE`` resources: on a bed with a node no real kubelet ever gets (and rewrites) them."""

    def __init__(self, kubectl: Kubectl, namespace: str, name: str, start_delay: float) -> None:
        self.kubectl, self.namespace, self.name, self.delay = kubectl, namespace, name, start_delay
        self.first_seen: dict[str, float] = {}
        self.ready: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeKubelet:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def ready_count(self) -> int:
        return len(self.ready)

    def _run(self) -> None:
        selector = f"app.kubernetes.io/instance={self.name}"
        while not self.stop.is_set():
            out = self.kubectl("-n", self.namespace, "get", "pods", "-l", selector, "-o", "json", check=False)
            if out.returncode == 0:
                now = time.monotonic()
                names = {p["metadata"]["name"] for p in json.loads(out.stdout)["items"]}
                self.ready &= names
                for pod in sorted(names - self.ready):
                    self.first_seen.setdefault(pod, now)
                    if now >= self.first_seen[pod] + self.delay and self._mark_ready(pod):
                        self.ready.add(pod)
                for gone in set(self.first_seen) - names:
                    del self.first_seen[gone]
            self.stop.wait(0.3)

    def _mark_ready(self, pod: str) -> bool:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": stamp}],
        }
        patch = json.dumps({"status": status})
        res = self.kubectl(
            "-n", self.namespace, "patch", "pod", pod, "--subresource=status", "--type=merge", "-p", patch,
            check=False,
        )
        return res.returncode == 0
