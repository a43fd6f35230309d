"""spec.template, the PodDisruptionBudget, restartNonce, staticMembership and Secret keys, rendered."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from smc_operator.render import (
    CONFIG_HASH_ANNOTATION,
    RESTART_NONCE_ANNOTATION,
    Owner,
    Rendered,
    labels_for,
    render,
    selector_for,
)
from smc_operator.spec import parse_spec

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "manifests" / "samples" / "market-data-processor.yaml"
OWNER = Owner(name="mdp", namespace="trading", uid="uid-1")

TEMPLATE: dict[str, Any] = {
    "pod": {
        "metadata": {
            "labels": {"team": "quant", "app.kubernetes.io/instance": "hijack"},
            "annotations": {"cost-center": "42"},
        },
        "nodeSelector": {"node-role/low-latency": "true"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "md", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "mdp"}},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone"}],
        "priorityClassName": "trading-critical",
        "imagePullSecrets": [{"name": "registry"}],
        "securityContext": {"runAsUser": 20000, "supplementalGroups": [5]},
        "terminationGracePeriodSeconds": 90,
    },
    "container": {
        "env": [
            {"name": "TZ", "value": "UTC"},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        ],
        "resources": {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {"readOnlyRootFilesystem": False},
    },
    "podDisruptionBudget": {"maxUnavailable": 0, "metadata": {"labels": {"team": "quant"}}},
}


def sample(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = copy.deepcopy(yaml.safe_load(SAMPLE.read_text())["spec"])
    raw.update(overrides)
    return raw


def rendered(raw: dict[str, Any]) -> Rendered:
    out = render(OWNER, parse_spec(raw), replicas=1)
    assert isinstance(out, Rendered), out
    return out


def pod_of(r: Rendered) -> dict[str, Any]:
    pod: dict[str, Any] = r.workload["spec"]["template"]
    return pod


def test_template_reaches_the_pod_spec() -> None:
    pod = pod_of(rendered(sample(template=TEMPLATE)))
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"node-role/low-latency": "true"}
    assert spec["tolerations"] == TEMPLATE["pod"]["tolerations"]
    assert spec["affinity"] == TEMPLATE["pod"]["affinity"]
    assert spec["priorityClassName"] == "trading-critical"
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    assert spec["terminationGracePeriodSeconds"] == 90
    # A spread constraint without a selector spreads this processor's own pods.
    assert spec["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": selector_for("mdp")},
        }
    ]
    # Security contexts are merged over the hardened defaults, key by key.
    assert spec["securityContext"]["runAsUser"] == 20000 and spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["supplementalGroups"] == [5]
    box = spec["containers"][0]
    assert box["securityContext"]["readOnlyRootFilesystem"] is False
    assert box["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert box["resources"] == {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    env = {e["name"]: e for e in box["env"]}
    assert env["TZ"] == {"name": "TZ", "value": "UTC"}
    assert env["NODE"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert "PROCESSOR_ID" in env


def test_template_labels_cannot_detach_pods_from_their_selector() -> None:
    r = rendered(sample(template=TEMPLATE))
    labels = pod_of(r)["metadata"]["labels"]
    assert labels["team"] == "quant"
    assert labels["app.kubernetes.io/instance"] == "mdp"  # the operator's label wins
    assert labels.items() >= selector_for("mdp").items()
    annotations = pod_of(r)["metadata"]["annotations"]
    assert annotations["cost-center"] == "42" and annotations[CONFIG_HASH_ANNOTATION] == r.config_hash


def test_defaults_without_a_template_are_unchanged() -> None:
    spec = pod_of(rendered(sample()))["spec"]
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "priorityClassName"):
        assert key not in spec
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }


def test_budget_defaults_to_one_unavailable_and_can_be_disabled() -> None:
    pdb = rendered(sample()).pdb
    assert pdb is not None and pdb["kind"] == "PodDisruptionBudget"
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector_for("mdp")}}
    assert pdb["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    custom = rendered(sample(template=TEMPLATE)).pdb
    assert custom is not None and custom["spec"]["maxUnavailable"] == 0
    assert custom["metadata"]["labels"] == {"team": "quant", **labels_for("mdp")}
    off = rendered(sample(template={"podDisruptionBudget": {"enabled": False}}))
    assert off.pdb is None and [c["kind"] for c in off.children()] == ["ConfigMap", "Service", "StatefulSet"]


def test_restart_nonce_rolls_pods_without_changing_the_config() -> None:
    base = rendered(sample())
    nonce = rendered(sample(restartNonce="2026-12-06T05:00"))
    assert RESTART_NONCE_ANNOTATION not in pod_of(base)["metadata"]["annotations"]
    assert pod_of(nonce)["metadata"]["annotations"][RESTART_NONCE_ANNOTATION] == "2026-12-06T05:00"
    assert nonce.config_hash == base.config_hash and pod_of(nonce) != pod_of(base)


def test_static_membership_reaches_the_runtime_config() -> None:
    raw = sample()
    assert rendered(raw).config.kafka.static_membership is False
    raw["kafka"]["staticMembership"] = True
    on = rendered(raw)
    assert on.config.kafka.static_membership is True and on.config_hash != rendered(sample()).config_hash


def test_only_the_named_secret_keys_are_mounted() -> None:
    raw = sample()
    raw["kafka"]["security"] = {
        "protocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "secretName": "kafka-user", "usernameKey": "user"},
        "caSecret": {"name": "kafka-ca", "key": "ca.crt"},
    }
    volumes = {v["name"]: v for v in pod_of(rendered(raw))["spec"]["volumes"]}
    assert volumes["kafka-sasl"]["secret"]["items"] == [
        {"key": "password", "path": "password"},
        {"key": "user", "path": "user"},
    ]
    assert volumes["kafka-ca"]["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]


def test_production_sample_renders_with_its_placement_and_budget() -> None:
    cr = yaml.safe_load(
        (REPO / "manifests" / "samples" / "market-data-processor-production.yaml").read_text()
    )
    r = rendered(cr["spec"])
    spec = pod_of(r)["spec"]
    assert spec["priorityClassName"] == "trading-critical" and len(spec["topologySpreadConstraints"]) == 2
    assert r.config.kafka.static_membership is True and r.config.kafka.security.protocol == "SASL_SSL"
    assert r.pdb is not None and r.pdb["spec"]["maxUnavailable"] == 1
