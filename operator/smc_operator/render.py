"""Spec -> child objects (ConfigMap, StatefulSet, headless Service, PodDisruptionBudget), pure.

The ConfigMap holds the runtime's ``streams-config.yaml``, produced by the runtime's own model
(``smc_runtime.config.parse_config`` then ``to_yaml``), so whatever the operator writes is exactly what
the runtime accepts. The pod template carries a hash of that file: pods roll when the rendered config
changes and only then (a replica-count change leaves the template, and so the pods, alone), or when
``spec.restartNonce`` changes. ``spec.template`` adds pod and container settings (placement, extra
labels/env, security context merged over the hardened defaults); the operator's own labels, selector and
environment always win, so a template can never detach pods from their StatefulSet or Service.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, get_args, get_origin

import jinja2
import yaml
from pydantic import BaseModel

from smc_operator.crd import GROUP, KIND, VERSION
from smc_operator.schema import snake_to_camel
from smc_operator.spec import StreamProcessorSpec
from smc_runtime.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    ProcessorSettings,
    StreamsConfig,
    parse_config,
)

TEMPLATES_ENV = "SMC_OPERATOR_TEMPLATES"
CONFIG_HASH_ANNOTATION = "smc-trading.io/config-hash"
RESTART_NONCE_ANNOTATION = "smc-trading.io/restart-nonce"
POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
DEFAULT_GRACE_SECONDS = 30
CONFIG_KEY = "streams-config.yaml"
SASL_DIR = "/etc/smc/kafka-sasl"
CA_DIR = "/etc/smc/kafka-ca"


@dataclass(frozen=True, slots=True)
class Owner:
    """The StreamProcessor the children belong to."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True, slots=True)
class ChildNames:
    config_map: str
    workload: str
    service: str
    pdb: str

    @classmethod
    def of(cls, cr_name: str) -> ChildNames:
        return cls(config_map=f"{cr_name}-config", workload=cr_name, service=cr_name, pdb=cr_name)


@dataclass(frozen=True, slots=True)
class Rendered:
    config: StreamsConfig
    config_yaml: str
    config_hash: str
    config_map: dict[str, Any]
    workload: dict[str, Any]
    service: dict[str, Any]
    selector: dict[str, str]
    pdb: dict[str, Any] | None  # None: spec.template.podDisruptionBudget.enabled is false

    def children(self) -> list[dict[str, Any]]:
        """In apply order: the pods' config and Service before the pods, the budget last."""
        kids = [self.config_map, self.service, self.workload]
        return kids + ([self.pdb] if self.pdb is not None else [])

    def selector_string(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.selector.items()))


@dataclass(frozen=True, slots=True)
class RenderProblem:
    """The spec cannot become a valid runtime config: ``problems`` as (field path, reason)."""

    problems: list[tuple[str, str]]

    def message(self) -> str:
        return "; ".join(f"{path}: {reason}" for path, reason in self.problems)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``Model`` or ``Model | None``, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def decamelize(tree: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """CR camelCase keys -> the runtime's snake_case field names, walking the model (data keys untouched).

    Keys the model does not know are kept as-is, so the runtime model rejects them with its message.
    """
    by_camel = {snake_to_camel(name): (name, field) for name, field in model.model_fields.items()}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if key not in by_camel:
            out[key] = value
            continue
        name, field = by_camel[key]
        sub = _model_of(field.annotation)
        out[name] = decamelize(value, sub) if sub is not None and isinstance(value, dict) else value
    return out


def _security_tree(spec: StreamProcessorSpec) -> dict[str, Any]:
    sec = spec.kafka.security
    tree: dict[str, Any] = {"protocol": sec.protocol}
    if sec.sasl is not None:
        tree["sasl_mechanism"] = sec.sasl.mechanism
        tree["sasl_username_file"] = f"{SASL_DIR}/{sec.sasl.username_key}"
        tree["sasl_password_file"] = f"{SASL_DIR}/{sec.sasl.password_key}"
    if sec.ca_secret is not None:
        tree["ssl_ca_file"] = f"{CA_DIR}/{sec.ca_secret.key}"
    return tree


def streams_config_tree(cr_name: str, spec: StreamProcessorSpec) -> dict[str, Any]:
    """The raw ``streams-config.yaml`` tree (before the runtime model validates it)."""
    return {
        "kafka": {
            "bootstrap_servers": spec.kafka.bootstrap_servers,
            "security": _security_tree(spec),
            "static_membership": spec.kafka.static_membership,
        },
        "processor_id": f"{cr_name}-0",
        "stream_processors": {spec.processor_key(cr_name): decamelize(spec.processor, ProcessorSettings)},
        "monitoring": {
            "metrics_port": spec.ports.metrics,
            "health_check_port": spec.ports.health,
            "log_level": spec.log_level,
        },
    }


def build_config(cr_name: str, spec: StreamProcessorSpec) -> StreamsConfig | RenderProblem:
    try:
        return parse_config(streams_config_tree(cr_name, spec), env={})
    except ConfigError as exc:
        return RenderProblem(exc.problems)


def config_hash(config_yaml: str) -> str:
    return hashlib.sha256(config_yaml.encode("utf-8")).hexdigest()[:16]


def labels_for(cr_name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "smc-runtime",
        "app.kubernetes.io/instance": cr_name,
        "app.kubernetes.io/component": "stream-processor",
        "app.kubernetes.io/part-of": "smc-stream",
        "app.kubernetes.io/managed-by": "smc-operator",
    }


def selector_for(cr_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "smc-runtime", "app.kubernetes.io/instance": cr_name}


def owner_references(owner: Owner) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": owner.name,
            "uid": owner.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def templates_dir() -> Path:
    """``$SMC_OPERATOR_TEMPLATES`` (container image) or the repository's ``templates/``."""
    configured = os.environ.get(TEMPLATES_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "templates"


@lru_cache(maxsize=4)
def _environment(directory: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def _render(template: str, context: dict[str, Any]) -> dict[str, Any]:
    text = _environment(str(templates_dir())).get_template(template).render(**context)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def _secret_volumes(spec: StreamProcessorSpec) -> list[dict[str, Any]]:
    """Only the named keys are projected into the pod (``items``), never the whole Secret."""
    volumes: list[dict[str, Any]] = []
    sec = spec.kafka.security
    if sec.sasl is not None:
        keys = sorted({sec.sasl.username_key, sec.sasl.password_key})
        sasl = {"volume": "kafka-sasl", "secret_name": sec.sasl.secret_name, "mount_path": SASL_DIR}
        volumes.append({**sasl, "keys": keys})
    if sec.ca_secret is not None:
        volumes.append(
            {
                "volume": "kafka-ca",
                "secret_name": sec.ca_secret.name,
                "mount_path": CA_DIR,
                "keys": [sec.ca_secret.key],
            }
        )
    return volumes


def _dump(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True)
    return out


def pod_context(cr_name: str, spec: StreamProcessorSpec, config_hash_value: str) -> dict[str, Any]:
    """``spec.template`` merged with what the operator needs (its labels, selector and env win)."""
    pod, box = spec.template.pod, spec.template.container
    annotations = {
        **pod.metadata.annotations,
        CONFIG_HASH_ANNOTATION: config_hash_value,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(spec.ports.metrics),
    }
    if spec.restart_nonce is not None:
        annotations[RESTART_NONCE_ANNOTATION] = spec.restart_nonce
    spread = [_dump(c) for c in pod.topology_spread_constraints]
    for constraint in spread:
        constraint.setdefault("labelSelector", {"matchLabels": selector_for(cr_name)})
    optional: dict[str, Any] = {
        "nodeSelector": dict(pod.node_selector),
        "tolerations": [_dump(t) for t in pod.tolerations],
        "affinity": pod.affinity,
        "topologySpreadConstraints": spread,
        "priorityClassName": pod.priority_class_name,
        "imagePullSecrets": [_dump(r) for r in pod.image_pull_secrets],
    }
    resources = box.resources or spec.resources
    return {
        "pod_labels": {**pod.metadata.labels, **labels_for(cr_name)},
        "pod_annotations": annotations,
        "pod_optional": {k: v for k, v in optional.items() if v},
        "pod_security_context": {**POD_SECURITY_CONTEXT, **(pod.security_context or {})},
        "grace_seconds": (
            DEFAULT_GRACE_SECONDS
            if pod.termination_grace_period_seconds is None
            else pod.termination_grace_period_seconds
        ),
        "container_security_context": {**CONTAINER_SECURITY_CONTEXT, **(box.security_context or {})},
        "extra_env": [_dump(e) for e in box.env],
        "resources": {"requests": resources.requests.as_dict(), "limits": resources.limits.as_dict()},
    }


def referenced_secrets(spec: StreamProcessorSpec) -> list[tuple[str, list[str]]]:
    """Secrets (name, keys) the pods mount; the handler checks they exist before rolling pods."""
    sec = spec.kafka.security
    refs = []
    if sec.sasl is not None:
        refs.append((sec.sasl.secret_name, [sec.sasl.username_key, sec.sasl.password_key]))
    if sec.ca_secret is not None:
        refs.append((sec.ca_secret.name, [sec.ca_secret.key]))
    return refs


def render(owner: Owner, spec: StreamProcessorSpec, *, replicas: int | None) -> Rendered | RenderProblem:
    """All children of one CR. ``replicas=None`` leaves the field to the autoscaler."""
    config = build_config(owner.name, spec)
    if isinstance(config, RenderProblem):
        return config
    config_yaml = config.to_yaml()
    digest = config_hash(config_yaml)
    names = ChildNames.of(owner.name)
    context: dict[str, Any] = {
        "owner": owner,
        "names": names,
        "labels": labels_for(owner.name),
        "selector": selector_for(owner.name),
        "owner_references": owner_references(owner),
        "config_yaml": config_yaml,
        "config_hash": digest,
        "config_path": DEFAULT_CONFIG_PATH,
        "config_dir": str(Path(DEFAULT_CONFIG_PATH).parent),
        "replicas": replicas,
        "image": spec.image,
        "image_pull_policy": spec.image_pull_policy,
        "log_level": spec.log_level,
        "ports": spec.ports,
        "secret_volumes": _secret_volumes(spec),
        "pdb": spec.template.pod_disruption_budget,
        "pdb_labels": {**spec.template.pod_disruption_budget.metadata.labels, **labels_for(owner.name)},
        **pod_context(owner.name, spec, digest),
    }
    budget = spec.template.pod_disruption_budget
    return Rendered(
        config=config,
        config_yaml=config_yaml,
        config_hash=digest,
        config_map=_render("configmap.yaml.j2", context),
        workload=_render("statefulset.yaml.j2", context),
        service=_render("service.yaml.j2", context),
        selector=selector_for(owner.name),
        pdb=_render("poddisruptionbudget.yaml.j2", context) if budget.enabled else None,
    )
