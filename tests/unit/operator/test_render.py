"""render: the ConfigMap round-trips through the runtime's own model; the pod template, hash and owners."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from smc_operator.render import CONFIG_HASH_ANNOTATION, Owner, Rendered, RenderProblem, decamelize, render
from smc_operator.spec import parse_spec
from smc_runtime.config import parse_config

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "manifests" / "samples" / "market-data-processor.yaml"
OWNER = Owner(name="market-data-processor", namespace="trading", uid="1234-abcd")


def sample_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())["spec"]
    return spec


def rendered(spec: dict[str, Any], replicas: int | None = 1) -> Rendered:
    out = render(OWNER, parse_spec(spec), replicas=replicas)
    assert isinstance(out, Rendered), out
    return out


def container(r: Rendered) -> dict[str, Any]:
    containers: list[dict[str, Any]] = r.workload["spec"]["template"]["spec"]["containers"]
    return containers[0]


def test_configmap_round_trips_through_the_runtime_model() -> None:
    r = rendered(sample_spec())
    text = r.config_map["data"]["streams-config.yaml"]
    parsed = parse_config(yaml.safe_load(text), env={})
    assert parsed == r.config
    proc = parsed.stream_processors["market_data_processor"]
    spec = sample_spec()["processor"]
    assert proc.consumer_group == spec["consumerGroup"]
    assert proc.input_topics == spec["inputTopics"]
    assert proc.detection.swing_length == spec["detection"]["swingLength"]
    assert proc.output_topics.dead_letters == spec["outputTopics"]["deadLetters"]
    assert parsed.kafka.bootstrap_servers == sample_spec()["kafka"]["bootstrapServers"]


def test_detection_change_changes_the_hash_replica_change_does_not() -> None:
    base = rendered(sample_spec())
    changed_spec = copy.deepcopy(sample_spec())
    changed_spec["processor"]["detection"]["swingLength"] = 7
    changed = rendered(changed_spec)
    more_replicas = copy.deepcopy(sample_spec())
    more_replicas["replicas"] = 4
    scaled = rendered(more_replicas, replicas=4)
    template_hash = base.workload["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    assert template_hash == base.config_hash
    assert changed.config_hash != base.config_hash
    assert scaled.config_hash == base.config_hash
    assert scaled.workload["spec"]["template"] == base.workload["spec"]["template"]
    assert scaled.workload["spec"]["replicas"] == 4


def test_autoscaled_workload_leaves_replicas_out() -> None:
    r = rendered(sample_spec(), replicas=None)
    assert "replicas" not in r.workload["spec"]


def test_every_child_is_owned_by_the_cr() -> None:
    r = rendered(sample_spec())
    for obj in (r.config_map, r.workload, r.service):
        refs = obj["metadata"]["ownerReferences"]
        assert refs == [
            {
                "apiVersion": "smc-trading.io/v1alpha1",
                "kind": "StreamProcessor",
                "name": OWNER.name,
                "uid": OWNER.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert obj["metadata"]["namespace"] == OWNER.namespace


def test_pod_is_non_root_read_only_with_probes_and_stable_processor_id() -> None:
    r = rendered(sample_spec())
    pod = r.workload["spec"]["template"]["spec"]
    c = container(r)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    env = {e["name"]: e for e in c["env"]}
    assert env["PROCESSOR_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert r.workload["kind"] == "StatefulSet"
    assert r.workload["spec"]["serviceName"] == r.service["metadata"]["name"]
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    assert r.workload["spec"]["selector"]["matchLabels"].items() <= (
        r.workload["spec"]["template"]["metadata"]["labels"].items()
    )


def test_sasl_and_ca_come_from_mounted_secrets() -> None:
    spec = sample_spec()
    spec["kafka"]["security"] = {
        "protocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "secretName": "kafka-user"},
        "caSecret": {"name": "kafka-ca", "key": "ca.crt"},
    }
    r = rendered(spec)
    sec = r.config.kafka.security
    assert sec.protocol == "SASL_SSL" and sec.sasl_mechanism == "SCRAM-SHA-512"
    mounts = {m["name"]: m["mountPath"] for m in container(r)["volumeMounts"]}
    volumes = {v["name"]: v for v in r.workload["spec"]["template"]["spec"]["volumes"]}
    assert sec.sasl_password_file == f"{mounts['kafka-sasl']}/password"
    assert sec.ssl_ca_file == f"{mounts['kafka-ca']}/ca.crt"
    assert volumes["kafka-sasl"]["secret"]["secretName"] == "kafka-user"


def test_invalid_processor_settings_are_a_value_with_field_paths() -> None:
    spec = sample_spec()
    spec["processor"]["batchSize"] = 0
    out = render(OWNER, parse_spec(spec), replicas=1)
    assert isinstance(out, RenderProblem)
    assert [path for path, _ in out.problems] == ["stream_processors.market_data_processor.batch_size"]
    overlap = sample_spec()
    overlap["processor"]["inputTopics"] = ["smc.alerts"]
    out = render(OWNER, parse_spec(overlap), replicas=1)
    assert isinstance(out, RenderProblem) and "input and output" in out.message()


def test_decamelize_follows_the_model_and_keeps_unknown_keys() -> None:
    from smc_runtime.config import ProcessorSettings

    tree = decamelize(
        {"consumerGroup": "g", "enrichment": {"trades": {"smaWindows": [3]}}, "bogusKey": 1},
        ProcessorSettings,
    )
    assert tree == {"consumer_group": "g", "enrichment": {"trades": {"sma_windows": [3]}}, "bogusKey": 1}


def test_plugin_and_client_setting_keys_are_data_not_field_names() -> None:
    spec = sample_spec()
    spec["processor"]["plugins"] = {"enrichers": {"my_plugin": {"window_size": 3}}}
    spec["processor"]["kafkaClients"] = {"producer": {"linger.ms": 7}}
    r = rendered(spec)
    proc = r.config.stream_processors["market_data_processor"]
    assert proc.plugins.enrichers == {"my_plugin": {"window_size": 3}}
    assert proc.kafka_clients.producer == {"linger.ms": 7}
