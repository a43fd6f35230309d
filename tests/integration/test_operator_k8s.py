"""The operator against the real kube-apiserver + kube-controller-manager (and the real broker for lag).

The operator runs as a subprocess under the NON-admin identity `system:serviceaccount:smc-system:smc-operator`
bound by `manifests/` RBAC, so every test here also proves the RBAC is sufficient.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from smc_operator.credentials import ALLOWED_ANNOTATION
from smc_operator.render import CONFIG_HASH_ANNOTATION, Owner, Rendered, render
from smc_operator.spec import parse_spec
from smc_runtime.config import parse_config
from tests.integration.operator_harness import (
    OperatorProcess,
    apply,
    condition,
    fresh_namespace,
    get,
    printed_row,
    running_operator,
    sample_cr,
    status_of,
    wait_for,
)
from tests.testbed.fixture_types import Kubectl, MakeTopic, Testbed

pytestmark = [pytest.mark.k8s, pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def operator(
    testbed: Testbed, kubectl: Kubectl, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log_dir = tmp_path_factory.mktemp("operator")
    with running_operator(kubectl, operator_kubeconfig, testbed.env, log_dir) as op:
        yield op


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    with fresh_namespace(kubectl, "op") as name:
        yield name


def _children(kubectl: Kubectl, ns: str, name: str) -> dict[str, dict[str, Any]]:
    """Wait until the StatefulSet, ConfigMap and Service of a CR all exist; return them."""
    wanted = {"sts": ("statefulset", name), "cm": ("configmap", f"{name}-config"), "svc": ("service", name)}

    def fetch() -> dict[str, dict[str, Any]] | None:
        found = {key: get(kubectl, ns, kind, n) for key, (kind, n) in wanted.items()}
        if any(obj is None for obj in found.values()):
            return None
        return {key: obj for key, obj in found.items() if obj is not None}

    return wait_for(fetch, timeout=60, what=f"children of {ns}/{name}")


def test_sample_cr_becomes_configmap_statefulset_service(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    topics = [make_topic(partitions=2, prefix="op-trades"), make_topic(partitions=1, prefix="op-klines")]
    apply(kubectl, namespace, sample_cr("mdp", kafka_bootstrap, topics))
    kids = _children(kubectl, namespace, "mdp")
    cr = get(kubectl, namespace, "streamprocessor", "mdp")
    assert cr is not None

    # The ConfigMap is what the runtime parses, and equals a render of the live (server-defaulted) spec.
    text = kids["cm"]["data"]["streams-config.yaml"]
    parsed = parse_config(yaml.safe_load(text), env={})
    proc = parsed.stream_processors["market_data_processor"]
    assert proc.input_topics == topics and proc.consumer_group == "mdp-group"
    assert parsed.kafka.bootstrap_servers == kafka_bootstrap
    expected = render(Owner("mdp", namespace, cr["metadata"]["uid"]), parse_spec(cr["spec"]), replicas=1)
    assert isinstance(expected, Rendered) and expected.config == parsed

    sts = kids["sts"]
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert sts["spec"]["replicas"] == 1
    assert container["image"] == cr["spec"]["image"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert (
        container["securityContext"]["readOnlyRootFilesystem"] is True
        and pod["securityContext"]["runAsNonRoot"]
    )
    assert sts["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == expected.config_hash

    for kind, obj in kids.items():
        refs = obj["metadata"]["ownerReferences"]
        assert [(r["kind"], r["name"], r["uid"], r["controller"]) for r in refs] == [
            ("StreamProcessor", "mdp", cr["metadata"]["uid"], True)
        ], kind

    status = wait_for(
        lambda: (s := status_of(kubectl, namespace, "mdp")).get("consumerLag") and s,
        timeout=30,
        what="lag in status",
    )
    assert status["observedGeneration"] == cr["metadata"]["generation"]
    assert status["desiredReplicas"] == 1 and condition(status, "Degraded")["status"] == "False"
    assert set(status["consumerLag"]["perTopic"]) == set(topics)
    values = printed_row(kubectl, namespace, "sp", "mdp")
    assert list(values)[:6] == ["NAME", "PHASE", "MODE", "DESIRED", "READY", "LAG"]
    assert values["PHASE"] == "Deploying" and values["MODE"] == "exactly_once"
    assert values["DESIRED"] == "1" and values["READY"] == "0" and values["LAG"] == "0"


def test_detection_change_rolls_pods_noop_and_scale_do_not(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    cr = sample_cr("roll", kafka_bootstrap, [make_topic(prefix="op-roll")])
    apply(kubectl, namespace, cr)
    sts = _children(kubectl, namespace, "roll")["sts"]
    hash0 = sts["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]

    cr["spec"]["processor"]["detection"]["swingLength"] = 5
    apply(kubectl, namespace, cr)

    def new_hash() -> str | None:
        live = get(kubectl, namespace, "statefulset", "roll") or {}
        h = live["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        return h if h != hash0 else None

    hash1 = wait_for(new_hash, timeout=30, what="config hash to change")
    cm = get(kubectl, namespace, "configmap", "roll-config")
    assert cm is not None
    assert (
        parse_config(yaml.safe_load(cm["data"]["streams-config.yaml"]))
        .stream_processors["market_data_processor"]
        .detection.swing_length
        == 5
    )
    generation = (get(kubectl, namespace, "statefulset", "roll") or {})["metadata"]["generation"]

    # Re-applying the same CR, and changing only replicas, must not touch the pod template.
    apply(kubectl, namespace, cr)
    kubectl("-n", namespace, "scale", "sp/roll", "--replicas=3")
    wait_for(
        lambda: (get(kubectl, namespace, "statefulset", "roll") or {})["spec"]["replicas"] == 3,
        timeout=30,
        what="kubectl scale to reach the StatefulSet",
    )
    time.sleep(3)
    live = get(kubectl, namespace, "statefulset", "roll") or {}
    assert live["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == hash1
    assert live["metadata"]["generation"] == generation + 1  # the replica change only
    revisions = kubectl("-n", namespace, "get", "controllerrevisions", "-o", "name").stdout.split()
    assert len(revisions) <= 2


INVALID: list[tuple[str, Any, str]] = [
    (
        "min above max",
        {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        "minReplicas must be less than or equal to autoscaling.maxReplicas",
    ),
    ("bad topic", {"processor": {"consumerGroup": "g", "inputTopics": ["bad topic!"]}}, "inputTopics[0]"),
    (
        "unknown mode",
        {"processor": {"consumerGroup": "g", "inputTopics": ["t"], "processingMode": "sometimes"}},
        'Unsupported value: "sometimes"',
    ),
    (
        "batch size zero",
        {"processor": {"consumerGroup": "g", "inputTopics": ["t"], "batchSize": 0}},
        "batchSize: Invalid value: 0",
    ),
    (
        "input is output",
        {"processor": {"consumerGroup": "g", "inputTopics": ["smc.alerts"]}},
        "inputTopics must not also be used as outputTopics",
    ),
    (
        "sasl without secret",
        {"kafka": {"bootstrapServers": "k:9092", "security": {"protocol": "SASL_SSL"}}},
        "kafka.security.sasl (mechanism and secretName) is required with a SASL protocol",
    ),
    (
        "same ports",
        {"ports": {"metrics": 9000, "health": 9000}},
        "ports.metrics and ports.health must differ",
    ),
    ("no consumer group", {"processor": {"inputTopics": ["t"]}}, "consumerGroup: Required value"),
    ("bad bootstrap", {"kafka": {"bootstrapServers": "no-port-here"}}, "bootstrapServers"),
    (
        "bad swing length",
        {"processor": {"consumerGroup": "g", "inputTopics": ["t"], "detection": {"swingLength": 0}}},
        "swingLength: Invalid value: 0",
    ),
]


@pytest.mark.parametrize(("case", "override", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_cr_is_rejected_with_a_clear_message(
    kubectl: Kubectl, operator: OperatorProcess, case: str, override: dict[str, Any], message: str
) -> None:
    cr = sample_cr(f"bad-{uuid.uuid4().hex[:6]}", "127.0.0.1:9092", ["t"])
    for key, value in override.items():
        cr["spec"][key] = value
    result = apply(kubectl, "default", cr, check=False)
    assert result.returncode != 0, f"{case}: accepted"
    assert message in result.stderr, result.stderr


def test_long_name_is_rejected(kubectl: Kubectl, operator: OperatorProcess) -> None:
    result = apply(kubectl, "default", sample_cr("x" * 60, "127.0.0.1:9092", ["t"]), check=False)
    assert result.returncode != 0 and "DNS label of at most 52 characters" in result.stderr


def test_delete_cr_garbage_collects_children(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    apply(kubectl, namespace, sample_cr("gone", kafka_bootstrap, [make_topic(prefix="op-gc")]))
    _children(kubectl, namespace, "gone")
    kubectl("-n", namespace, "delete", "sp", "gone", "--timeout=60s")
    wait_for(
        lambda: all(
            get(kubectl, namespace, kind, n) is None
            for kind, n in (("statefulset", "gone"), ("configmap", "gone-config"), ("service", "gone"))
        ),
        timeout=60,
        what="garbage collection of the children",
    )


def test_failures_set_degraded_and_other_crs_keep_working(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    topic = make_topic(prefix="op-fail")
    unreachable = sample_cr("no-kafka", "127.0.0.1:1", [topic])
    unreachable["spec"]["autoscaling"] = {"enabled": True, "pollIntervalSeconds": 1}
    secretless = sample_cr("no-secret", kafka_bootstrap, [topic])
    secretless["spec"]["processor"]["consumerGroup"] = "no-secret-group"
    secretless["spec"]["kafka"]["security"] = {
        "protocol": "SASL_PLAINTEXT",
        "sasl": {"mechanism": "SCRAM-SHA-512", "secretName": "kafka-creds"},
    }
    healthy = sample_cr("healthy", kafka_bootstrap, [topic])
    healthy["spec"]["processor"]["consumerGroup"] = "healthy-group"
    for cr in (unreachable, secretless, healthy):
        apply(kubectl, namespace, cr)

    def degraded_reason(name: str) -> str | None:
        cond = condition(status_of(kubectl, namespace, name), "Degraded")
        return cond.get("reason") if cond.get("status") == "True" else None

    assert (
        wait_for(lambda: degraded_reason("no-kafka"), timeout=60, what="Kafka failure") == "KafkaUnreachable"
    )
    assert (
        wait_for(lambda: degraded_reason("no-secret"), timeout=30, what="Secret failure") == "SecretMissing"
    )
    assert "kafka-creds" in condition(status_of(kubectl, namespace, "no-secret"), "Degraded")["message"]
    assert get(kubectl, namespace, "statefulset", "no-secret") is None  # nothing rolled without credentials
    wait_for(
        lambda: status_of(kubectl, namespace, "healthy").get("consumerLag"), timeout=30, what="healthy CR"
    )
    assert condition(status_of(kubectl, namespace, "healthy"), "Degraded")["status"] == "False"
    assert status_of(kubectl, namespace, "no-kafka")["phase"] == "Degraded"

    # The Secret appears -> the retry (with backoff) rolls out the workload.
    kubectl(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "kafka-creds",
        "--from-literal=username=u",
        "--from-literal=password=p",
    )
    kubectl("-n", namespace, "annotate", "secret", "kafka-creds", f"{ALLOWED_ANNOTATION}=no-secret")
    _children(kubectl, namespace, "no-secret")
    warnings = kubectl("-n", namespace, "get", "events", "--field-selector=type=Warning", "-o", "name").stdout
    assert warnings.strip(), "failures must be reported as Kubernetes events"


def test_operator_identity_has_only_what_it_needs(
    kubectl: Kubectl, operator: OperatorProcess, operator_kubeconfig: Path
) -> None:
    def can(*args: str) -> bool:
        out = kubectl("auth", "can-i", *args, "-A", check=False, kubeconfig=operator_kubeconfig)
        return out.stdout.strip() == "yes"

    assert can("patch", "streamprocessors.smc-trading.io", "--subresource=status")
    assert can("patch", "statefulsets.apps") and can("create", "configmaps") and can("create", "events")
    assert can("get", "secrets")
    assert not can("list", "secrets")
    assert not can("delete", "statefulsets.apps")
    assert not can("create", "pods")
    assert not can("delete", "streamprocessors.smc-trading.io")
    assert "smc_operator_reconciles_total" in operator.metrics()


def test_operator_restart_resumes_without_duplicates_or_lost_status(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    cr = sample_cr("phoenix", kafka_bootstrap, [make_topic(prefix="op-restart")])
    apply(kubectl, namespace, cr)
    _children(kubectl, namespace, "phoenix")
    before = wait_for(
        lambda: (s := status_of(kubectl, namespace, "phoenix")).get("consumerLag") and s,
        timeout=30,
        what="first status",
    )
    operator.kill()  # SIGKILL: no cleanup
    cr["spec"]["processor"]["detection"]["closeMitigation"] = True  # changed while the operator is down
    apply(kubectl, namespace, cr)
    operator.start()

    def rolled() -> dict[str, Any] | None:
        s = status_of(kubectl, namespace, "phoenix")
        return s if s.get("observedGeneration") == 2 and s.get("configHash") != before["configHash"] else None

    after = wait_for(rolled, timeout=60, what="the change made while down to be reconciled")
    sts = get(kubectl, namespace, "statefulset", "phoenix") or {}
    assert sts["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == after["configHash"]
    for kind in ("statefulsets", "configmaps", "services"):
        names = kubectl(
            "-n", namespace, "get", kind, "-l", "app.kubernetes.io/instance=phoenix", "-o", "name"
        ).stdout.split()
        assert len(names) == 1, (kind, names)
    assert after["selector"] == before["selector"] and after["desiredReplicas"] == before["desiredReplicas"]
    assert after["conditions"][0]["type"] == "Ready"
