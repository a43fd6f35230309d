"""The operator as an SRE runs it, against the real kube-apiserver + kube-controller-manager (and the real
broker for lag): spec.template reaching the pods the StatefulSet controller creates, the
PodDisruptionBudget child, pause annotations, the periodic full reconcile repairing deleted and edited
children, refusal to adopt foreign objects, Secret handling (only the named keys, only Secrets that grant
the CR), restartNonce and staticMembership.

The operator runs as a subprocess under the non-admin identity of ``manifests/`` RBAC, with a 3 s full
reconcile interval (``SMC_OPERATOR_RESYNC_SECONDS``) so a repair is observable within seconds. No node is
needed: the pods are asserted as the API objects the StatefulSet controller creates from the template.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from smc_operator.credentials import ALLOWED_ANNOTATION
from smc_operator.plan import PAUSE_RECONCILIATION, PAUSED_REPLICAS, SECRET_NOT_ALLOWED
from smc_operator.render import CONFIG_HASH_ANNOTATION, RESTART_NONCE_ANNOTATION
from tests.integration.operator_harness import (
    OperatorProcess,
    apply,
    condition,
    events,
    fresh_namespace,
    get,
    printed_row,
    running_operator,
    sample_cr,
    status_of,
    sts_replicas,
    wait_for,
    wait_replicas,
)
from tests.testbed.fixture_types import Kubectl, MakeTopic, Testbed

pytestmark = [pytest.mark.k8s, pytest.mark.kafka, pytest.mark.slow]
RESYNC_S = 3.0


@pytest.fixture(scope="module")
def operator(
    testbed: Testbed, kubectl: Kubectl, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    env = {**testbed.env, "SMC_OPERATOR_RESYNC_SECONDS": str(RESYNC_S)}
    with running_operator(kubectl, operator_kubeconfig, env, tmp_path_factory.mktemp("operator-sre")) as op:
        yield op


@pytest.fixture
def namespace(kubectl: Kubectl, operator: OperatorProcess) -> Iterator[str]:
    with fresh_namespace(kubectl, "sre") as name:
        yield name


def _annotate(kubectl: Kubectl, ns: str, name: str, *pairs: str) -> None:
    kubectl("-n", ns, "annotate", "--overwrite", f"sp/{name}", *pairs)


def _reasons(kubectl: Kubectl, ns: str, name: str) -> list[str]:
    return [str(e.get("reason")) for e in events(kubectl, ns, name)]


def _config_yaml(kubectl: Kubectl, ns: str, name: str) -> dict[str, Any]:
    cm = get(kubectl, ns, "configmap", f"{name}-config") or {}
    loaded: dict[str, Any] = yaml.safe_load(cm["data"]["streams-config.yaml"])
    return loaded


TEMPLATE: dict[str, Any] = {
    "pod": {
        "metadata": {"labels": {"team": "quant"}, "annotations": {"cost-center": "42"}},
        "nodeSelector": {"smc-test/low-latency": "true"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "md", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "placed"}},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
            }
        ],
        "priorityClassName": "smc-test-critical",
        "imagePullSecrets": [{"name": "registry"}],
        "securityContext": {"runAsUser": 20000},
        "terminationGracePeriodSeconds": 45,
    },
    "container": {
        "env": [{"name": "TZ", "value": "UTC"}],
        "resources": {"requests": {"cpu": "300m", "memory": "300Mi"}, "limits": {"memory": "600Mi"}},
        "securityContext": {"runAsGroup": 20000},
    },
}


def test_template_reaches_the_pods_and_budget_is_configurable_and_removable(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": "smc-test-critical"},
                "value": 1000,
            }
        ),
    )
    cr = sample_cr("placed", kafka_bootstrap, [make_topic(prefix="sre-tpl")], replicas=2, template=TEMPLATE)
    apply(kubectl, namespace, cr)

    pod = wait_for(lambda: get(kubectl, namespace, "pod", "placed-0"), timeout=60, what="pod placed-0")
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"smc-test/low-latency": "true"}
    assert TEMPLATE["pod"]["tolerations"][0] in spec["tolerations"]
    assert spec["affinity"] == TEMPLATE["pod"]["affinity"]
    assert spec["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"][
        "app.kubernetes.io/instance"
    ] == ("placed")
    assert spec["priorityClassName"] == "smc-test-critical" and spec["priority"] == 1000
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    assert spec["terminationGracePeriodSeconds"] == 45
    assert spec["securityContext"]["runAsUser"] == 20000 and spec["securityContext"]["runAsNonRoot"] is True
    box = spec["containers"][0]
    assert {"name": "TZ", "value": "UTC"} in box["env"]
    assert box["resources"]["requests"] == {"cpu": "300m", "memory": "300Mi"}
    assert box["securityContext"]["runAsGroup"] == 20000 and box["securityContext"]["readOnlyRootFilesystem"]
    assert pod["metadata"]["labels"]["team"] == "quant"
    assert pod["metadata"]["annotations"]["cost-center"] == "42"

    pdb = wait_for(lambda: get(kubectl, namespace, "pdb", "placed"), timeout=30, what="the budget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "placed"
    assert pdb["metadata"]["ownerReferences"][0]["name"] == "placed"

    cr["spec"]["template"] = {**TEMPLATE, "podDisruptionBudget": {"maxUnavailable": 0}}
    apply(kubectl, namespace, cr)
    wait_for(
        lambda: (get(kubectl, namespace, "pdb", "placed") or {}).get("spec", {}).get("maxUnavailable") == 0,
        timeout=30,
        what="maxUnavailable 0",
    )
    cr["spec"]["template"] = {**TEMPLATE, "podDisruptionBudget": {"enabled": False}}
    apply(kubectl, namespace, cr)
    wait_for(lambda: get(kubectl, namespace, "pdb", "placed") is None, timeout=30, what="the budget deleted")
    kubectl("delete", "priorityclass", "smc-test-critical", check=False)


def test_deleted_or_edited_children_come_back_within_one_interval(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    cr = sample_cr("drift", kafka_bootstrap, [make_topic(prefix="sre-drift")])
    apply(kubectl, namespace, cr)
    wait_for(lambda: status_of(kubectl, namespace, "drift").get("configHash"), timeout=60, what="reconciled")
    wait_for(lambda: get(kubectl, namespace, "pdb", "drift"), timeout=30, what="the budget")
    original_cm = _config_yaml(kubectl, namespace, "drift")

    kubectl("-n", namespace, "delete", "statefulset", "drift", "--wait=false")
    kubectl("-n", namespace, "delete", "configmap/drift-config", "service/drift")
    kubectl("-n", namespace, "delete", "pdb", "drift")
    started = time.monotonic()
    wait_for(
        lambda: all(
            get(kubectl, namespace, kind, n) is not None
            for kind, n in (
                ("statefulset", "drift"),
                ("configmap", "drift-config"),
                ("service", "drift"),
                ("pdb", "drift"),
            )
        ),
        timeout=RESYNC_S * 2 + 5,
        what="every child recreated",
    )
    recreated_after = time.monotonic() - started
    print(f"\nall 4 children recreated {recreated_after:.1f}s after deletion (interval {RESYNC_S:.0f}s)")
    assert recreated_after <= RESYNC_S + 3, recreated_after
    assert _config_yaml(kubectl, namespace, "drift") == original_cm

    # Hand edits: the replica count and the runtime config.
    edited = time.monotonic()
    kubectl("-n", namespace, "scale", "statefulset/drift", "--replicas=3")
    kubectl(
        "-n",
        namespace,
        "patch",
        "configmap",
        "drift-config",
        "--type=merge",
        "-p",
        '{"data": {"streams-config.yaml": "tampered: true"}}',
    )
    wait_replicas(kubectl, namespace, "drift", 1, timeout=RESYNC_S * 2 + 5, what="replicas back")
    wait_for(
        lambda: _config_yaml(kubectl, namespace, "drift") == original_cm,
        timeout=RESYNC_S * 2 + 5,
        what="config back",
    )
    print(f"hand edits (replicas 3, config) undone {time.monotonic() - edited:.1f}s after the edit")
    repaired = [e for e in events(kubectl, namespace, "drift") if e.get("reason") == "Repaired"]
    text = " ".join(str(e.get("message")) for e in repaired)
    for piece in (
        "StatefulSet/drift recreated",
        "ConfigMap/drift-config",
        "PodDisruptionBudget/drift recreated",
    ):
        assert piece in text, text
    assert "StatefulSet/drift restored" in text


def test_pause_freezes_reconcile_and_status_shows_a_missing_workload(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    cr = sample_cr("frozen", kafka_bootstrap, [make_topic(prefix="sre-pause")])
    cr["spec"]["autoscaling"] = {"enabled": False, "pollIntervalSeconds": 1}
    apply(kubectl, namespace, cr)
    first = wait_for(
        lambda: status_of(kubectl, namespace, "frozen").get("configHash"), timeout=60, what="hash"
    )
    assert condition(status_of(kubectl, namespace, "frozen"), "Paused")["status"] == "False"

    _annotate(kubectl, namespace, "frozen", f"{PAUSE_RECONCILIATION}=true")
    wait_for(
        lambda: (
            condition(status_of(kubectl, namespace, "frozen"), "Paused").get("reason")
            == "ReconciliationPaused"
        ),
        timeout=15,
        what="Paused condition",
    )
    assert printed_row(kubectl, namespace, "sp", "frozen")["PAUSED"] == "True"

    # While paused: a spec change is not applied, a deleted StatefulSet is not recreated, status says so.
    cr["spec"]["processor"]["detection"]["swingLength"] = 6
    apply(kubectl, namespace, cr)
    kubectl("-n", namespace, "delete", "statefulset", "frozen")

    def workload_missing() -> dict[str, Any] | None:
        status = status_of(kubectl, namespace, "frozen")
        ready, degraded = condition(status, "Ready"), condition(status, "Degraded")
        missing = ready.get("status") == "False" and degraded.get("reason") == "WorkloadMissing"
        return status if missing else None

    missing = wait_for(workload_missing, timeout=15, what="a missing workload in status")
    assert missing["phase"] == "Degraded"
    time.sleep(RESYNC_S * 2)
    assert get(kubectl, namespace, "statefulset", "frozen") is None
    assert (
        _config_yaml(kubectl, namespace, "frozen")["stream_processors"]["market_data_processor"]["detection"][
            "swing_length"
        ]
        == 10
    )
    assert status_of(kubectl, namespace, "frozen")["configHash"] == first

    # Resumed: everything catches up at once, and the events tell the story.
    _annotate(kubectl, namespace, "frozen", f"{PAUSE_RECONCILIATION}-")
    wait_for(lambda: get(kubectl, namespace, "statefulset", "frozen"), timeout=15, what="the workload back")
    wait_for(
        lambda: status_of(kubectl, namespace, "frozen").get("configHash") != first,
        timeout=15,
        what="new config",
    )
    wait_for(
        lambda: condition(status_of(kubectl, namespace, "frozen"), "Degraded").get("status") == "False",
        timeout=15,
        what="WorkloadMissing cleared",
    )
    reasons = _reasons(kubectl, namespace, "frozen")
    assert "Paused" in reasons and "Resumed" in reasons


def test_paused_replicas_hold_the_count_against_the_autoscaler(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    topic = make_topic(partitions=4, prefix="sre-hold")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
    for i in range(400):
        producer.produce(topic, value=b"{}", partition=i % 4)
    assert producer.flush(30) == 0
    cr = sample_cr("held", kafka_bootstrap, [topic])
    cr["metadata"]["annotations"] = {PAUSED_REPLICAS: "1"}
    cr["spec"]["autoscaling"] = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 4,
        "lagThreshold": 10,
        "pollIntervalSeconds": 1,
    }
    apply(kubectl, namespace, cr)
    held = wait_for(
        lambda: (
            (s := status_of(kubectl, namespace, "held")).get("autoscaler", {}).get("recommendedReplicas") == 4
            and s
        ),
        timeout=30,
        what="a scale-up recommendation",
    )
    assert "(paused: not applied)" in held["autoscaler"]["decision"]
    assert condition(held, "Paused")["reason"] == "ReplicasPaused"
    time.sleep(2)
    assert sts_replicas(kubectl, namespace, "held") == 1

    # A paused reconciliation freezes scaling as well.
    _annotate(kubectl, namespace, "held", f"{PAUSE_RECONCILIATION}=true", f"{PAUSED_REPLICAS}-")
    wait_for(
        lambda: (
            condition(status_of(kubectl, namespace, "held"), "Paused").get("reason") == "ReconciliationPaused"
        ),
        timeout=15,
        what="reconciliation paused",
    )
    time.sleep(2)
    frozen = status_of(kubectl, namespace, "held")
    assert sts_replicas(kubectl, namespace, "held") == 1 and frozen["desiredReplicas"] == 1
    assert "(paused: not applied)" in frozen["autoscaler"]["decision"]

    _annotate(kubectl, namespace, "held", f"{PAUSE_RECONCILIATION}-")
    wait_replicas(kubectl, namespace, "held", 4, timeout=20, what="the scale-up once unpaused")
    assert condition(status_of(kubectl, namespace, "held"), "Paused")["status"] == "False"


def test_foreign_objects_are_refused_not_adopted(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    kubectl("-n", namespace, "create", "configmap", "squat-config", "--from-literal=owner=someone-else")
    apply(kubectl, namespace, sample_cr("squat", kafka_bootstrap, [make_topic(prefix="sre-squat")]))
    degraded = wait_for(
        lambda: (
            (c := condition(status_of(kubectl, namespace, "squat"), "Degraded")).get("reason")
            == "OwnershipConflict"
            and c
        ),
        timeout=30,
        what="OwnershipConflict",
    )
    assert "ConfigMap 'squat-config'" in degraded["message"]
    assert "OwnershipConflict" in _reasons(kubectl, namespace, "squat")
    cm = get(kubectl, namespace, "configmap", "squat-config") or {}
    assert cm["data"] == {"owner": "someone-else"} and not cm["metadata"].get("ownerReferences")
    assert get(kubectl, namespace, "statefulset", "squat") is None

    kubectl("-n", namespace, "delete", "configmap", "squat-config")  # the owner of the squatter gives way
    wait_for(
        lambda: get(kubectl, namespace, "statefulset", "squat"), timeout=60, what="reconcile after the retry"
    )


def test_secrets_keys_plain_refusal_restart_nonce_and_static_membership(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    topic = make_topic(prefix="sre-sec")
    plain = sample_cr("plain", kafka_bootstrap, [topic])
    plain["spec"]["kafka"]["security"] = {
        "protocol": "SASL_PLAINTEXT",
        "sasl": {"mechanism": "PLAIN", "secretName": "creds"},
    }
    refused = apply(kubectl, namespace, plain, check=False)
    assert refused.returncode != 0 and "sends the password unencrypted" in refused.stderr

    kubectl(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=username=u",
        "--from-literal=password=p",
        "--from-literal=admin-token=never-mount-me",
    )
    kubectl("-n", namespace, "annotate", "secret", "creds", f"{ALLOWED_ANNOTATION}=plain")
    plain["spec"]["kafka"]["security"]["allowPlaintextCredentials"] = True
    plain["spec"]["kafka"]["staticMembership"] = True
    apply(kubectl, namespace, plain)
    sts = wait_for(lambda: get(kubectl, namespace, "statefulset", "plain"), timeout=60, what="the workload")
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert [i["key"] for i in volumes["kafka-sasl"]["secret"]["items"]] == ["password", "username"]
    assert _config_yaml(kubectl, namespace, "plain")["kafka"]["static_membership"] is True

    template = sts["spec"]["template"]["metadata"]["annotations"]
    plain["spec"]["restartNonce"] = "roll-1"
    apply(kubectl, namespace, plain)
    rolled = wait_for(
        lambda: (
            (
                a := (get(kubectl, namespace, "statefulset", "plain") or {})["spec"]["template"]["metadata"][
                    "annotations"
                ]
            ).get(RESTART_NONCE_ANNOTATION)
            == "roll-1"
            and a
        ),
        timeout=30,
        what="the nonce on the pod template",
    )
    assert rolled[CONFIG_HASH_ANNOTATION] == template[CONFIG_HASH_ANNOTATION]  # same config, new pods


def test_a_cr_cannot_use_a_secret_that_does_not_grant_it(
    operator: OperatorProcess, kubectl: Kubectl, namespace: str, kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    """The Secret's owner grants it to named StreamProcessors; naming it in another CR gets a refusal
    (Degraded SecretNotAllowed, a Warning event, no StatefulSet that mounts it), granting it rolls the
    workload out, and revoking it degrades the CR again at the next full reconcile."""
    topic = make_topic(prefix="sre-grant")
    kubectl(
        "-n", namespace, "create", "secret", "generic", "team-a-creds",
        "--from-literal=username=team-a", "--from-literal=password=team-a-password",
    )

    def grant(names: str) -> None:
        annotation = f"{ALLOWED_ANNOTATION}={names}"
        kubectl("-n", namespace, "annotate", "--overwrite", "secret", "team-a-creds", annotation)

    grant("team-a")
    thief = sample_cr("thief", kafka_bootstrap, [topic])
    thief["spec"]["processor"]["consumerGroup"] = "thief-group"
    thief["spec"]["kafka"]["security"] = {
        "protocol": "SASL_PLAINTEXT",
        "sasl": {"mechanism": "SCRAM-SHA-512", "secretName": "team-a-creds"},
    }
    apply(kubectl, namespace, thief)

    def degraded(name: str) -> dict[str, Any] | None:
        cond = condition(status_of(kubectl, namespace, name), "Degraded")
        return cond if cond.get("status") == "True" else None

    refused = wait_for(lambda: degraded("thief"), timeout=30, what="the refusal")
    assert refused["reason"] == SECRET_NOT_ALLOWED
    assert "team-a-creds" in refused["message"] and ALLOWED_ANNOTATION in refused["message"]
    warnings = [e for e in events(kubectl, namespace, "thief") if e.get("type") == "Warning"]
    assert SECRET_NOT_ALLOWED in {e.get("reason") for e in warnings}
    time.sleep(2 * RESYNC_S)  # retries and full reconciles come and go: still nothing mounts the Secret
    assert get(kubectl, namespace, "statefulset", "thief") is None
    assert get(kubectl, namespace, "configmap", "thief-config") is None
    assert degraded("thief")["reason"] == SECRET_NOT_ALLOWED  # type: ignore[index]

    # The Secret's owner grants it: the retry rolls the workload out with the Secret mounted.
    grant("team-a, thief")
    sts = wait_for(lambda: get(kubectl, namespace, "statefulset", "thief"), timeout=60, what="the workload")
    secrets = [v["secret"]["secretName"] for v in sts["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert secrets == ["team-a-creds"]
    # (the bed's broker speaks no SASL, so the lag poll may now report KafkaUnreachable: it used them)
    wait_for(
        lambda: (degraded("thief") or {}).get("reason") != SECRET_NOT_ALLOWED or None,
        timeout=30,
        what="the refusal cleared",
    )

    # ... and revokes it: the next full reconcile refuses again (the running pods keep what they mounted).
    grant("team-a")
    wait_for(
        lambda: (degraded("thief") or {}).get("reason") == SECRET_NOT_ALLOWED or None,
        timeout=6 * RESYNC_S,
        what="the refusal after revoking",
    )


def test_production_sample_passes_the_crd(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str
) -> None:
    sample = (
        Path(__file__).resolve().parents[2]
        / "manifests"
        / "samples"
        / "market-data-processor-production.yaml"
    )
    out = kubectl("-n", namespace, "apply", "--dry-run=server", "-f", str(sample))
    assert "created (server dry run)" in out.stdout
