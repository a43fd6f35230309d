"""Generate the ``StreamProcessor`` CRD from the pydantic models (``python -m smc_operator.crd``).

Why generated: the CR's ``spec.processor`` *is* the runtime's ``ProcessorSettings`` (camelCase on the
wire), and ``spec`` otherwise mirrors ``spec.py``. Converting the models' JSON schema into a structural
OpenAPI v3 schema means one definition per concept; a unit test fails when the committed
``crds/streamprocessors.smc-trading.io.yaml`` differs from what this module generates.
Cross-field rules the JSON schema cannot express are added here as CEL ``x-kubernetes-validations``;
the JSON schema -> structural schema conversion itself is ``schema.py``.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from smc_operator.schema import model_schema, snake_to_camel
from smc_operator.spec import RESERVED_ENV, StreamProcessorSpec
from smc_runtime.config import ProcessorSettings

GROUP = "smc-trading.io"
VERSION = "v1alpha1"
KIND = "StreamProcessor"
PLURAL = "streamprocessors"
SINGULAR = "streamprocessor"
CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_FILE = f"{CRD_NAME}.yaml"

_MAX_CR_NAME = 52  # StatefulSet pods add "-<ordinal>" and a controller-revision-hash label (<= 63)


def _rule(
    rule: str, message: str, reason: str | None = None, field_path: str | None = None
) -> dict[str, str]:
    out = {"rule": rule, "message": message}
    if reason:
        out["reason"] = reason
    if field_path:
        out["fieldPath"] = field_path
    return out


def processor_schema() -> dict[str, Any]:
    """``spec.processor``: the runtime's ProcessorSettings, plus the cross-field checks it does in Python."""
    schema = model_schema(ProcessorSettings)
    schema["description"] = (
        "The runtime's processor settings (streams-config.yaml stream_processors.<name>), camelCase."
    )
    topics = schema["properties"]["inputTopics"]
    topics["x-kubernetes-list-type"] = "set"
    topics["items"]["x-kubernetes-validations"] = [
        _rule("self != '.' && self != '..'", "'.' and '..' are not valid Kafka topic names")
    ]
    outputs = [
        snake_to_camel(role) for role in ProcessorSettings.model_fields["output_topics"].default.by_role()
    ]
    listed = ", ".join(f"self.outputTopics.{role}" for role in outputs)
    schema["x-kubernetes-validations"] = [
        _rule(
            f"!has(self.outputTopics) || self.inputTopics.all(t, !(t in [{listed}]))",
            "inputTopics must not also be used as outputTopics",
            field_path=".inputTopics",
        )
    ]
    return schema


def spec_schema() -> dict[str, Any]:
    schema = model_schema(StreamProcessorSpec)
    schema["properties"]["processor"] = processor_schema()
    schema["required"] = sorted(set(schema.get("required", [])) | {"kafka", "processor"})
    schema["x-kubernetes-validations"] = [
        _rule(
            "self.ports.metrics != self.ports.health",
            "ports.metrics and ports.health must differ",
            field_path=".ports",
        ),
    ]
    auto = schema["properties"]["autoscaling"]
    auto["x-kubernetes-validations"] = [
        _rule(
            "self.minReplicas <= self.maxReplicas",
            "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
        ),
    ]
    security = schema["properties"]["kafka"]["properties"]["security"]
    security["x-kubernetes-validations"] = [
        _rule(
            "!(self.protocol in ['SASL_PLAINTEXT', 'SASL_SSL']) || has(self.sasl)",
            "kafka.security.sasl (mechanism and secretName) is required with a SASL protocol",
        ),
        _rule(
            "!has(self.sasl) || self.protocol in ['SASL_PLAINTEXT', 'SASL_SSL']",
            "kafka.security.sasl needs protocol SASL_PLAINTEXT or SASL_SSL",
        ),
        _rule(
            "!(has(self.sasl) && self.sasl.mechanism == 'PLAIN' && self.protocol == 'SASL_PLAINTEXT')"
            " || (has(self.allowPlaintextCredentials) && self.allowPlaintextCredentials)",
            "SASL PLAIN over SASL_PLAINTEXT sends the password unencrypted: use SASL_SSL, a SCRAM "
            "mechanism, or set allowPlaintextCredentials: true",
        ),
    ]
    _template_rules(schema["properties"]["template"])
    return schema


def _template_rules(template: dict[str, Any]) -> None:
    """``spec.template``: no override of the operator's env; an env var has a value or a source."""
    env = template["properties"]["container"]["properties"]["env"]
    reserved = ", ".join(f"'{name}'" for name in RESERVED_ENV)
    env["x-kubernetes-validations"] = [
        _rule(
            f"self.all(e, !(e.name in [{reserved}]))",
            f"spec.template.container.env must not set {', '.join(RESERVED_ENV)} (set by the operator)",
        )
    ]
    env["items"]["x-kubernetes-validations"] = [
        _rule("!(has(self.value) && has(self.valueFrom))", "an env var has either value or valueFrom")
    ]


def _condition_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string", "maxLength": 64},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string", "maxLength": 128},
            "message": {"type": "string", "maxLength": 4096},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer"},
        },
    }


def status_schema() -> dict[str, Any]:
    """What ``status.py`` writes; declared so the API server prunes nothing."""
    integer = {"type": "integer"}
    text = {"type": "string", "maxLength": 4096}
    return {
        "type": "object",
        "properties": {
            "observedGeneration": integer,
            "phase": {"type": "string", "enum": ["Pending", "Deploying", "Running", "Scaling", "Degraded"]},
            "conditions": {
                "type": "array",
                "maxItems": 16,
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "replicas": integer,
            "readyReplicas": integer,
            "desiredReplicas": integer,
            "selector": text,
            "configHash": text,
            "processorId": text,
            "consumerLag": {
                "type": "object",
                "properties": {
                    "total": integer,
                    "partitions": integer,
                    "observedTime": {"type": "string", "format": "date-time"},
                    "perTopic": {"type": "object", "additionalProperties": integer},
                },
            },
            "lastScaleTime": {"type": "string", "format": "date-time"},
            "lastScaleReason": text,
            "autoscaler": _autoscaler_status_schema(integer, text),
        },
    }


def _autoscaler_status_schema(integer: dict[str, Any], text: dict[str, Any]) -> dict[str, Any]:
    """``status.autoscaler`` (shares the integer/text nodes with the caller, as the committed YAML does)."""
    sample = {"time": {"type": "number"}, "logEnd": integer, "committed": integer, "replicas": integer}
    return {
        "type": "object",
        "description": "Scaler memory kept in status so a restarted operator resumes the "
        "stabilization window and the rate estimate.",
        "properties": {
            "recommendations": {
                "type": "array",
                "maxItems": 4096,
                "items": {
                    "type": "object",
                    "properties": {"time": {"type": "number"}, "replicas": integer},
                },
            },
            "lastSample": {"type": "object", "properties": dict(sample)},
            "samples": {
                "type": "array",
                "maxItems": 4096,
                "items": {"type": "object", "properties": {**sample, "settled": {"type": "boolean"}}},
            },
            "scaleEvents": {
                "type": "array",
                "maxItems": 4096,
                "items": {"type": "object", "properties": {"time": {"type": "number"}, "delta": integer}},
            },
            "rescaledAt": {"type": "number"},
            "readySince": {"type": "number"},
            "heldBy": {"type": "string", "maxLength": 32},
            "produceRate": {"type": "number"},
            "perReplicaRate": {"type": "number"},
            "recommendedReplicas": integer,
            "decision": text,
        },
    }


def _root_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A Kafka stream processor (enrichment and SMC detection) run by smc-operator.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        "x-kubernetes-validations": [
            _rule(
                f"self.metadata.name.size() <= {_MAX_CR_NAME} && "
                "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
                f"metadata.name must be a DNS label of at most {_MAX_CR_NAME} characters "
                "(it names the StatefulSet and its pods)",
            )
        ],
    }


def build_crd() -> dict[str, Any]:
    columns = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Mode", "type": "string", "jsonPath": ".spec.processor.processingMode"},
        {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Lag", "type": "integer", "jsonPath": ".status.consumerLag.total"},
        {"name": "Paused", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Paused")].status'},
        {"name": "Autoscaling", "type": "string", "jsonPath": ".spec.autoscaling.mode", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/part-of": "smc-stream"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": ["sp"],
                "categories": ["smc"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": _root_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


HEADER = "# Generated by `python -m smc_operator.crd` from the pydantic models; do not edit by hand.\n"


def render_crd_yaml() -> str:
    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def main() -> int:
    sys.stdout.write(render_crd_yaml())
    return 0


if __name__ == "__main__":
    sys.exit(main())
