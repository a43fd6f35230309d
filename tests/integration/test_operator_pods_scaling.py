"""Autoscaling with running processor pods on the test bed's real node: a lag burst scales up no faster
than the behavior policy allows, and rate mode does not overshoot after a rescale (the new pod starts,
the group rebalances and restores while the scaler waits), and no scale-out while the pods report their
circuit breaker open (the broker refuses an output topic's batches: lag grows because the broker is sick,
not because replicas are missing).

One StreamProcessor (``localhost/smc-runtime:dev``, the sample's topics) is shared by the tests, in
order; each starts from a drained input. Each pod is limited to 100m CPU (a few thousand records/s) so
its consume rate is its own (not whatever the two shared cores leave) and a backlog of 100,000 lasts
long enough to watch. The operator runs as a subprocess under its non-admin identity. Run with ``-s``
to see the timelines.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
from tools import demo_k8s as k8s

from tests.integration import runtime_support as rs
from tests.integration.operator_harness import (
    OperatorProcess,
    events,
    fresh_namespace,
    running_operator,
    status_of,
    sts_replicas,
    wait_for,
)
from tests.testbed.fixture_types import Images, Kubectl, Node, Testbed

pytestmark = [pytest.mark.k8s, pytest.mark.kafka, pytest.mark.node, pytest.mark.slow]
NAME = "scaled"
PARTITIONS = {"trades": 2, "orderbook": 1, "klines": 1}  # 4 input partitions: at most 4 replicas
PERIOD_S = 4  # scale-up policy: one pod per PERIOD_S
THRESHOLD = 1000
HEALTH_PORT = 8081  # the sample CR's ports.health
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "512Mi"}}
BASE_SCALING: dict[str, Any] = {
    "enabled": True,
    "mode": "threshold",
    "minReplicas": 1,
    "maxReplicas": 4,
    "lagThreshold": THRESHOLD,
    "pollIntervalSeconds": 1,
    "scaleDownStabilizationSeconds": 4,
    "rescaleSettleSeconds": 3,
    "rateWindowSeconds": 6,
    "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": PERIOD_S}]}},
}


@dataclass
class Fleet:
    kubectl: Kubectl
    namespace: str
    topics: k8s.Topics
    host_bootstrap: str
    admin: Any
    operator: OperatorProcess
    seed: int = 100

    def replicas(self) -> int:
        return sts_replicas(self.kubectl, self.namespace, NAME) or 0

    def status(self) -> dict[str, Any]:
        return status_of(self.kubectl, self.namespace, NAME)

    def lag(self) -> int | None:
        lag = (self.status().get("consumerLag") or {}).get("total")
        return None if lag is None else int(lag)

    def ready(self) -> int:
        pods = k8s.pods_of(self.kubectl, self.namespace, NAME)
        return sum(1 for p in pods if k8s.pod_ready(p) and not p["metadata"].get("deletionTimestamp"))

    def records(self, count: int) -> list[tuple[str, bytes, bytes]]:
        """``count`` records of a fresh seed (no trade id repeats an earlier feed's)."""
        self.seed += 1
        return k8s.market_data(count, seed=self.seed)

    def feed(self, records: list[tuple[str, bytes, bytes]]) -> threading.Thread:
        """Produce in the background (the scaler's first move comes within a poll of the first records)."""
        args = (self.host_bootstrap, self.topics, records)
        thread = threading.Thread(target=k8s.feed, args=args, daemon=True)
        thread.start()
        return thread

    def scale_with(self, **fields: Any) -> None:
        patch = {"spec": {"autoscaling": {**BASE_SCALING, **fields}}}
        self.kubectl("-n", self.namespace, "patch", f"sp/{NAME}", "--type=merge", "-p", json.dumps(patch))

    def wait_idle(self, timeout: float = 150) -> None:
        """Input drained, one replica, and that pod Ready (the next test starts from here)."""
        wait_for(
            lambda: self.lag() == 0 and self.replicas() == 1 and self.ready() == 1,
            timeout=timeout,
            what="lag 0 at one Ready replica",
            interval=0.5,
        )

    def breakers(self) -> dict[str, tuple[int, str | None]]:
        """Each running pod's ``/health`` (code, checks.circuit_breaker of its processor), read over the
        pod IP as the operator reads it."""
        out: dict[str, tuple[int, str | None]] = {}
        for pod in k8s.pods_of(self.kubectl, self.namespace, NAME):
            ip = pod.get("status", {}).get("podIP")
            if not ip or pod["metadata"].get("deletionTimestamp"):
                continue
            try:
                code, doc = rs.http_json(f"http://{ip}:{HEALTH_PORT}/health", timeout=1.0)
                states = [p["checks"]["circuit_breaker"] for p in doc["processors"].values()]
                out[pod["metadata"]["name"]] = (code, states[0] if states else None)
            except (OSError, KeyError, TypeError, ValueError):
                out[pod["metadata"]["name"]] = (0, None)
        return out

    def restarts(self) -> dict[str, int]:
        return k8s.restarts(k8s.pods_of(self.kubectl, self.namespace, NAME))

    def series(self) -> dict[str, float]:
        """The operator's metrics about this CR, keyed by name plus its other labels."""
        out = {}
        for line in self.operator.metrics().splitlines():
            found = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
            if not found:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2)))
            if labels.pop("namespace", None) == self.namespace and labels.pop("name", None) == NAME:
                rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                out[found.group(1) + (f"{{{rest}}}" if rest else "")] = float(found.group(3))
        return out

    def watch(
        self, until: Any, timeout: float, interval: float = 0.3, start: Any = None
    ) -> list[dict[str, Any]]:
        """Rows (t, replicas, ready, lag, autoscaler status) every ``interval`` until ``until(rows)``;
        ``start()`` runs once the first row (the state before) is taken."""
        rows: list[dict[str, Any]] = []
        t0 = deadline = time.monotonic()
        deadline += timeout
        while time.monotonic() < deadline:
            status = self.status()
            auto = status.get("autoscaler") or {}
            rows.append({
                "t": round(time.monotonic() - t0, 1),
                "replicas": self.replicas(),
                "ready": status.get("readyReplicas"),
                "lag": (status.get("consumerLag") or {}).get("total"),
                "recommended": auto.get("recommendedReplicas"),
                "perReplicaRate": auto.get("perReplicaRate"),
                "heldBy": auto.get("heldBy"),
                "decision": auto.get("decision") or "",
                # the scaler's own record of its moves: (lag sample time, epoch s; replicas added)
                "events": [(e["time"], e["delta"]) for e in auto.get("scaleEvents") or []],
            })
            if len(rows) == 1 and start is not None:
                start()
            elif until(rows):
                break
            time.sleep(interval)
        return rows


def _print(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    last = None
    for row in rows:
        key = (row["replicas"], row["ready"], row["heldBy"])
        if key != last:
            print(f"  t={row['t']:>5}s replicas={row['replicas']} ready={row['ready']} lag={row['lag']}"
                  f" R={row['perReplicaRate']} :: {row['decision'][:160]}")
        last = key


@pytest.fixture(scope="module")
def fleet(
    testbed: Testbed,
    testbed_node: Node,
    smc_images: Images,
    pod_kafka_bootstrap: str,
    kafka_bootstrap: str,
    kubectl: Kubectl,
    operator_kubeconfig: Path,
    kafka_admin: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    log_dir = tmp_path_factory.mktemp("operator-pod-scaling")
    with (
        running_operator(kubectl, operator_kubeconfig, testbed.env, log_dir) as operator,
        fresh_namespace(kubectl, "scaling") as namespace,
    ):
        topics = k8s.Topics.of_sample(PARTITIONS, prefix=namespace)
        k8s.create_topics(kafka_admin, topics, output_partitions=1)
        cr = k8s.sample_processor(
            NAME,
            image=smc_images.runtime,
            bootstrap=pod_kafka_bootstrap,
            topics=topics,
            autoscaling=BASE_SCALING,
            resources=RESOURCES,
        )
        k8s.apply(kubectl, namespace, cr)
        fleet = Fleet(kubectl, namespace, topics, kafka_bootstrap, kafka_admin, operator)
        started = time.monotonic()
        fleet.wait_idle(timeout=180)
        print(f"\nfirst pod Ready, lag 0 after {time.monotonic() - started:.1f}s")
        yield fleet


def test_a_lag_burst_scales_up_no_faster_than_the_policy_allows(fleet: Fleet) -> None:
    burst = fleet.records(100_000)  # lag / 1000 per replica: far above 4 replicas for the whole climb
    fleet.wait_idle()
    fed_at = time.time()
    rows = fleet.watch(
        lambda rows: rows[-1]["replicas"] == 4, timeout=60, interval=0.1, start=lambda: fleet.feed(burst)
    )
    changes = [(r["t"], r["replicas"]) for a, r in itertools.pairwise(rows) if r["replicas"] != a["replicas"]]
    _print(f"burst (Pods 1 per {PERIOD_S} s): replica changes {changes}", rows)
    assert [n for _, n in changes] == [2, 3, 4], "more than one pod per step, or no climb"
    # The policy, on the scaler's own clock: each move one pod, at least PERIOD_S after the last one.
    # (the status patch follows the StatefulSet's: the last move may show up a poll later)
    seen = {e for r in rows for e in r["events"] if e[0] >= fed_at - 1}
    deadline = time.monotonic() + 10
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
        recorded = (fleet.status().get("autoscaler") or {}).get("scaleEvents") or []
        seen |= {(e["time"], e["delta"]) for e in recorded if e["time"] >= fed_at - 1}
    moves = sorted(seen)
    assert [delta for _, delta in moves] == [1, 1, 1], moves
    move_gaps = [b[0] - a[0] for a, b in itertools.pairwise(moves)]
    assert min(move_gaps) >= PERIOD_S - 1e-3, move_gaps
    assert max(move_gaps) <= PERIOD_S + 3, move_gaps  # and not needlessly slower (1 s polls)
    # What a watcher sees agrees: two kubectl calls per row make its times ~1 s coarse on a busy host
    # (a CI run saw 3.3 s between changes the scaler made 4 s apart), a policy ignored shows ~1 s gaps.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(changes)]
    assert min(gaps) >= PERIOD_S - 1.5, gaps
    ups = [e.get("message", "") for e in events(fleet.kubectl, fleet.namespace, NAME)
           if e["reason"] == "ScaledUp"]
    assert any("behavior policies" in m for m in ups), ups
    # The pods are real: the new ones turn Ready and the fleet drains the burst.
    drain = fleet.watch(lambda rows: rows[-1]["lag"] == 0, timeout=90)
    print(f"  drained {drain[-1]['t']}s after the fourth replica; Ready pods at most"
          f" {max(r['ready'] or 0 for r in drain)}")
    assert drain[-1]["lag"] == 0 and max(r["ready"] or 0 for r in drain) >= 2, drain[-3:]
    values = fleet.series()
    assert values.get('smc_operator_scale_events_total{direction="up"}') == 3, values
    assert time.time() - values["smc_operator_lag_poll_last_success_timestamp_seconds"] < 10, values


def test_rate_mode_does_not_overshoot_after_a_rescale(fleet: Fleet) -> None:
    """Set up so that the rate rule wants 2 replicas. While the second pod starts, restores and the
    group rebalances, the first consumes alone (or nothing, mid-rebalance): a per-replica rate judged
    then is half or less of the real one and asks for 3 or 4, then more as the lag stays."""
    # Sized for a pod draining up to ~9,500 msgs/s (7,080 measured since the loop stopped waiting on
    # queued records; 220,000 left too little backlog to judge at that rate).
    backlog = fleet.records(320_000)
    fleet.wait_idle()
    fleet.scale_with(lagThreshold=10_000_000)  # threshold rule: keep 1 while the backlog arrives
    fleet.feed(backlog).join(60)
    # The feed leaves the produce-rate window and the one Ready pod's rate gets measured.
    time.sleep(BASE_SCALING["rateWindowSeconds"] + 1)
    auto = wait_for(
        lambda: a if (a := fleet.status().get("autoscaler") or {}).get("perReplicaRate") else None,
        timeout=20,
        what="a per-replica rate measured at one replica",
    )
    lag = fleet.lag() or 0
    rate = float(auto["perReplicaRate"])
    # 1 replica would take 1.9 x target, 2 take 0.95 x. Judged mid-rescale at half the rate, 2 look like
    # 1.9 x and 4 are asked for (3.8); the target is long enough for the backlog to outlast the pod start.
    target = math.ceil(lag / (1.9 * rate))
    assert fleet.replicas() == 1 and target >= 15, (lag, rate, "backlog too short to judge")
    rate_mode = {
        "mode": "rate",
        "lagThreshold": 10_000_000,
        "targetCatchUpSeconds": target,
        "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 1}]}},
    }
    def done(rows: list[dict[str, Any]]) -> bool:  # drained, or back to one pod after the rescale
        return rows[-1]["lag"] == 0 or (rows[-1]["replicas"] == 1 and max(r["replicas"] for r in rows) > 1)

    rows = fleet.watch(done, timeout=120, start=lambda: fleet.scale_with(**rate_mode))
    _print(f"rate mode: lag {lag}, R {rate:.0f}/s at one replica, target {target}s", rows)
    steps = [r["replicas"] for a, r in itertools.pairwise(rows) if r["replicas"] != a["replicas"]]
    assert steps and steps[0] in (2, 3), steps  # the rate rule's answer (3 if the next poll's R is lower)
    # Judged while the new pod starts and the group rebalances, the per-replica rate looks half or less
    # and the rule asks for more (with settling disabled: 2 -> 3 with one pod Ready, R 2491/s for 5973/s).
    # So no further scale-up before every pod of the last rescale is Ready, and never the maximum.
    ups = [(a, r) for a, r in itertools.pairwise(rows) if r["replicas"] > a["replicas"]]
    for before, _ in ups[1:]:
        assert before["ready"] == before["replicas"], ("scaled up before the rescale settled", before)
    assert max(r["replicas"] for r in rows) <= 3, rows
    assert done(rows), rows[-3:]


def _set_topic_config(admin: Any, topic: str, key: str, value: str | None) -> None:
    """Set (or, with None, delete back to the broker default) one topic config, incrementally."""
    op = AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
    entry = ConfigEntry(key, value or "", incremental_operation=op)
    resource = ConfigResource("TOPIC", topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def test_no_scale_out_while_the_pods_report_the_breaker_open(fleet: Fleet) -> None:
    """The enriched-trades topic refuses every batch (its max.message.bytes lowered below one record
    through the admin API) while a burst waits: the pod's runtime aborts, opens its breaker and pauses
    (alive, not Ready, no restart); the operator reads the breaker from the pod's /health and holds the
    scale-up although the lag is far above the threshold. Once the topic accepts records again the
    breaker closes and the operator scales up."""
    hold_s = 8.0
    refused = fleet.topics.outputs["enrichedTrades"]
    burst = fleet.records(30_000)  # lag / 1000 per replica: 4 replicas wanted throughout
    fleet.wait_idle()
    restarts_before = fleet.restarts()
    fleet.scale_with(lagThreshold=10_000_000)  # no scale-up while the breaker is being opened
    _set_topic_config(fleet.admin, refused, "max.message.bytes", "200")
    try:
        fleet.feed(burst).join(60)
        opened = wait_for(
            lambda: b if (b := fleet.breakers()) and all(s == "open" for _, s in b.values()) else None,
            timeout=30,
            what="the pod's /health reports the breaker open",
        )
        assert all(code == 200 for code, _ in opened.values()), opened  # alive: not restarted for it
        wait_for(lambda: fleet.series().get("smc_operator_breaker_open_replicas") == 1, timeout=10,
                 what="the operator counts the open breaker")
        held = fleet.watch(lambda rows: rows[-1]["t"] >= hold_s, timeout=hold_s + 10,
                           start=lambda: fleet.scale_with(lagThreshold=THRESHOLD))
        _print(f"breaker open, threshold {THRESHOLD}: {hold_s:.0f}s of decisions", held)
        assert all(r["replicas"] == 1 for r in held), "scaled out on an open breaker"
        judged = [r for r in held if r["t"] >= 3]  # the threshold patch is in the operator's hands
        assert judged and all(r["heldBy"] == "breaker" for r in judged), judged[-3:]
        assert min(r["lag"] or 0 for r in judged) > 4 * THRESHOLD, judged[-3:]  # lag asks for 4
        assert "circuit breaker open" in judged[-1]["decision"], judged[-1]
        assert fleet.series().get('smc_operator_scaler_held{cause="breaker"}') == 1
    finally:
        _set_topic_config(fleet.admin, refused, "max.message.bytes", None)
    restored = time.monotonic()
    # The replica count and the scaler's decision reach the status in separate patches: wait for both.
    rows = fleet.watch(lambda rows: rows[-1]["replicas"] >= 2 and rows[-1]["heldBy"] != "breaker", timeout=60)
    _print(f"topic accepts again: scaled up {time.monotonic() - restored:.1f}s later", rows)
    assert rows[-1]["replicas"] >= 2 and rows[-1]["heldBy"] != "breaker", rows[-3:]
    assert fleet.series().get("smc_operator_breaker_open_replicas") == 0
    pod = f"{NAME}-0"
    assert fleet.restarts()[pod] == restarts_before[pod], "the pod restarted instead of holding"
