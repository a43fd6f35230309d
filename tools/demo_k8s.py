"""``make demo-k8s``: the operator and a processor fleet on a real Kubernetes node, scaling on lag.

1. The cluster: the test bed (Kafka, control plane, a kubelet node; ``python -m tests.testbed up``), or
   with ``--current-cluster`` the cluster in ``$KUBECONFIG`` (e.g. kind) with a Kafka you name.
2. The images: as ``make images``, build ``localhost/smc-runtime:dev`` and ``localhost/smc-operator:dev``
   from the Dockerfiles and load them into the node (skipped with ``--current-cluster``: push yours and
   pass ``--runtime-image``/``--operator-image``).
3. ``kubectl apply -k manifests/overlays/local``: CRD, namespace, least-privilege RBAC and the operator
   Deployment, only the image replaced; wait for the rollout.
4. The sample StreamProcessor (``manifests/samples``) with image, bootstrap and autoscaling knobs
   adjusted, in namespace ``smc-demo``; wait for Phase Running with READY = DESIRED.
5. Pre-load seeded market data (``smc_runtime.sample_data``), then print ``kubectl get sp`` rows as they
   change while the operator scales up to the partition cap, the fleet drains the backlog and the
   operator scales back down after its window; then a summary read back under read_committed.

The same steps (``deploy_operator``, ``sample_processor``, ``feed``, ``Timeline``) are what the
end-to-end tests (``tests/integration/test_e2e_k8s.py``) run.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tests.testbed.fixture_types import Kubectl

REPO_ROOT = Path(__file__).resolve().parents[1]
OVERLAY = REPO_ROOT / "manifests" / "overlays" / "local"
SAMPLE = REPO_ROOT / "manifests" / "samples" / "market-data-processor.yaml"
RUNTIME_IMAGE = "localhost/smc-runtime:dev"
OPERATOR_IMAGE = "localhost/smc-operator:dev"
OPERATOR_NAMESPACE = "smc-system"
OPERATOR_SELECTOR = "app.kubernetes.io/name=smc-operator"
CRD = "crd/streamprocessors.smc-trading.io"
KINDS = ("trades", "orderbook", "klines")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT",
           "DOTUSDT", "LINKUSDT", "LTCUSDT", "TRXUSDT")


def make_kubectl(binary: str, kubeconfig: str | None, env: Mapping[str, str] | None = None) -> Kubectl:
    def run(
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60.0,
        kubeconfig: str | Path | None = kubeconfig,
    ) -> subprocess.CompletedProcess[str]:
        argv = [binary, *([f"--kubeconfig={kubeconfig}"] if kubeconfig else []), *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                                env=dict(env or os.environ), check=False)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr.strip()}")
        return result

    return run


def say(message: str) -> None:
    print(f"[demo-k8s {time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


# --- the operator -----------------------------------------------------------------------------------------


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(kubectl(*args, "-o", "json").stdout)
    return doc


def operator_pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = get_json(
        kubectl, "-n", OPERATOR_NAMESPACE, "get", "pods", "-l", OPERATOR_SELECTOR)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def deploy_operator(kubectl: Kubectl, overlay: Path = OVERLAY, timeout: float = 240.0) -> dict[str, Any]:
    """``kubectl apply -k <overlay>``, wait for the CRD and the rollout; returns the operator pod."""
    kubectl("apply", "-k", str(overlay), timeout=60)
    kubectl("wait", "--for=condition=Established", CRD, "--timeout=60s", timeout=70)
    kubectl("-n", OPERATOR_NAMESPACE, "rollout", "status", "deployment/smc-operator",
            f"--timeout={int(timeout)}s", timeout=timeout + 10)

    def ready_pod() -> dict[str, Any] | None:
        for pod in operator_pods(kubectl):
            conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
            if conditions.get("Ready") == "True":
                return pod
        return None

    pod: dict[str, Any] = wait_until("a Ready operator pod", ready_pod, 60)
    return pod


def remove_operator(kubectl: Kubectl, timeout: float = 90.0) -> None:
    """Delete the operator Deployment (CRD, RBAC and namespace stay: other operators may use them)."""
    kubectl("-n", OPERATOR_NAMESPACE, "delete", "deployment", "smc-operator", "--ignore-not-found",
            f"--timeout={int(timeout)}s", timeout=timeout + 10)
    wait_until("operator pods gone", lambda: not operator_pods(kubectl), timeout)


# --- the processor ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    """Input topics by kind (trades/orderbook/klines) with partitions, output topics by CR role."""

    inputs: dict[str, str]
    partitions: dict[str, int]
    outputs: dict[str, str]
    group: str

    @classmethod
    def of_sample(cls, partitions: Mapping[str, int], prefix: str | None = None) -> Topics:
        """The sample CR's topic names (``prefix`` makes them unique: ``<prefix>.<name>``)."""
        processor = yaml.safe_load(SAMPLE.read_text())["spec"]["processor"]
        name = (lambda t: f"{prefix}.{t}") if prefix else (lambda t: t)
        inputs = {kind: name(t) for kind, t in zip(KINDS, processor["inputTopics"], strict=True)}
        outputs = {role: name(t) for role, t in processor["outputTopics"].items()}
        group = name(processor["consumerGroup"])
        return cls(inputs, {kind: int(partitions[kind]) for kind in KINDS}, outputs, group)

    def all_partitions(self) -> int:
        return sum(self.partitions.values())


def create_topics(admin: Any, topics: Topics, output_partitions: int = 2) -> None:
    """(Re)create the topics: a reused broker may hold a previous run's."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    wanted = {topics.inputs[k]: topics.partitions[k] for k in KINDS}
    wanted.update(dict.fromkeys(topics.outputs.values(), output_partitions))
    changelog = f"{topics.group}.changelog"
    existing = set(admin.list_topics(timeout=10).topics)
    stale = [t for t in [*wanted, changelog] if t in existing]
    if stale:
        for future in admin.delete_topics(stale, operation_timeout=30).values():
            future.result()
        wait_until("old topics deleted",
                   lambda: not set(stale) & set(admin.list_topics(timeout=10).topics), 30)
    new = [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in wanted.items()]
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result()

    def leaders() -> bool:
        meta = admin.list_topics(timeout=10).topics
        return all(t in meta and len(meta[t].partitions) == n
                   and all(p.leader >= 0 for p in meta[t].partitions.values()) for t, n in wanted.items())

    wait_until("topic leaders", leaders, 30, interval=0.2)


def sample_processor(
    name: str,
    *,
    image: str,
    bootstrap: str,
    topics: Topics,
    autoscaling: Mapping[str, Any] | None = None,
    image_pull_policy: str = "Never",
    **spec: Any,
) -> dict[str, Any]:
    """``manifests/samples/market-data-processor.yaml`` with image, bootstrap, topics and scaling set."""
    cr: dict[str, Any] = copy.deepcopy(yaml.safe_load(SAMPLE.read_text()))
    cr["metadata"] = {"name": name}
    cr["spec"]["image"] = image
    cr["spec"]["imagePullPolicy"] = image_pull_policy
    cr["spec"]["kafka"]["bootstrapServers"] = bootstrap
    processor = cr["spec"]["processor"]
    processor["inputTopics"] = [topics.inputs[k] for k in KINDS]
    processor["outputTopics"] = dict(topics.outputs)
    processor["consumerGroup"] = topics.group
    if autoscaling is not None:
        cr["spec"]["autoscaling"] = {**cr["spec"]["autoscaling"], **autoscaling}
    cr["spec"].update(spec)
    return cr


def apply(kubectl: Kubectl, namespace: str, obj: Mapping[str, Any]) -> None:
    kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(dict(obj), sort_keys=False))


def sp_status(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = get_json(kubectl, "-n", namespace, "get", "sp", name).get("status") or {}
    return status


def sp_table(kubectl: Kubectl, namespace: str, name: str, headers: bool = False) -> str:
    """``kubectl get sp <name>`` as printed (the CRD's printer columns)."""
    args = ["-n", namespace, "get", "sp", name, *([] if headers else ["--no-headers"])]
    return kubectl(*args).stdout.rstrip("\n")


def running(status: Mapping[str, Any]) -> bool:
    desired = status.get("desiredReplicas")
    return (status.get("phase") == "Running" and desired is not None
            and status.get("readyReplicas") == desired)


def pods_of(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get_json(
        kubectl, "-n", namespace, "get", "pods", "-l", f"app.kubernetes.io/instance={name}")["items"]
    return items


def restarts(pods: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Container restarts by pod name (the runtime container)."""
    out: dict[str, int] = {}
    for pod in pods:
        statuses = pod.get("status", {}).get("containerStatuses") or []
        out[pod["metadata"]["name"]] = sum(int(s.get("restartCount", 0)) for s in statuses)
    return out


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True"


# --- market data ------------------------------------------------------------------------------------------


def market_data(count: int, seed: int = 7,
                symbols: Sequence[str] = SYMBOLS) -> list[tuple[str, bytes, bytes]]:
    """(kind, key, value) of the first ``count`` records of the seeded generator (about 71% trades)."""
    from smc_runtime import sample_feed

    return sample_feed.sample_records(count, symbols, seed)


def feed(bootstrap: str, topics: Topics, records: Iterable[tuple[str, bytes, bytes]],
         rate: float | None = None) -> int:
    """Produce to the sample's input topics (sample_feed.feed: idempotent, keyed by symbol)."""
    from smc_runtime import sample_feed

    return sample_feed.feed(bootstrap, topics.inputs, records, rate)


def read_committed(bootstrap: str, topic: str,
                   timeout: float = 180.0) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """(partition, offset, key, value) of every record visible under read_committed."""
    from smc_runtime import sample_feed

    return [(int(msg.partition() or 0), int(msg.offset() or 0), msg.key(), msg.value())
            for msg in sample_feed.read_to_end(bootstrap, topic, timeout=timeout)]


@dataclass(frozen=True)
class TradeCount:
    total: int
    unique: int

    @property
    def duplicates(self) -> int:
        return self.total - self.unique


def count_trades(values: Iterable[bytes | None]) -> TradeCount:
    """Enriched trades: how many, how many distinct (symbol, trade_id)."""
    seen: set[tuple[str, int]] = set()
    total = 0
    for value in values:
        doc = json.loads(value or b"{}")
        seen.add((doc["symbol"], doc["trade_id"]))
        total += 1
    return TradeCount(total, len(seen))


# --- the timeline -----------------------------------------------------------------------------------------


@dataclass
class Row:
    t: float
    table: str  # the `kubectl get sp` row without AGE
    phase: str | None
    desired: int | None
    ready: int | None
    lag: int | None
    pods: int
    restarts: int


@dataclass
class Timeline:
    """Samples ``kubectl get sp`` (and the pods) every ``interval`` seconds in a background thread."""

    kubectl: Kubectl
    namespace: str
    name: str
    interval: float = 1.0
    t0: float = field(default_factory=time.monotonic)
    rows: list[Row] = field(default_factory=list)
    echo: Callable[[str], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _echoed: Row | None = None
    errors: list[str] = field(default_factory=list)

    def sample(self) -> Row:
        status = sp_status(self.kubectl, self.namespace, self.name)
        table = sp_table(self.kubectl, self.namespace, self.name)
        pods = [p for p in pods_of(self.kubectl, self.namespace, self.name)
                if not p["metadata"].get("deletionTimestamp")]
        phase, desired = status.get("phase"), status.get("desiredReplicas")
        ready = status.get("readyReplicas")
        lag = (status.get("consumerLag") or {}).get("total")
        columns = table.split()  # NAME PHASE MODE DESIRED READY LAG AGE (fewer when a value is unset)
        if len(columns) == 7 and all(c.isdigit() for c in columns[3:6]):
            # What was printed wins: status may have moved between the two reads.
            phase, desired, ready, lag = columns[1], int(columns[3]), int(columns[4]), int(columns[5])
        row = Row(round(time.monotonic() - self.t0, 1), " ".join(columns[:-1]), phase, desired, ready, lag,
                  len(pods), sum(restarts(pods).values()))
        if self.echo is not None and (self._echoed is None or self.changed(self._echoed, row)):
            self.echo(self.format(row))
            self._echoed = row
        self.rows.append(row)
        return row

    @staticmethod
    def changed(before: Row, after: Row) -> bool:
        return (before.phase, before.desired, before.ready, before.pods, before.restarts) != (
            after.phase, after.desired, after.ready, after.pods, after.restarts) or (
            (before.lag or 0) > 0) != ((after.lag or 0) > 0)

    @staticmethod
    def format(row: Row) -> str:
        return f"t={row.t:>6.1f}s  {row.table:<70} pods={row.pods} restarts={row.restarts}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # an apiserver hiccup must not end the timeline
                self.errors.append(str(exc))
            self._stop.wait(self.interval)

    def start(self) -> Timeline:
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def drained(self) -> Row | None:
        """The first row with lag 0 after the lag was last seen above 0 (None before that)."""
        rows = list(self.rows)
        busy = [i for i, r in enumerate(rows) if (r.lag or 0) > 0]
        return next((r for r in rows[busy[-1] + 1:] if r.lag == 0), None) if busy else None

    def changes(self) -> list[Row]:
        """Rows where phase, replicas, pods, restarts or lag-vs-none changed (the printed timeline)."""
        out: list[Row] = []
        for row in self.rows:
            if not out or self.changed(out[-1], row):
                out.append(row)
        return out


# --- the command ------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    kubectl: Kubectl
    host_bootstrap: str  # where this machine produces and reads
    pod_bootstrap: str  # what pods (and the in-cluster operator) connect to
    runtime_image: str
    operator_image: str
    started: list[str]


def local_cluster(skip_images: bool) -> Cluster:
    """The test bed with its node (started unless running), images built and loaded by ``make images``."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.testbed import bed, load_state

    say("bringing up the test bed (Kafka, control plane, node); first run builds and caches binaries")
    started = bed.up()
    state = load_state()
    kafka = state["kafka"]
    k8s = state["k8s"]
    pod_bootstrap = kafka.get("pod_bootstrap")
    if not pod_bootstrap:
        raise SystemExit("the test bed's Kafka has no listener for pods (no 'pod_bootstrap' in its state)")
    if not skip_images:
        say(f"images (as `make images`): {RUNTIME_IMAGE} and {OPERATOR_IMAGE} from the Dockerfiles, "
            "loaded into the node")
        t = time.monotonic()
        for image, built in bed.ensure_images().items():
            how = f"built in {built.seconds:.0f}s" if built.seconds else "unchanged (cached)"
            say(f"  {image}: {how}")
        say(f"images ready in {time.monotonic() - t:.0f}s")
    kubectl = make_kubectl(str(k8s["kubectl"]), str(k8s["kubeconfig"]), bed.process_env())
    return Cluster(kubectl, str(kafka["bootstrap"]), str(pod_bootstrap), RUNTIME_IMAGE, OPERATOR_IMAGE,
                   list(started))


def current_cluster(args: argparse.Namespace) -> Cluster:
    """The cluster in $KUBECONFIG; images already pushed somewhere its nodes pull from."""
    if not args.bootstrap:
        raise SystemExit("--current-cluster needs --bootstrap HOST:PORT (a Kafka this machine reaches)")
    return Cluster(make_kubectl(args.kubectl, os.environ.get("KUBECONFIG")), args.bootstrap,
                   args.pod_bootstrap or args.bootstrap, args.runtime_image, args.operator_image, [])


def summary_lines(timeline: Timeline, fed: int, trades_fed: int, counts: Mapping[str, int],
                  trades: TradeCount, drain_s: float | None, down_s: float | None, cap: int) -> list[str]:
    peak_desired = max((r.desired or 0) for r in timeline.rows)
    peak_ready = max((r.ready or 0) for r in timeline.rows)
    lines = [
        f"input records        {fed:,} ({trades_fed:,} trades)",
        f"peak replicas        desired {peak_desired}, ready {peak_ready} (partition cap {cap})",
        f"backlog drained in   {drain_s:.0f}s after the load finished" if drain_s is not None else
        "backlog drained in   (not observed)",
        f"scaled back down     {down_s:.0f}s after the lag reached 0" if down_s is not None else
        "scaled back down     (not observed)",
        f"pod restarts         {timeline.rows[-1].restarts}",
        "outputs (read_committed):",
        *(f"  {topic:<34} {n:>9,}" for topic, n in counts.items()),
        f"enriched trades      {trades.total:,}, unique (symbol, trade_id) {trades.unique:,}, "
        f"duplicates {trades.duplicates}, missing {trades_fed - trades.unique}",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo_k8s", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=400_000, help="market data records to pre-load")
    parser.add_argument("--namespace", default="smc-demo")
    parser.add_argument("--name", default="market-data-processor")
    parser.add_argument("--max-replicas", type=int, default=6)
    parser.add_argument("--window", type=int, default=20, help="scaleDownStabilizationSeconds")
    parser.add_argument("--skip-images", action="store_true", help="images already built and loaded")
    parser.add_argument("--current-cluster", action="store_true",
                        help="use the cluster in $KUBECONFIG instead of the test bed")
    parser.add_argument("--bootstrap", default=None, help="(--current-cluster) Kafka for this machine")
    parser.add_argument("--pod-bootstrap", default=None, help="(--current-cluster) Kafka for pods")
    parser.add_argument("--runtime-image", default=RUNTIME_IMAGE)
    parser.add_argument("--operator-image", default=OPERATOR_IMAGE)
    parser.add_argument("--kubectl", default="kubectl")
    args = parser.parse_args(argv)
    from confluent_kafka.admin import AdminClient

    t_start = time.monotonic()
    cluster = current_cluster(args) if args.current_cluster else local_cluster(args.skip_images)
    kubectl = cluster.kubectl

    say(f"kubectl apply -k {OVERLAY.relative_to(REPO_ROOT)}")
    pod = deploy_operator(kubectl)
    if cluster.operator_image != OPERATOR_IMAGE:
        kubectl("-n", OPERATOR_NAMESPACE, "set", "image", "deployment/smc-operator",
                f"operator={cluster.operator_image}")
        pod = deploy_operator(kubectl)
    say(f"operator pod {pod['metadata']['name']} Ready (image {pod['spec']['containers'][0]['image']}, "
        f"serviceAccount {pod['spec']['serviceAccountName']})")

    topics = Topics.of_sample({"trades": 2, "orderbook": 1, "klines": 1})
    cap = topics.all_partitions()
    admin = AdminClient({"bootstrap.servers": cluster.host_bootstrap})
    create_topics(admin, topics)
    ns = args.namespace
    if kubectl("get", "namespace", ns, check=False).returncode != 0:
        kubectl("create", "namespace", ns)
    kubectl("-n", ns, "delete", "sp", args.name, "--ignore-not-found", "--timeout=120s", timeout=130)
    autoscaling = {"enabled": True, "minReplicas": 1, "maxReplicas": args.max_replicas, "lagThreshold": 1000,
                   "pollIntervalSeconds": 2, "scaleDownStabilizationSeconds": args.window}
    cr = sample_processor(args.name, image=cluster.runtime_image, bootstrap=cluster.pod_bootstrap,
                          topics=topics, autoscaling=autoscaling,
                          image_pull_policy="Never" if not args.current_cluster else "IfNotPresent")
    say(f"kubectl -n {ns} apply -f - (the sample: image {cluster.runtime_image}, bootstrap "
        f"{cluster.pod_bootstrap}, lagThreshold 1000, max {args.max_replicas}, window {args.window}s)")
    apply(kubectl, ns, cr)
    wait_until("Phase Running with READY = DESIRED", lambda: running(sp_status(kubectl, ns, args.name)), 180)
    print(sp_table(kubectl, ns, args.name, headers=True), flush=True)

    say(f"generating {args.records:,} market data records (seeded)")
    records = market_data(args.records)
    trades_fed = sum(1 for kind, _, _ in records if kind == "trades")
    print(f"\n  time     {'kubectl get sp ' + args.name + ' (NAME PHASE MODE DESIRED READY LAG)':<70} pods",
          flush=True)
    timeline = Timeline(kubectl, ns, args.name, echo=lambda line: print("  " + line, flush=True)).start()
    try:
        fed = feed(cluster.host_bootstrap, topics, records)
        t_loaded = time.monotonic() - timeline.t0
        say(f"loaded {fed:,} records in {t_loaded:.0f}s")
        drained = wait_until("lag 0", timeline.drained, 600)
        down = wait_until("scale-down to 1", lambda: next((r for r in reversed(timeline.rows[-3:])
                                                           if r.desired == 1 and r.ready == 1
                                                           and r.t > drained.t), None), args.window + 120)
        time.sleep(2)
    finally:
        timeline.stop()

    counts = collections.OrderedDict(
        (topic, len(read_committed(cluster.host_bootstrap, topic))) for topic in topics.outputs.values()
        if topic != topics.outputs["enrichedTrades"])
    enriched = read_committed(cluster.host_bootstrap, topics.outputs["enrichedTrades"])
    trades = count_trades(v for _, _, _, v in enriched)
    counts = collections.OrderedDict([(topics.outputs["enrichedTrades"], trades.total), *counts.items()])
    print("\nsummary", flush=True)
    for line in summary_lines(timeline, fed, trades_fed, counts, trades, drained.t - t_loaded,
                              down.t - drained.t, cap):
        print("  " + line, flush=True)
    print(f"  demo wall time       {time.monotonic() - t_start:.0f}s", flush=True)
    print(f"\nstill running: kubectl -n {ns} get sp,pods; kubectl -n {ns} logs {args.name}-0; "
          f"kubectl -n {ns} exec {args.name}-0 -- smc-runtime status", flush=True)
    if cluster.started:
        print("stop the local cluster with: make testbed-down", flush=True)
    return 0 if trades.duplicates == 0 and trades.unique == trades_fed else 1


if __name__ == "__main__":
    sys.exit(main())
