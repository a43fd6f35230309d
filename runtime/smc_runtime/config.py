"""The one model of ``streams-config.yaml``: runtime, operator and CLI all parse it here.

Precedence: built-in defaults < YAML file < environment variables. Validation collects every
problem (field path and reason) so a bad file is fixed in one round trip, not one error at a time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from smc_runtime.analytics_config import AlertSettings as AlertSettings
from smc_runtime.analytics_config import DetectionSettings as DetectionSettings
from smc_runtime.analytics_config import EnrichmentSettings as EnrichmentSettings
from smc_runtime.analytics_config import InputBounds as InputBounds
from smc_runtime.analytics_config import KlineEnrichment as KlineEnrichment
from smc_runtime.analytics_config import OrderBookEnrichment as OrderBookEnrichment
from smc_runtime.analytics_config import StrictModel
from smc_runtime.analytics_config import TradeEnrichment as TradeEnrichment
from smc_runtime.client_settings import CLIENT_ROLES, check_client_settings, probe_client_settings
from smc_runtime.state_budget import CHANGELOG_RECORD_OVERHEAD as CHANGELOG_RECORD_OVERHEAD
from smc_runtime.state_budget import snapshot_size_problems
from smc_runtime.state_budget import worst_case_snapshot_bytes as worst_case_snapshot_bytes

DEFAULT_CONFIG_PATH = "/app/config/streams-config.yaml"
CONFIG_PATH_ENV = "STREAMS_CONFIG"

TOPIC_NAME_PATTERN = r"^[a-zA-Z0-9._-]{1,249}$"

TopicName = Annotated[str, Field(pattern=TOPIC_NAME_PATTERN)]


class ConfigError(Exception):
    """Invalid configuration; ``problems`` lists ``(field path, reason)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {path}: {reason}" for path, reason in problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")




class ProcessingMode(StrEnum):
    EXACTLY_ONCE = "exactly_once"
    AT_LEAST_ONCE = "at_least_once"


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSecurity(StrictModel):
    """Credentials are referenced by file path (mounted Secrets) or env, never written inline."""

    protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username_file: str | None = None
    sasl_password_file: str | None = None
    ssl_ca_file: str | None = None

    @model_validator(mode="after")
    def _sasl_needs_mechanism(self) -> KafkaSecurity:
        sasl = self.protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)
        if sasl and self.sasl_mechanism is None:
            raise ValueError("sasl_mechanism is required with a SASL protocol")
        return self


class KafkaSettings(StrictModel):
    bootstrap_servers: str = "localhost:9092"
    security: KafkaSecurity = KafkaSecurity()
    # Static group membership (group.instance.id = PROCESSOR_ID.<processor>): a restarted instance
    # takes its partitions straight back, but a stopped one keeps them until the session times out
    # (no LeaveGroup). Worth it with stable ids (StatefulSet); off by default so SIGTERM leaves at once.
    static_membership: bool = False

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _list_or_string(cls, value: Any) -> Any:
        """The seed's YAML lists the servers; librdkafka wants one comma-separated string: take both."""
        if isinstance(value, list | tuple):
            if not all(isinstance(item, str) for item in value):
                raise ValueError("a list of bootstrap servers must hold host:port strings")
            return ",".join(value)
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("at least one host:port is required")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)


class OutputTopics(StrictModel):
    enriched_trades: TopicName = "market_data.enriched.trades"
    orderbook_metrics: TopicName = "market_data.enriched.orderbook"
    kline_metrics: TopicName = "market_data.enriched.klines"
    smc_signals: TopicName = "smc.signals"
    alerts: TopicName = "smc.alerts"
    dead_letters: TopicName = "market_data.dead_letters"

    def by_role(self) -> dict[str, str]:
        return dict(self.model_dump())


PLUGIN_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
_PLUGIN_NAME_RE = re.compile(PLUGIN_NAME_PATTERN)


class PluginSettings(StrictModel):
    """Plugins enabled for a processor: entry-point name -> parameters, per group (see docs/plugins.md).

    Groups are the entry-point groups ``smc_stream.enrichers|detectors|alert_rules``; plugins run
    after the built-ins, in the order listed. A plugin that raises is isolated: the message is
    dead-lettered; after ``max_consecutive_failures`` failures in a row the plugin is disabled with
    an alert (``on_failure: disable``) or the processor stops (``on_failure: stop``)."""

    enrichers: dict[str, dict[str, Any]] = {}
    detectors: dict[str, dict[str, Any]] = {}
    alert_rules: dict[str, dict[str, Any]] = {}
    on_failure: Literal["disable", "stop"] = "disable"
    max_consecutive_failures: int = Field(5, ge=1, le=1_000_000)

    @field_validator("enrichers", "detectors", "alert_rules", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            bad = [str(name) for name in value if not _PLUGIN_NAME_RE.fullmatch(str(name))]
            if bad:
                raise ValueError(f"plugin names must match {PLUGIN_NAME_PATTERN}: {bad}")
            return {name: {} if params is None else params for name, params in value.items()}
        return value

    def is_empty(self) -> bool:
        return not (self.enrichers or self.detectors or self.alert_rules)


class KafkaClientSettings(StrictModel):
    """librdkafka tunables per client role; keys the runtime owns are rejected with the reason.

    See ``smc_runtime.client_settings`` for the allow-lists and docs/plugins.md for tuning advice."""

    consumer: dict[str, Any] = {}
    producer: dict[str, Any] = {}
    admin: dict[str, Any] = {}

    @field_validator("consumer", "producer", "admin")
    @classmethod
    def _allowed_keys(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        problems = check_client_settings(info.field_name, value)  # type: ignore[arg-type]
        if problems:
            raise ValueError("; ".join(f"{key!r}: {reason}" for key, reason in problems))
        return value


class TopicCreation(StrictModel):
    """Output, dead-letter and changelog topics missing at start: created (like Kafka Streams' internal
    topics) or reported. ``partitions`` None: the widest input topic's count; replication -1: the
    broker's default."""

    create_missing: bool = True
    partitions: int | None = Field(None, ge=1, le=10_000)
    replication_factor: int = Field(-1, ge=-1, le=32)


class ProcessorSettings(StrictModel):
    consumer_group: str = Field(min_length=1, max_length=249)
    processing_mode: ProcessingMode = ProcessingMode.EXACTLY_ONCE
    batch_size: int = Field(10_000, ge=1, le=1_000_000)
    commit_interval_ms: int = Field(100, ge=1, le=600_000)
    # Exactly-once: run a commit's broker calls on a committer thread while the loop processes the next
    # records (their outputs wait until the commit returns). Off by default: on a broker next to the
    # loop it measured no gain (docs/runtime.md); meant for brokers a network round trip away.
    commit_overlap: bool = False
    # State snapshots go to the changelog in the first commit at least this long after the previous
    # snapshot (0: in every commit); recovery replays the input from the snapshot up to the committed
    # offset with outputs suppressed. Also on shutdown and for revoked partitions.
    snapshot_interval_ms: int = Field(1000, ge=0, le=3_600_000)
    max_poll_records: int = Field(500, ge=1, le=100_000)
    input_topics: list[TopicName] = Field(min_length=1)
    output_topics: OutputTopics = OutputTopics()
    changelog_topic: TopicName | None = None
    enrichment: EnrichmentSettings = EnrichmentSettings()
    detection: DetectionSettings = DetectionSettings()
    alerts: AlertSettings = AlertSettings()
    plugins: PluginSettings = PluginSettings()
    kafka_clients: KafkaClientSettings = KafkaClientSettings()
    # The largest record this processor may produce (dead letters are cut to fit, and the worst-case
    # state snapshot of a key must fit a changelog record). The runtime sets the producer's
    # message.max.bytes to it unless kafka_clients.producer sets that; topics (and the broker's
    # message.max.bytes, default 1048588) must accept records this large. Default = the producer's.
    max_record_bytes: int = Field(1_000_000, ge=65_536, le=100 * 1_048_576)
    # State keys per source partition (symbols x {trade, book, intervals}); a record that would create
    # one more is dead-lettered (`state_key_limit`), and the record that fills the last free slot
    # raises a `state_key_limit` alert. Bounds restore time and memory against random-symbol floods.
    max_state_keys_per_partition: int = Field(10_000, ge=1, le=10_000_000)
    topics: TopicCreation = TopicCreation()

    @model_validator(mode="after")
    def _state_fits_a_changelog_record(self) -> ProcessorSettings:
        problems = snapshot_size_problems(self)
        if problems:
            raise ValueError("worst-case state snapshot does not fit max_record_bytes "
                             f"{self.max_record_bytes}: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _outputs_are_not_inputs(self) -> ProcessorSettings:
        clash = set(self.input_topics) & set(self.output_topics.by_role().values())
        if clash:
            raise ValueError(f"topics used as both input and output: {sorted(clash)}")
        return self

    @model_validator(mode="after")
    def _librdkafka_accepts_client_settings(self) -> ProcessorSettings:
        eos = self.processing_mode is ProcessingMode.EXACTLY_ONCE
        problems = [reason for role in CLIENT_ROLES
                    for _, reason in probe_client_settings(role, getattr(self.kafka_clients, role),
                                                           exactly_once=eos)]
        if problems:
            raise ValueError("kafka_clients: " + "; ".join(problems))
        return self

    def changelog_topic_name(self) -> str:
        return self.changelog_topic or f"{self.consumer_group}.changelog"


# Framing of one changelog record beyond the snapshot itself: the key (source topic <= 249 chars,
# partition, state key) plus the headers and the record overhead, with a wide margin.
class MonitoringSettings(StrictModel):
    metrics_port: int = Field(8080, ge=1, le=65535)
    health_check_port: int = Field(8081, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


class StreamsConfig(StrictModel):
    """Root of ``streams-config.yaml``."""

    kafka: KafkaSettings = KafkaSettings()
    processor_id: str = Field("smc-runtime-0", pattern=r"^[a-zA-Z0-9._-]{1,200}$")
    stream_processors: dict[str, ProcessorSettings] = Field(min_length=1)
    monitoring: MonitoringSettings = MonitoringSettings()

    @field_validator("stream_processors")
    @classmethod
    def _names(cls, value: dict[str, ProcessorSettings]) -> dict[str, ProcessorSettings]:
        for name in value:
            if not re.fullmatch(r"[a-zA-Z0-9_-]{1,63}", name):
                raise ValueError(f"processor name {name!r} must match [a-zA-Z0-9_-]{{1,63}}")
        groups = [p.consumer_group for p in value.values()]
        if len(groups) != len(set(groups)):
            raise ValueError("each processor needs its own consumer_group")
        return value

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# Environment variables and where they land. Processor-level ones apply to every processor.
_ENV_ROOT: dict[str, tuple[str, ...]] = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers"),
    "KAFKA_SECURITY_PROTOCOL": ("kafka", "security", "protocol"),
    "KAFKA_SASL_MECHANISM": ("kafka", "security", "sasl_mechanism"),
    "KAFKA_SASL_USERNAME_FILE": ("kafka", "security", "sasl_username_file"),
    "KAFKA_SASL_PASSWORD_FILE": ("kafka", "security", "sasl_password_file"),
    "KAFKA_SSL_CA_FILE": ("kafka", "security", "ssl_ca_file"),
    "PROCESSOR_ID": ("processor_id",),
    "METRICS_PORT": ("monitoring", "metrics_port"),
    "HEALTH_CHECK_PORT": ("monitoring", "health_check_port"),
    "LOG_LEVEL": ("monitoring", "log_level"),
}
_ENV_PROCESSOR: dict[str, str] = {
    "BATCH_SIZE": "batch_size",
    "COMMIT_INTERVAL_MS": "commit_interval_ms",
    "COMMIT_OVERLAP": "commit_overlap",
    "SNAPSHOT_INTERVAL_MS": "snapshot_interval_ms",
    "MAX_POLL_RECORDS": "max_poll_records",
    "PROCESSING_MODE": "processing_mode",
}
# Processor-level sections given as one YAML/JSON mapping (e.g. `make demo DEMO_PLUGINS=1`).
_ENV_PROCESSOR_SECTIONS: dict[str, str] = {"SMC_PLUGINS": "plugins"}

# Every variable that overrides the file; tests that want the file alone strip these.
ENV_OVERRIDE_VARIABLES: frozenset[str] = frozenset(_ENV_ROOT) | frozenset(_ENV_PROCESSOR) | frozenset(
    _ENV_PROCESSOR_SECTIONS
)


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Return a copy of the raw YAML tree with environment overrides applied."""
    tree: dict[str, Any] = yaml.safe_load(yaml.safe_dump(raw)) if raw else {}
    for var, path in _ENV_ROOT.items():
        if var in env and env[var] != "":
            value: Any = env[var].upper() if var == "LOG_LEVEL" else env[var]
            _set_path(tree, path, value)
    processors = tree.get("stream_processors")
    if isinstance(processors, dict):
        for proc in processors.values():
            if isinstance(proc, dict):
                for var, field in _ENV_PROCESSOR.items():
                    if var in env and env[var] != "":
                        proc[field] = env[var]
                for var, field in _ENV_PROCESSOR_SECTIONS.items():
                    if env.get(var, "") != "":
                        proc[field] = _section_from_env(var, env[var])
    return tree


def _section_from_env(var: str, text: str) -> dict[str, Any]:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([(var, f"invalid YAML/JSON: {exc}")]) from None
    if not isinstance(value, dict):
        raise ConfigError([(var, "must be a mapping (YAML or JSON object)")])
    return value


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def parse_config(raw: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> StreamsConfig:
    """Validate a raw tree (from YAML) plus env overrides; raise ConfigError with every problem."""
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError([("<root>", "the configuration must be a mapping")])
    tree = apply_env_overrides(dict(raw or {}), env or {})
    try:
        return StreamsConfig.model_validate(tree)
    except ValidationError as exc:
        problems = [(_format_loc(err["loc"]), err["msg"]) for err in exc.errors()]
        raise ConfigError(problems) from None


def resolve_config_path(flag: str | None, env: Mapping[str, str]) -> Path:
    return Path(flag or env.get(CONFIG_PATH_ENV) or DEFAULT_CONFIG_PATH)


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> StreamsConfig:
    """Read and validate a config file; a missing or unparsable file is a ConfigError too."""
    env = os.environ if env is None else env
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(str(file), f"cannot read config file: {exc.strerror or exc}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([(str(file), f"invalid YAML: {exc}")]) from None
    return parse_config(raw, env)
