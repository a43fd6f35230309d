"""End to end on the test bed's real node: the operator in-cluster from its image, the sample processor
fleet scaling on a real backlog, pods deleted, rolled, wedged and cut off from Kafka, and the committed
outputs compared with one uninterrupted run over the same input.

The tests of this module run in order against ONE operator deployment and ONE StreamProcessor (module
fixtures), each adding a step to the same fleet; the last one checks that every output written across
all steps equals the oracle's (no loss, no duplicate). What they run is what README "Deploy on
Kubernetes" and ``make demo-k8s`` (``tools/demo_k8s.py``) run: ``kubectl apply -k
manifests/overlays/local``, the sample CR with image and bootstrap adjusted, ``kubectl get sp``.

Scaling knobs are small (poll 2 s, scale-down window 15 s) to keep the module's wall time short.
Run with ``-s`` to see the timeline.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from tools import demo_k8s as k8s

from smc_runtime.config import parse_config
from tests.integration import runtime_support as rs
from tests.testbed import common
from tests.testbed import kafka as testbed_kafka
from tests.testbed.fixture_types import Images, Kubectl, Node, Testbed

pytestmark = [pytest.mark.k8s, pytest.mark.kafka, pytest.mark.slow]

NAME = "market-data-processor"
PARTITIONS = {"trades": 2, "orderbook": 1, "klines": 1}  # 4 input partitions: the replica cap
MAX_REPLICAS = 6  # above the cap, so the cap is what stops the scale-up
WINDOW_S = 15  # scaleDownStabilizationSeconds
BACKLOG = int(os.environ.get("SMC_E2E_BACKLOG", "400000"))
LIVE = 90_000  # fed at LIVE_RATE while a pod is deleted and the fleet rolls
LIVE_RATE = 2_000.0
AFTER_OUTAGE = 20_000
ROLES = {"enrichedTrades": "enriched_trades", "orderbookMetrics": "orderbook_metrics",
         "klineMetrics": "kline_metrics", "smcSignals": "smc_signals", "alerts": "alerts",
         "deadLetters": "dead_letters"}


@dataclass
class Fleet:
    """The one StreamProcessor all tests here act on, and everything fed to it."""

    kubectl: Kubectl
    namespace: str
    topics: k8s.Topics
    host_bootstrap: str
    pod_bootstrap: str
    records: list[tuple[str, bytes, bytes]]
    fed: int = 0
    log: list[str] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        return k8s.sp_status(self.kubectl, self.namespace, NAME)

    def pods(self) -> list[dict[str, Any]]:
        return [p for p in k8s.pods_of(self.kubectl, self.namespace, NAME)
                if not p["metadata"].get("deletionTimestamp")]

    def restarts(self) -> dict[str, int]:
        return k8s.restarts(self.pods())

    def feed(self, count: int, rate: float | None = None) -> int:
        batch = self.records[self.fed:self.fed + count]
        assert len(batch) == count, "not enough generated records"
        done = k8s.feed(self.host_bootstrap, self.topics, batch, rate)
        self.fed += done
        return done

    def lag(self) -> int:
        topology = rs.Topology(dict(self.topics.inputs), {}, self.topics.group)
        return rs.group_lag(self.host_bootstrap, topology)

    def wait_running(self, timeout: float, what: str = "Running with READY = DESIRED") -> dict[str, Any]:
        status: dict[str, Any] = k8s.wait_until(
            what, lambda: (s if k8s.running(s := self.status()) else None), timeout)
        return status

    def note(self, line: str) -> None:
        self.log.append(line)
        print(line, flush=True)


# --- fixtures ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeBed:
    pod_bootstrap: str  # the broker's listener on the pod bridge (pods and the in-cluster operator use it)
    node: Node
    images: Images


@pytest.fixture(scope="module")
def node(testbed: Testbed, testbed_node: Node, smc_images: Images, pod_kafka_bootstrap: str) -> NodeBed:
    """The bed's kubelet node, its pod-reachable Kafka listener, and both images built from the
    Dockerfiles and loaded into the node's containerd (`make images`)."""
    assert (smc_images.runtime, smc_images.operator) == (k8s.RUNTIME_IMAGE, k8s.OPERATOR_IMAGE)
    return NodeBed(pod_kafka_bootstrap, testbed_node, smc_images)


def _leader(kubectl: Kubectl) -> dict[str, Any] | None:
    """The operator pod holding the Lease (the deployment runs 2 replicas, active/standby)."""
    lease = kubectl("-n", k8s.OPERATOR_NAMESPACE, "get", "lease", "smc-operator", "-o", "json", check=False)
    holder = json.loads(lease.stdout)["spec"].get("holderIdentity") if lease.returncode == 0 else None
    pods = {p["metadata"]["name"]: p for p in k8s.operator_pods(kubectl)}
    return pods.get(holder) if holder and len(pods) == 2 and all(map(k8s.pod_ready, pods.values())) else None


@pytest.fixture(scope="module")
def operator_pod(node: NodeBed, kubectl: Kubectl) -> Iterator[dict[str, Any]]:
    """The leader of the two in-cluster operator pods, once both are Ready."""
    started = time.monotonic()
    k8s.deploy_operator(kubectl)
    pod = k8s.wait_until("2 Ready operator pods, one holding the Lease", lambda: _leader(kubectl), 90)
    print(f"\noperator deployed in-cluster in {time.monotonic() - started:.1f}s, "
          f"leader {pod['metadata']['name']}")
    yield pod
    # Test modules after this one run the operator as a subprocess: only one may serve the CRs.
    k8s.remove_operator(kubectl)


@pytest.fixture(scope="module")
def fleet(node: NodeBed, operator_pod: dict[str, Any], kubectl: Kubectl,
          kafka_admin: Any, kafka_bootstrap: str) -> Iterator[Fleet]:
    namespace = f"e2e-{uuid.uuid4().hex[:6]}"
    topics = k8s.Topics.of_sample(PARTITIONS, prefix=namespace)
    k8s.create_topics(kafka_admin, topics)
    kubectl("create", "namespace", namespace)
    started = time.monotonic()
    records = k8s.market_data(BACKLOG + LIVE + AFTER_OUTAGE, seed=23)
    print(f"generated {len(records):,} records in {time.monotonic() - started:.1f}s")
    yield Fleet(kubectl, namespace, topics, kafka_bootstrap, node.pod_bootstrap, records)
    # The CR carries the operator's finalizer: delete it while the operator still runs.
    kubectl("-n", namespace, "delete", "sp", "--all", "--timeout=120s", check=False, timeout=130)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    kafka_admin.delete_topics(
        [*topics.inputs.values(), *topics.outputs.values(), f"{topics.group}.changelog"])


# --- the steps --------------------------------------------------------------------------------------------


def test_operator_runs_in_cluster_from_its_image_under_its_service_account(
    operator_pod: dict[str, Any], kubectl: Kubectl
) -> None:
    spec = operator_pod["spec"]
    assert spec["serviceAccountName"] == "smc-operator"
    assert spec["containers"][0]["image"] == k8s.OPERATOR_IMAGE
    assert k8s.pod_ready(operator_pod)
    assert operator_pod["status"]["containerStatuses"][0]["restartCount"] == 0
    # Least privilege: what it needs, and not more.
    sa = "system:serviceaccount:smc-system:smc-operator"
    for verb, resource, allowed in (
        ("patch", "statefulsets.apps", "yes"),
        ("patch", "streamprocessors.smc-trading.io --subresource=status", "yes"),
        ("create", "events", "yes"),
        ("delete", "pods", "no"),
        ("list", "secrets", "no"),
        ("delete", "statefulsets.apps", "no"),
        ("create", "pods", "no"),
    ):
        answer = kubectl("auth", "can-i", verb, *resource.split(), f"--as={sa}", "-A", check=False)
        assert answer.stdout.strip() == allowed, (verb, resource, answer.stdout, answer.stderr)


def test_sample_reaches_running_through_the_readiness_probe_logs_and_exec_work(
    fleet: Fleet, kubectl: Kubectl, operator_pod: dict[str, Any]
) -> None:
    cr = k8s.sample_processor(
        NAME, image=k8s.RUNTIME_IMAGE, bootstrap=fleet.pod_bootstrap, topics=fleet.topics,
        autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": MAX_REPLICAS, "lagThreshold": 1000,
                     "pollIntervalSeconds": 2, "scaleDownStabilizationSeconds": WINDOW_S},
    )
    started = time.monotonic()
    k8s.apply(kubectl, fleet.namespace, cr)
    status = fleet.wait_running(180)
    fleet.note(f"sample Running in {time.monotonic() - started:.1f}s:\n"
               f"{k8s.sp_table(kubectl, fleet.namespace, NAME, headers=True)}")
    assert status["desiredReplicas"] == status["readyReplicas"] == 1
    table = k8s.sp_table(kubectl, fleet.namespace, NAME).split()
    assert table[:5] == [NAME, "Running", "exactly_once", "1", "1"], table

    (pod,) = fleet.pods()
    assert k8s.pod_ready(pod)
    container = pod["spec"]["containers"][0]
    assert container["image"] == k8s.RUNTIME_IMAGE and container["imagePullPolicy"] == "Never"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    # The readiness probe is what made it Ready: the pod's own /ready answers 200 (checked from inside).
    pod_name = pod["metadata"]["name"]
    exec_ = ("-n", fleet.namespace, "exec", pod_name, "--", "smc-runtime", "status")
    ready = kubectl(*exec_, "ready", check=False)
    assert ready.returncode == 0, ready.stderr
    assert json.loads(ready.stdout)["ready"] is True

    status_doc = json.loads(kubectl(*exec_).stdout)
    assert status_doc["healthy"] is True
    assert status_doc["config"]["processor_id"] == pod_name
    detail = status_doc["processors"]["market_data_processor"]
    assert detail["consumer_group"] == fleet.topics.group
    inputs = {f"{fleet.topics.inputs[kind]}[{p}]" for kind, n in PARTITIONS.items() for p in range(n)}
    assert inputs <= set(detail["assignment"]), detail["assignment"]  # one replica: every input partition

    logs = kubectl("-n", fleet.namespace, "logs", pod_name).stdout.splitlines()
    records = [json.loads(line) for line in logs if line.startswith("{")]
    started_lines = [r for r in records if r.get("msg") == "runtime started"]
    assert started_lines and started_lines[0]["processors"] == ["market_data_processor"], logs[-20:]

    # The in-cluster operator is the one that did it (its own log, through kubectl logs).
    operator_log = kubectl("-n", k8s.OPERATOR_NAMESPACE, "logs", operator_pod["metadata"]["name"]).stdout
    events = [json.loads(line).get("smc") or {} for line in operator_log.splitlines() if line.startswith("{")]
    resource = f"{fleet.namespace}/{NAME}"
    assert any(e.get("event") == "reconciled" and e.get("resource") == resource for e in events), (
        operator_log[-2000:])


def test_backlog_scales_up_to_the_partition_cap_drains_and_scales_down_after_the_window(
    fleet: Fleet, kubectl: Kubectl
) -> None:
    cap = sum(PARTITIONS.values())
    timeline = k8s.Timeline(kubectl, fleet.namespace, NAME, interval=1.0,
                            echo=lambda line: print("  " + line, flush=True)).start()
    try:
        started = time.monotonic()
        fleet.feed(BACKLOG)
        t_loaded = time.monotonic() - timeline.t0
        fleet.note(f"pre-loaded {BACKLOG:,} records in {time.monotonic() - started:.1f}s")
        drained = k8s.wait_until("the backlog drained (lag above 0, then 0)", timeline.drained, 300)
        down = k8s.wait_until(
            "scale-down to 1 Ready", lambda: next(
                (r for r in reversed(timeline.rows[-3:])
                 if r.desired == 1 and r.ready == 1 and r.t > drained.t), None), WINDOW_S + 90)
    finally:
        timeline.stop()
    rows = timeline.rows
    fleet.note("timeline:\n" + "\n".join("  " + timeline.format(r) for r in timeline.changes()))
    peak_desired = max(r.desired or 0 for r in rows)
    peak_ready = max(r.ready or 0 for r in rows)
    first_down = next(r for r in rows if r.t > drained.t and (r.desired or 0) < peak_desired)
    fleet.note(f"peak desired {peak_desired}, peak ready {peak_ready} (cap {cap}); drained "
               f"{drained.t - t_loaded:.1f}s after the load; first scale-down "
               f"{first_down.t - drained.t:.1f}s after lag 0, 1 Ready at +{down.t - drained.t:.1f}s")
    assert max(r.lag or 0 for r in rows) > 100 * 1000, "the operator never saw the backlog"
    assert peak_desired == cap, "did not scale up to the partition cap (4 partitions, maxReplicas 6)"
    assert peak_ready == cap, "the pods of the scale-up never all passed their readiness probe"
    assert "4 partitions" in (fleet.status().get("lastScaleReason") or "") or any(
        "4 partitions" in (e.get("message") or "") for e in k8s.get_json(
            kubectl, "-n", fleet.namespace, "get", "events")["items"])
    # Scale-down waits out the window, counted from the last poll that still saw lag: up to one poll
    # interval (2 s, longer under load) before the first lag-0 status, which the timeline (a sample every
    # 1-2 s) sees late again. Without the window it would come within a poll or two of lag 0.
    assert first_down.t - drained.t >= WINDOW_S - 6, (first_down, drained)
    assert all(r.restarts == 0 for r in rows), "a pod restarted while scaling"
    reasons = {e["reason"] for e in k8s.get_json(kubectl, "-n", fleet.namespace, "get", "events")["items"]}
    assert {"ScaledUp", "ScaledDown"} <= reasons, reasons


def test_pod_delete_and_config_change_roll_mid_stream(fleet: Fleet, kubectl: Kubectl) -> None:
    before = fleet.status()["configHash"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        feeding = pool.submit(fleet.feed, LIVE, LIVE_RATE)
        time.sleep(5)
        victim = sorted(p["metadata"]["name"] for p in fleet.pods())[0]
        old_uid = next(p["metadata"]["uid"] for p in fleet.pods() if p["metadata"]["name"] == victim)
        t = time.monotonic()
        kubectl("-n", fleet.namespace, "delete", "pod", victim, "--wait=false")
        k8s.wait_until(f"{victim} replaced and Ready", lambda: any(
            p["metadata"]["name"] == victim and p["metadata"]["uid"] != old_uid and k8s.pod_ready(p)
            for p in fleet.pods()), 120)
        fleet.note(f"kubectl delete pod {victim}: replacement Ready in {time.monotonic() - t:.1f}s")

        # A config change (the commit interval: outputs do not depend on it) rolls every pod.
        t = time.monotonic()
        kubectl("-n", fleet.namespace, "patch", "sp", NAME, "--type=merge",
                "-p", json.dumps({"spec": {"processor": {"commitIntervalMs": 250}}}))
        k8s.wait_until("new config hash in status",
                       lambda: fleet.status().get("configHash") not in (None, before), 60)
        assert not feeding.done(), "the live feed ended before the roll started: not mid-stream"
        new_hash = fleet.status()["configHash"]

        def rolled() -> bool:
            pods = fleet.pods()
            hashes = {p["metadata"]["annotations"].get("smc-trading.io/config-hash") for p in pods}
            return (hashes == {new_hash} and all(k8s.pod_ready(p) for p in pods)
                    and k8s.running(fleet.status()))

        k8s.wait_until("every pod rolled to the new config and Ready", rolled, 240, interval=1.0)
        fleet.note(f"config change {before} -> {new_hash}: {len(fleet.pods())} pod(s) rolled in "
                   f"{time.monotonic() - t:.1f}s")
        assert feeding.result(timeout=120) == LIVE
    cm = k8s.get_json(kubectl, "-n", fleet.namespace, "get", "configmap", f"{NAME}-config")
    assert "commit_interval_ms: 250" in cm["data"]["streams-config.yaml"]
    k8s.wait_until("the live stream drained", lambda: fleet.lag() == 0, 180, interval=1.0)


def _runtime_host_pid(pod_name: str) -> int:
    """The host pid of the pod's runtime (PID 1 of its container; the node runs on this machine).

    Signals sent from inside the container cannot stop its PID 1 (the kernel protects a namespace's init
    from SIGSTOP/SIGKILL sent inside it), so the wedge is done from the host, like a hung process would be.
    """
    marker = f"PROCESSOR_ID={pod_name}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        zombie = fields.get("State", "").strip().startswith("Z")
        if fields.get("NSpid", "").split()[-1:] == ["1"] and not zombie:
            return int(proc.name)
    raise AssertionError(f"no runtime process of pod {pod_name} on this machine")


def test_a_wedged_runtime_is_restarted_by_the_liveness_probe(fleet: Fleet, kubectl: Kubectl) -> None:
    victim = sorted(p["metadata"]["name"] for p in fleet.pods())[0]
    before = fleet.restarts()[victim]
    pid = _runtime_host_pid(victim)
    t = time.monotonic()
    os.kill(pid, signal.SIGSTOP)  # frozen: no loop, no HTTP answers; only the liveness probe can notice
    try:
        k8s.wait_until(f"{victim} restarted", lambda: fleet.restarts().get(victim, 0) > before, 120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # the kubelet's SIGKILL already ended it, unless something failed
    restarted = time.monotonic() - t
    k8s.wait_until(f"{victim} Ready again", lambda: any(
        p["metadata"]["name"] == victim and k8s.pod_ready(p) for p in fleet.pods()), 120)
    fleet.note(f"SIGSTOP of {victim}'s runtime (host pid {pid}): restarted by the kubelet after "
               f"{restarted:.1f}s, Ready after {time.monotonic() - t:.1f}s")
    events = k8s.get_json(kubectl, "-n", fleet.namespace, "get", "events",
                          f"--field-selector=involvedObject.name={victim}")["items"]
    messages = [e.get("message") or "" for e in events]
    assert any("Liveness probe failed" in m for m in messages), messages
    assert any("failed liveness probe" in m for m in messages), messages
    fleet.wait_running(120)


def _broker_argv() -> list[str]:
    service = common.read_service(testbed_kafka.NAME)
    assert service is not None, "the test bed's Kafka is not running"
    return [a.decode() for a in Path(f"/proc/{service.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")]


def _print_outage_diagnosis(fleet: Fleet, kubectl: Kubectl) -> None:
    """What a failed recovery leaves to read once the bed is gone: the CR's status and conditions, the
    pods, each pod's ``/status`` (assignment, restoring, breaker, readiness checks), the last lines of
    each pod's log (client noise apart, its last lines kept too: they say what the consumer waits for)
    and of the operator's."""
    print("CR status:", json.dumps(fleet.status(), indent=1, default=str))
    print(kubectl("-n", fleet.namespace, "get", "pods", "-o", "wide").stdout)
    noise = ("librdkafka", "kafka client error")
    for pod in fleet.pods():
        name = pod["metadata"]["name"]
        status = kubectl("-n", fleet.namespace, "exec", name, "--", "smc-runtime", "status", check=False)
        print(f"--- {name} /status (exit {status.returncode})")
        print(status.stdout[-6000:] + status.stderr[-1000:])
        lines = kubectl("-n", fleet.namespace, "logs", name, "--tail=1000").stdout.splitlines()
        print(f"--- {name} (last lines without client noise)")
        print("\n".join([line for line in lines if not any(n in line for n in noise)][-60:]))
        print(f"--- {name} (last client lines)")
        print("\n".join([line for line in lines if any(n in line for n in noise)][-25:]))
    operators = k8s.get_json(kubectl, "-n", k8s.OPERATOR_NAMESPACE, "get", "pods")["items"]
    for pod in operators:
        name = pod["metadata"]["name"]
        print(f"--- operator {name}")
        print("\n".join(kubectl("-n", k8s.OPERATOR_NAMESPACE, "logs", name, "--tail=60").stdout.splitlines()))


def test_a_broker_outage_makes_pods_not_ready_without_restarting_them(fleet: Fleet, kubectl: Kubectl) -> None:
    restarts_before = fleet.restarts()
    replicas = len(restarts_before)
    argv = _broker_argv()
    port = int(fleet.host_bootstrap.rsplit(":", 1)[1])
    t = time.monotonic()
    assert common.stop_service(testbed_kafka.NAME, grace=30)
    try:
        k8s.wait_until("every pod NotReady", lambda: (pods := fleet.pods()) and not any(
            k8s.pod_ready(p) for p in pods), 120, interval=1.0)
        not_ready_after = time.monotonic() - t
        status = k8s.wait_until(
            "the CR Degraded", lambda: (s if (s := fleet.status()).get("phase") == "Degraded" else None), 60)
        fleet.note(f"broker stopped: all pods NotReady after {not_ready_after:.1f}s, CR "
                   f"{status['phase']}:\n{k8s.sp_table(kubectl, fleet.namespace, NAME, headers=True)}")
        time.sleep(10)  # NotReady for a while: the liveness probe must not kill them meanwhile
        assert fleet.restarts() == restarts_before, "pods restarted while the broker was down"
    finally:
        down_for = time.monotonic() - t
        common.spawn(testbed_kafka.NAME, argv, common.logs_dir() / "kafka.restart.log")
        common.wait_for("restarted kafka", lambda: testbed_kafka.probe(port, timeout=2.0), 90)
    t = time.monotonic()
    try:
        fleet.wait_running(180, "Running with every pod Ready after the broker came back")
    except AssertionError:
        _print_outage_diagnosis(fleet, kubectl)
        raise
    fleet.note(f"broker back after {down_for:.1f}s down: Running again in {time.monotonic() - t:.1f}s")
    assert len(fleet.restarts()) == replicas
    assert fleet.restarts() == restarts_before, "pods restarted because of the outage"
    events = k8s.get_json(kubectl, "-n", fleet.namespace, "get", "events",
                          f"--field-selector=involvedObject.name={NAME}")["items"]
    reasons = {e["reason"] for e in events}
    assert {"KafkaUnreachable", "Recovered"} <= reasons, reasons
    # It processes again: more input, drained.
    fleet.feed(AFTER_OUTAGE)
    k8s.wait_until("the input after the outage drained", lambda: fleet.lag() == 0, 180, interval=1.0)


def test_outputs_equal_one_uninterrupted_run_over_the_same_input(
    fleet: Fleet, kubectl: Kubectl, operator_pod: dict[str, Any]
) -> None:
    assert fleet.fed == BACKLOG + LIVE + AFTER_OUTAGE, "an earlier step did not feed its input"
    k8s.wait_until("every input committed", lambda: fleet.lag() == 0, 180, interval=1.0)
    cm = k8s.get_json(kubectl, "-n", fleet.namespace, "get", "configmap", f"{NAME}-config")
    config = parse_config(yaml.safe_load(cm["data"]["streams-config.yaml"]), env={})
    settings = config.stream_processors["market_data_processor"]
    topology = rs.Topology(dict(fleet.topics.inputs),
                           {ROLES[role]: topic for role, topic in fleet.topics.outputs.items()},
                           fleet.topics.group)
    t = time.monotonic()
    inputs = rs.read_inputs(fleet.host_bootstrap, topology)
    assert len(inputs) == fleet.fed
    expected = rs.reference_outputs(settings, inputs)
    actual = rs.actual_outputs(fleet.host_bootstrap, topology)
    trades = k8s.count_trades(value for _, value, _ in actual["enriched_trades"])
    trades_in = sum(1 for kind, _, _ in fleet.records[:fleet.fed] if kind == "trades")
    fleet.note(
        f"outputs (read_committed, {time.monotonic() - t:.1f}s to read and compute the oracle): "
        + ", ".join(f"{role} {len(actual[role]):,}/{len(expected[role]):,}" for role in rs.ROLES)
        + f"; enriched trades {trades.total:,}, unique (symbol, trade_id) {trades.unique:,} of {trades_in:,} "
        f"trades in, duplicates {trades.duplicates}; restarts {fleet.restarts()}"
    )
    operator = k8s.operator_pods(kubectl)
    names = {p["metadata"]["name"] for p in operator}
    assert operator_pod["metadata"]["name"] in names and len(names) == 2, names
    assert set(k8s.restarts(operator).values()) == {0}, "an operator pod restarted"
    leader = _leader(kubectl)
    assert leader is not None and leader["metadata"]["name"] == operator_pod["metadata"]["name"], "new leader"
    print("\nsummary of the module's steps:\n" + "\n".join(fleet.log), flush=True)
    assert rs.compare(expected, actual) == []
    assert trades.duplicates == 0 and trades.unique == trades_in
