"""Session fixtures for the real test bed (Kafka + Kubernetes control plane).

Fixtures are lazy: only tests that request them touch the bed, so `tests/unit` never starts anything.
A running bed (`make testbed-up`, or `run-suite`) is reused; otherwise the fixture starts the component it
needs, and the last session using it stops it (leases, see tests/testbed/bed.py). If a component cannot
start, the test fails with the reason.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests import testbed as bed
from tests.testbed.fixture_types import Images, Kubectl, KubectlError, MakeTopic, Node, Testbed

_NODE_FIXTURES = {"testbed_node", "smc_images", "pod_kafka_bootstrap"}
_MARKER_FIXTURES = {
    "kafka": {"kafka_bootstrap", "kafka_admin", "make_topic", "pod_kafka_bootstrap"},
    "k8s": {"kubeconfig", "operator_kubeconfig", "kubectl", *_NODE_FIXTURES},
    "node": _NODE_FIXTURES,
}


# `make test` (run-suite, tests/testbed/bed.py) runs the cluster tests (k8s, node) and all others in two
# processes at once. These Kafka-only modules run in the cluster's process to even the two out. Measured
# on a loaded 2-core machine (load 10-13, 2026-12-06): with the two kill -9 modules moved, the cluster
# process took 607 s and the others 871 s; the broker restart (~96 s) and plugin crash (~49 s) modules
# move too, for about 750 s against 725 s. Rebalance when run-suite's two printed times drift apart.
WITH_THE_CLUSTER = (
    "test_runtime_crash.py",
    "test_runtime_hostile.py",
    "test_runtime_broker_restart.py",
    "test_runtime_plugin_crash.py",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster_process: run-suite runs it in the cluster tests' process (balance)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag tests by the bed parts they use, so `-m "not k8s"` etc. select correctly."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in _MARKER_FIXTURES.items():
            if names & fixtures or "testbed" in names:
                item.add_marker(getattr(pytest.mark, marker))
        if item.path.name in WITH_THE_CLUSTER:
            item.add_marker(pytest.mark.cluster_process)


def _bring_up(request: pytest.FixtureRequest, components: tuple[str, ...]) -> None:
    try:
        lease = bed.acquire(components)
    except bed.TestbedError as exc:
        pytest.fail(f"test bed ({', '.join(components)}) could not start: {exc}", pytrace=False)
    request.addfinalizer(lambda: bed.release(lease))


def _snapshot() -> Testbed:
    env = bed.process_env()
    state = bed.load_state()
    k8s = state.get("k8s", {})
    kafka = state.get("kafka", {})
    node = state.get("node", {})
    return Testbed(
        kafka_bootstrap=str(kafka["bootstrap"]) if kafka else None,
        kubeconfig=Path(str(k8s["kubeconfig"])) if k8s else None,
        operator_kubeconfig=Path(str(k8s["operator_kubeconfig"])) if k8s else None,
        kubectl=Path(str(k8s["kubectl"])) if k8s else None,
        env=env,
        pod_kafka_bootstrap=str(kafka["pod_bootstrap"]) if kafka.get("pod_bootstrap") else None,
        containerd_socket=Path(str(node["containerd_socket"])) if node else None,
        node_name=str(node["node_name"]) if node else None,
    )


@pytest.fixture(scope="session")
def _testbed_kafka(request: pytest.FixtureRequest) -> Testbed:
    _bring_up(request, ("kafka",))
    return _snapshot()


@pytest.fixture(scope="session")
def _testbed_k8s(request: pytest.FixtureRequest) -> Testbed:
    _bring_up(request, ("k8s",))
    return _snapshot()


@pytest.fixture(scope="session")
def _testbed_node(request: pytest.FixtureRequest) -> Testbed:
    _bring_up(request, ("k8s", "node"))
    return _snapshot()


@pytest.fixture(scope="session")
def testbed(_testbed_kafka: Testbed, _testbed_k8s: Testbed) -> Testbed:
    """The whole bed (Kafka and Kubernetes), started if not already running."""
    return _snapshot()


# --- Kafka -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap(_testbed_kafka: Testbed) -> str:
    """`host:port` of the single-node KRaft broker (transactions enabled)."""
    assert _testbed_kafka.kafka_bootstrap is not None
    return _testbed_kafka.kafka_bootstrap


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Any:
    """A confluent_kafka AdminClient bound to the bed's broker."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def make_topic(kafka_admin: Any) -> Iterator[MakeTopic]:
    """Factory creating uniquely named topics (RF 1); they are deleted after the test."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    created: list[str] = []

    def create(partitions: int = 1, config: Mapping[str, str] | None = None, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
        kafka_admin.create_topics([topic], operation_timeout=30)[name].result(timeout=30)
        created.append(name)
        _wait_for_topic_metadata(kafka_admin, name, partitions)
        return name

    yield create
    if created:
        for future in kafka_admin.delete_topics(created, operation_timeout=30).values():
            # best effort: a leftover topic in a throw-away broker is harmless
            with contextlib.suppress(Exception):
                future.result(timeout=30)


def _wait_for_topic_metadata(admin: Any, name: str, partitions: int, timeout: float = 30.0) -> None:
    """CreateTopics returns once the controller has the topic; the broker's metadata may lag behind."""
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(topic=name, timeout=10).topics.get(name)
        ready = topic is not None and topic.error is None and len(topic.partitions) == partitions
        if ready and all(p.leader >= 0 for p in topic.partitions.values()):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"topic {name} has no metadata/leaders {timeout:.0f}s after creation", pytrace=False)
        time.sleep(0.1)


# --- Kubernetes ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kubeconfig(_testbed_k8s: Testbed) -> Path:
    """Admin kubeconfig (client certificate in `system:masters`)."""
    assert _testbed_k8s.kubeconfig is not None
    return _testbed_k8s.kubeconfig


@pytest.fixture(scope="session")
def operator_kubeconfig(_testbed_k8s: Testbed) -> Path:
    """Kubeconfig of ServiceAccount `smc-system/smc-operator` (RBAC applies; no rights until bound)."""
    assert _testbed_k8s.operator_kubeconfig is not None
    return _testbed_k8s.operator_kubeconfig


@pytest.fixture(scope="session")
def kubectl(_testbed_k8s: Testbed, kubeconfig: Path) -> Kubectl:
    """Run the bed's kubectl (admin by default): `kubectl("get", "ns", check=False, input=yaml_text)`."""
    binary = _testbed_k8s.kubectl
    assert binary is not None
    env, admin = _testbed_k8s.env, kubeconfig

    def run(
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60.0,
        kubeconfig: str | Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(binary), f"--kubeconfig={kubeconfig or admin}", *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr.strip()}"
            )
        return result

    return run


# --- the node (kubelet + containerd) and images ----------------------------------------------------------


@pytest.fixture(scope="session")
def testbed_node(_testbed_node: Testbed) -> Node:
    """The real node pods run on (starts the control plane too); see `Node` in fixture_types."""
    from tests.testbed import images

    assert _testbed_node.containerd_socket is not None and _testbed_node.node_name is not None
    socket = _testbed_node.containerd_socket

    def ctr(*args: str, check: bool = True, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            images.ctr_argv(socket, *args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def import_image(archive: Path) -> None:
        ctr("images", "import", str(archive))

    from tests.testbed import network

    return Node(
        name=_testbed_node.node_name,
        containerd_socket=socket,
        gateway=network.GATEWAY,
        pod_cidr=network.POD_CIDR,
        ctr=ctr,
        import_image=import_image,
    )


@pytest.fixture(scope="session")
def pod_kafka_bootstrap(_testbed_kafka: Testbed, testbed_node: Node) -> str:
    """`10.244.0.1:<port>`: the broker's listener that pods on the node reach (bound to the bridge)."""
    if _testbed_kafka.pod_kafka_bootstrap is None:
        pytest.fail("the broker has no pod listener (no pod bridge when it started)", pytrace=False)
    return _testbed_kafka.pod_kafka_bootstrap


@pytest.fixture(scope="session")
def smc_images(testbed_node: Node) -> Images:
    """localhost/smc-runtime:dev and localhost/smc-operator:dev built from our Dockerfiles (skipped when their
    inputs are unchanged) and loaded into the node's containerd."""
    from tests.testbed import images

    try:
        built = bed.ensure_images()
    except bed.TestbedError as exc:
        pytest.fail(f"images could not be built or loaded: {exc}", pytrace=False)
    return Images(
        runtime=images.RUNTIME_IMAGE,
        operator=images.OPERATOR_IMAGE,
        pause=images.PAUSE_IMAGE,
        base=images.BASE_IMAGE,
        ids={name: b.image_id for name, b in built.items()},
    )
