"""The operator's own part of the ``StreamProcessor`` spec, as pydantic models.

Why pydantic here: the CRD's OpenAPI schema is *generated* from these models plus the runtime's
``ProcessorSettings`` (see ``crd.py``), so the CRD, the operator and the runtime cannot drift apart.
Field names are camelCase on the wire (Kubernetes convention) and snake_case in Python.

``spec.processor`` is the runtime's ``ProcessorSettings`` with camelCase keys; it is kept as a raw
mapping here and validated by the runtime's own model when the ConfigMap is rendered.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei|e[0-9]+)?$"
BOOTSTRAP_SERVERS = r"^[^,:\s]+:[0-9]{1,5}(,[^,:\s]+:[0-9]{1,5})*$"
PROCESSOR_NAME = r"^[a-zA-Z0-9_-]{1,63}$"
DEFAULT_IMAGE = "ghcr.io/smc-stream/smc-runtime:0.1.0"
# Set by the operator on the runtime container; spec.template.container.env may not override them.
RESERVED_ENV = (
    "PROCESSOR_ID",
    "POD_NAMESPACE",
    "STREAMS_CONFIG",
    "LOG_LEVEL",
    "METRICS_PORT",
    "HEALTH_CHECK_PORT",
)


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class SecretKeySelector(_Spec):
    """A key of a Secret in the CR's namespace (credentials never live in the CR itself)."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    key: str = Field(pattern=SECRET_KEY, max_length=253)


class SaslSpec(_Spec):
    """SASL credentials: a Secret holding a username and a password key."""

    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    secret_name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    username_key: str = Field("username", pattern=SECRET_KEY, max_length=253)
    password_key: str = Field("password", pattern=SECRET_KEY, max_length=253)


class KafkaSecuritySpec(_Spec):
    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl: SaslSpec | None = None
    ca_secret: SecretKeySelector | None = None
    allow_plaintext_credentials: bool = Field(
        False,
        description="Allow SASL PLAIN over SASL_PLAINTEXT, i.e. the password unencrypted on the wire "
        "(refused unless set).",
    )

    def insecure_credentials(self) -> str | None:
        """Why these settings would send a clear-text password, unless explicitly allowed."""
        plain = self.sasl is not None and self.sasl.mechanism == "PLAIN"
        if plain and self.protocol == "SASL_PLAINTEXT" and not self.allow_plaintext_credentials:
            return (
                "SASL PLAIN over SASL_PLAINTEXT sends the password unencrypted: use SASL_SSL, a SCRAM "
                "mechanism, or set kafka.security.allowPlaintextCredentials"
            )
        return None


class KafkaSpec(_Spec):
    bootstrap_servers: str = Field(pattern=BOOTSTRAP_SERVERS, max_length=2048)
    security: KafkaSecuritySpec = KafkaSecuritySpec()
    static_membership: bool = Field(
        False,
        description="Static group membership (group.instance.id from the pod name): a restarted pod takes "
        "its partitions straight back; a stopped one holds them until the session times out.",
    )


class PortsSpec(_Spec):
    metrics: int = Field(8080, ge=1024, le=65535)
    health: int = Field(8081, ge=1024, le=65535)


class ResourceList(_Spec):
    """Quantities as strings (``500m``, ``512Mi``), as Kubernetes writes them."""

    cpu: str | None = Field(None, pattern=QUANTITY, max_length=64)
    memory: str | None = Field(None, pattern=QUANTITY, max_length=64)

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("cpu", self.cpu), ("memory", self.memory)) if v is not None}


class ResourcesSpec(_Spec):
    requests: ResourceList = ResourceList(cpu="100m", memory="256Mi")
    limits: ResourceList = ResourceList(memory="1Gi")


class ScalingPolicy(_Spec):
    """At most ``value`` pods (``Pods``) or ``value`` percent (``Percent``) per ``periodSeconds``
    (the HPA's ``HPAScalingPolicy``)."""

    type: Literal["Pods", "Percent"]
    value: int = Field(ge=1, le=10_000)
    period_seconds: int = Field(ge=1, le=1800)


class ScalingRules(_Spec):
    """One direction of ``autoscaling.behavior`` (the HPA's ``HPAScalingRules``).

    Unset fields take the HPA's defaults: scale-up 0 s window, ``max(4 pods, 100%)`` per 15 s; scale-down
    ``scaleDownStabilizationSeconds`` window, 100% per 15 s.
    """

    stabilization_window_seconds: int | None = Field(None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: list[ScalingPolicy] | None = Field(None, min_length=1, max_length=10)


class ScalingBehavior(_Spec):
    scale_up: ScalingRules = ScalingRules()
    scale_down: ScalingRules = ScalingRules()


class ObjectMetadataSpec(_Spec):
    """Extra labels and annotations (the operator's own labels and selector win on a clash)."""

    labels: dict[str, str] = Field(default_factory=dict, max_length=64)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=64)


class LocalObjectReference(_Spec):
    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)


class Toleration(_Spec):
    key: str | None = Field(None, max_length=317)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0)


class TopologySpreadConstraint(_Spec):
    """When no ``labelSelector`` is given, the processor's own pod selector is used."""

    max_skew: int = Field(1, ge=1, le=1000)
    topology_key: str = Field(max_length=317)
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"] = "DoNotSchedule"
    label_selector: dict[str, Any] | None = None
    min_domains: int | None = Field(None, ge=1)


class EnvVar(_Spec):
    """A container environment variable (``value`` or a ``valueFrom`` source, as in a pod spec)."""

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=253)
    value: str | None = Field(None, max_length=32768)
    value_from: dict[str, Any] | None = None


class PodTemplateSpec(_Spec):
    """Pod overrides (Strimzi's ``spec.template.pod`` shape); the API server validates the free-form parts
    (affinity, securityContext) when the StatefulSet is applied."""

    metadata: ObjectMetadataSpec = ObjectMetadataSpec()
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=64)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)
    affinity: dict[str, Any] | None = None
    topology_spread_constraints: list[TopologySpreadConstraint] = Field(default_factory=list, max_length=16)
    priority_class_name: str | None = Field(None, pattern=DNS_SUBDOMAIN, max_length=253)
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list, max_length=16)
    security_context: dict[str, Any] | None = Field(
        None, description="Merged over the default (non-root uid 10001, RuntimeDefault seccomp)."
    )
    termination_grace_period_seconds: int | None = Field(None, ge=0, le=86400)


class ContainerTemplateSpec(_Spec):
    """Runtime container overrides (Strimzi's ``spec.template.<container>`` shape)."""

    env: list[EnvVar] = Field(default_factory=list, max_length=128)
    resources: ResourcesSpec | None = Field(None, description="Replaces spec.resources when set.")
    security_context: dict[str, Any] | None = Field(
        None, description="Merged over the default (read-only root, no privilege escalation, no caps)."
    )


class PodDisruptionBudgetSpec(_Spec):
    """A PodDisruptionBudget over the processor's pods; ``enabled: false`` deletes it."""

    enabled: bool = True
    max_unavailable: int = Field(1, ge=0, le=1000)
    metadata: ObjectMetadataSpec = ObjectMetadataSpec()


class TemplateSpec(_Spec):
    """``spec.template``: how the children look, beyond what the processor needs."""

    pod: PodTemplateSpec = PodTemplateSpec()
    container: ContainerTemplateSpec = ContainerTemplateSpec()
    pod_disruption_budget: PodDisruptionBudgetSpec = PodDisruptionBudgetSpec()


class AutoscalingSpec(_Spec):
    """Lag-driven replica count (see ``scaling.py`` and docs/operator.md for the formulas)."""

    enabled: bool = False
    mode: Literal["threshold", "rate"] = "threshold"
    min_replicas: int = Field(1, ge=0, le=1000)
    max_replicas: int = Field(10, ge=1, le=1000)
    lag_threshold: int = Field(1000, ge=1, le=1_000_000_000)
    activation_lag_threshold: int = Field(0, ge=0, le=1_000_000_000)
    tolerance: float = Field(0.1, ge=0, le=1)
    scale_down_stabilization_seconds: int = Field(300, ge=0, le=3600)
    poll_interval_seconds: float = Field(15, ge=0.5, le=3600)
    target_catch_up_seconds: int = Field(60, ge=1, le=86400)
    behavior: ScalingBehavior = ScalingBehavior()
    rate_window_seconds: int = Field(60, ge=1, le=3600)
    rescale_settle_seconds: int = Field(30, ge=0, le=3600)
    hold_on_open_breaker: bool = True


class StreamProcessorSpec(_Spec):
    """``StreamProcessor.spec``: what to run (image, processor settings) and how (replicas, scaling)."""

    image: str = Field(DEFAULT_IMAGE, min_length=1, max_length=512)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    replicas: int = Field(1, ge=0, le=1000)
    processor_name: str | None = Field(None, pattern=PROCESSOR_NAME)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    ports: PortsSpec = PortsSpec()
    resources: ResourcesSpec = ResourcesSpec()
    kafka: KafkaSpec
    processor: dict[str, Any]
    autoscaling: AutoscalingSpec = AutoscalingSpec()
    template: TemplateSpec = TemplateSpec()
    restart_nonce: str | None = Field(
        None, max_length=253, description="Change it to roll the pods without a config change."
    )

    def processor_key(self, cr_name: str) -> str:
        """Name of the processor inside ``stream_processors`` (the CR name unless overridden)."""
        return self.processor_name or cr_name


def parse_spec(raw: dict[str, Any]) -> StreamProcessorSpec:
    """Parse a CR spec (already validated and defaulted by the API server)."""
    return StreamProcessorSpec.model_validate(raw)
