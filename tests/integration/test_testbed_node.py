"""The test bed's node runs real pods: kubelet + containerd + runc, images built from our Dockerfiles.

A runtime pod (localhost/smc-runtime:dev, `imagePullPolicy: Never`) becomes Ready through its real readiness
probe, reaches Kafka at the broker's pod listener on the bridge gateway, processes input, and answers
`kubectl logs` and `kubectl exec`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import Images, Kubectl, MakeTopic, Node

pytestmark = [pytest.mark.k8s, pytest.mark.node, pytest.mark.kafka]


def wait_until(what: str, condition: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(interval)


def get_json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl, testbed_node: Node) -> Iterator[str]:
    name = f"node-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_node_is_ready_untainted_and_runs_the_pinned_kubelet(kubectl: Kubectl, testbed_node: Node) -> None:
    node = get_json(kubectl, "get", "node", testbed_node.name)
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert not node["spec"].get("taints")  # the node-lifecycle controller removed the not-ready taint
    info = node["status"]["nodeInfo"]
    server = json.loads(kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    assert info["kubeletVersion"] == server  # built from the same pinned modules, with version ldflags
    assert info["containerRuntimeVersion"].startswith("containerd://")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == testbed_node.gateway


def _runtime_pod(name: str, image: str, bootstrap: str) -> dict[str, Any]:
    probe = {"periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 3}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "testbed-node-runtime"}},
        "spec": {
            "terminationGracePeriodSeconds": 10,
            "containers": [
                {
                    "name": "runtime",
                    "image": image,
                    "imagePullPolicy": "Never",
                    # The file mounted below names another broker: the env variable must win.
                    "env": [
                        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": bootstrap},
                        {"name": "PROCESSOR_ID", "value": name},
                    ],
                    "ports": [{"name": "health", "containerPort": 8081}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8081}, **probe},
                    "livenessProbe": {
                        "httpGet": {"path": "/health", "port": 8081},
                        "initialDelaySeconds": 20,
                        **probe,
                    },
                    "volumeMounts": [{"name": "config", "mountPath": "/app/config", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}}],
        },
    }


def test_runtime_pod_from_the_built_image_runs_ready_and_reaches_kafka(
    kubectl: Kubectl,
    namespace: str,
    smc_images: Images,
    pod_kafka_bootstrap: str,
    kafka_bootstrap: str,
    make_topic: MakeTopic,
    tmp_path: Path,
) -> None:
    topology = rs.make_topology(make_topic, input_partitions=2, output_partitions=1)
    name = "runtime-0"
    config = tmp_path / "streams-config.yaml"
    rs.write_config(config, "unused.invalid:9092", {"main": topology.processor()}, processor_id=name,
                    metrics_port=8080, health_port=8081)
    kubectl("-n", namespace, "create", "configmap", f"{name}-config", f"--from-file={config}")
    started = time.monotonic()
    kubectl("-n", namespace, "apply", "-f", "-",
            input=json.dumps(_runtime_pod(name, smc_images.runtime, pod_kafka_bootstrap)))

    def ready() -> bool:
        pod = get_json(kubectl, "-n", namespace, "get", "pod", name)
        statuses = pod["status"].get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting", {})
        stuck = ("ErrImageNeverPull", "CrashLoopBackOff", "CreateContainerError")
        assert waiting.get("reason") not in stuck, (
            f"{waiting}\n{kubectl('-n', namespace, 'logs', name, check=False).stdout[-3000:]}"
        )
        conditions = pod["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_until(f"pod {name} Ready", ready, 180)
    seconds = time.monotonic() - started
    print(f"pod {name} Ready {seconds:.1f}s after apply")
    pod = get_json(kubectl, "-n", namespace, "get", "pod", name)
    assert pod["status"]["podIP"].startswith("10.244.0.")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0

    # kubectl exec: the status command inside the image; the pod is assigned every input partition,
    # which it could only get from the broker at the gateway listener.
    status = json.loads(kubectl("-n", namespace, "exec", name, "--", "smc-runtime", "status").stdout)
    assert status["healthy"] is True
    assert status["config"]["processor_id"] == name
    assert len(status["processors"]["main"]["assignment"]) == 2 * len(topology.inputs)
    ready_doc = kubectl("-n", namespace, "exec", name, "--", "smc-runtime", "status", "ready")
    assert json.loads(ready_doc.stdout)["ready"] is True

    # It processes: input produced on the host comes out, committed, through the pod.
    fed = rs.feed(kafka_bootstrap, topology, rs.market_data(300))
    wait_until("the pod to commit past all input", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 120)
    assert rs.committed_count(kafka_bootstrap, topology) > 0, f"{fed} inputs, no committed output"

    # kubectl logs: the runtime's structured (JSON) log lines.
    lines = kubectl("-n", namespace, "logs", name).stdout.splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, lines[-20:]


def test_image_runs_with_env_only_config(
    kubectl: Kubectl, namespace: str, smc_images: Images, pod_kafka_bootstrap: str
) -> None:
    """No mounted file: the default streams-config.yaml in the image plus env variables."""
    name = "env-only"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "runtime",
                    "image": smc_images.runtime,
                    "imagePullPolicy": "Never",
                    "env": [
                        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": pod_kafka_bootstrap},
                        {"name": "PROCESSOR_ID", "value": name},
                    ],
                    # Only the configuration is checked here: the seed's topics are not created.
                    "command": ["sleep", "infinity"],
                }
            ],
        },
    }
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(pod))
    kubectl("-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s", timeout=130)
    script = (
        "import json; from smc_runtime.config import load_config, resolve_config_path; import os; "
        "c = load_config(resolve_config_path(None, os.environ)); "
        "print(json.dumps({'bootstrap': c.kafka.bootstrap_servers, 'id': c.processor_id, "
        "'processors': {n: p.input_topics for n, p in c.stream_processors.items()}}))"
    )
    out = json.loads(kubectl("-n", namespace, "exec", name, "--", "python", "-c", script).stdout)
    assert out["bootstrap"] == pod_kafka_bootstrap
    assert out["id"] == name
    assert out["processors"] == {
        "market_data_processor": ["market_data.trades", "market_data.orderbook", "market_data.klines"]
    }
    shipped = kubectl("-n", namespace, "exec", name, "--", "cat", "/app/config/streams-config.yaml").stdout
    assert yaml.safe_load(shipped)["kafka"]["bootstrap_servers"] == ["localhost:9092"]  # the seed's list form


def test_images_are_not_rebuilt_when_their_inputs_are_unchanged(smc_images: Images) -> None:
    from tests.testbed import images

    first = images.build_all()  # a no-op unless sources changed since the fixture built them
    started = time.monotonic()
    again = images.build_all()
    assert {name: b.image_id for name, b in again.items()} == {n: b.image_id for n, b in first.items()}
    assert all(b.seconds == 0 for b in again.values())
    assert time.monotonic() - started < 10


def test_the_node_starts_after_and_stops_before_the_control_plane() -> None:
    from tests.testbed import bed

    assert bed._with_dependencies(["node"]) == ["k8s", "node"]
    assert bed._with_dependencies(["node", "kafka"]) == ["kafka", "k8s", "node"]
    assert bed._dependents(["k8s"]) == ["node"]
    assert bed._stop_order(["kafka", "k8s", "node"])[0] == "node"


def test_missing_debian_packages_are_named_when_they_cannot_be_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.testbed import network
    from tests.testbed.common import TestbedError

    monkeypatch.setitem(network.REQUIRED, "smc-no-such-tool", "smc-no-such-package")
    monkeypatch.setattr(network.os, "geteuid", lambda: 1000)  # not root: apt-get is not attempted
    with pytest.raises(TestbedError, match="smc-no-such-package") as info:
        network.ensure_packages()
    assert "run as root" in str(info.value)
