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
from tests.testbed.fixture_types import Kubectl, KubectlError, MakeTopic, Testbed

_MARKER_FIXTURES = {
    "kafka": {"kafka_bootstrap", "kafka_admin", "make_topic"},
    "k8s": {"kubeconfig", "operator_kubeconfig", "kubectl"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag tests by the bed parts they use, so `-m "not k8s"` etc. select correctly."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in _MARKER_FIXTURES.items():
            if names & fixtures or "testbed" in names:
                item.add_marker(getattr(pytest.mark, marker))


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
    return Testbed(
        kafka_bootstrap=str(state["kafka"]["bootstrap"]) if "kafka" in state else None,
        kubeconfig=Path(str(k8s["kubeconfig"])) if k8s else None,
        operator_kubeconfig=Path(str(k8s["operator_kubeconfig"])) if k8s else None,
        kubectl=Path(str(k8s["kubectl"])) if k8s else None,
        env=env,
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
