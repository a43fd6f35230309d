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
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_PATH = "/app/config/streams-config.yaml"
CONFIG_PATH_ENV = "STREAMS_CONFIG"

TOPIC_NAME_PATTERN = r"^[a-zA-Z0-9._-]{1,249}$"
_TOPIC_RE = re.compile(TOPIC_NAME_PATTERN)

TopicName = Annotated[str, Field(pattern=TOPIC_NAME_PATTERN)]


class ConfigError(Exception):
    """Invalid configuration; ``problems`` lists ``(field path, reason)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {path}: {reason}" for path, reason in problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ProcessingMode(StrEnum):
    EXACTLY_ONCE = "exactly_once"
    AT_LEAST_ONCE = "at_least_once"


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSecurity(_Model):
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


class KafkaSettings(_Model):
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


class OutputTopics(_Model):
    enriched_trades: TopicName = "market_data.enriched.trades"
    orderbook_metrics: TopicName = "market_data.enriched.orderbook"
    kline_metrics: TopicName = "market_data.enriched.klines"
    smc_signals: TopicName = "smc.signals"
    alerts: TopicName = "smc.alerts"
    dead_letters: TopicName = "market_data.dead_letters"

    def by_role(self) -> dict[str, str]:
        return dict(self.model_dump())


class TradeEnrichment(_Model):
    sma_windows: list[Annotated[int, Field(ge=2, le=10_000)]] = [5, 20, 50]
    vwap_window: int = Field(100, ge=2, le=100_000)
    ema_span: int = Field(20, ge=2, le=10_000)
    momentum_window: int = Field(20, ge=1, le=10_000)
    volatility_window: int = Field(50, ge=2, le=10_000)
    volume_window: int = Field(100, ge=2, le=100_000)
    large_trade_multiplier: float = Field(5.0, gt=0)


class OrderBookEnrichment(_Model):
    depth_bands_bps: list[Annotated[float, Field(gt=0, le=10_000)]] = [10.0, 25.0, 50.0]
    imbalance_levels: int = Field(10, ge=1, le=1000)
    max_levels: int = Field(1000, ge=1, le=100_000)


class KlineEnrichment(_Model):
    atr_period: int = Field(14, ge=1, le=1000)
    bars_from_trades: bool = False
    trade_bar_interval_ms: int = Field(60_000, ge=1000)


# Magnitudes the built-in arithmetic is proven finite for (docs/runtime.md, "Hostile input"): every
# product, sum and ratio of bounded inputs over the largest windows stays far below float max (1.8e308).
_FINITE_HEADROOM = 1e250


class InputBounds(_Model):
    """What ``decode`` and the enrichers accept (each rejection is a dead letter with its reason).

    Prices and quantities must lie in ``[min, max]`` (and be finite); ids and times are integers in
    ``[0, 2**63-1]`` (times also before the year 10000); kline volumes in ``[0, max_volume]`` (quote
    volumes up to ``max_volume * max_price``); one book message has at most ``max_book_levels`` levels
    per side. A trade id or depth update id more than ``max_id_jump`` beyond the key's last one, or a
    trade/kline time more than ``max_time_jump_ms`` beyond the key's last (klines: at least two
    intervals), is dead-lettered (``id_jump`` / ``time_jump``) instead of becoming the new baseline."""

    min_price: float = Field(1e-12, gt=0)
    max_price: float = Field(1e15, gt=0)
    min_quantity: float = Field(1e-12, gt=0)
    max_quantity: float = Field(1e15, gt=0)
    max_volume: float = Field(1e18, gt=0)
    max_book_levels: int = Field(5000, ge=1, le=1_000_000)
    max_id_jump: int = Field(1_000_000_000, ge=1, le=2**62)
    max_time_jump_ms: int = Field(30 * 86_400_000, ge=1000, le=2**62)

    @model_validator(mode="after")
    def _consistent(self) -> InputBounds:
        problems = []
        if self.min_price >= self.max_price:
            problems.append(f"min_price {self.min_price:g} must be < max_price {self.max_price:g}")
        if self.min_quantity >= self.max_quantity:
            problems.append(f"min_quantity {self.min_quantity:g} must be < max_quantity "
                            f"{self.max_quantity:g}")
        if self.max_price / self.min_price > _FINITE_HEADROOM:
            problems.append(f"max_price / min_price must be <= {_FINITE_HEADROOM:g} (price ratios and their "
                            "logs must stay finite)")
        if self.max_price * max(self.max_quantity, self.max_volume) > 1e100:
            problems.append("max_price * max(max_quantity, max_volume) must be <= 1e100 (notional sums "
                            "must stay finite)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class EnrichmentSettings(_Model):
    max_message_bytes: int = Field(1_048_576, ge=64, le=100 * 1_048_576)
    bounds: InputBounds = InputBounds()
    trades: TradeEnrichment = TradeEnrichment()
    orderbook: OrderBookEnrichment = OrderBookEnrichment()
    klines: KlineEnrichment = KlineEnrichment()


class DetectionSettings(_Model):
    """SMC detector parameters (see the SMC SPEC); ``mode`` picks compat or default semantics."""

    enabled: bool = True
    mode: Literal["default", "compat"] = "default"
    swing_length: int = Field(10, ge=1, le=500)
    close_break: bool = True
    close_mitigation: bool = False
    join_fvg: bool = False
    liquidity_range: str = Field("atr:0.5", pattern=r"^(abs|atr):[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$")
    # Open fair value gaps kept per stream: in a trend, gaps far from the price are never mitigated
    # and would grow a key's state without bound; beyond this the oldest is given up (a `final`
    # event). Bounds the key's snapshot (see worst_case_snapshot_bytes).
    max_open_fvgs: int = Field(200, ge=1, le=100_000)
    # Per-bar series (SMC README "Series"), each its `smc_signals` events: previous_high_low:TF,
    # sessions:NAME[@ZONE] (e.g. London, Custom:06:00-09:00@Europe/London), retracements. Off if empty.
    series: list[str] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _series_valid(self) -> DetectionSettings:
        if self.series:
            from smc_runtime.analytics.smc.series.factory import parse_series_list

            parse_series_list(self.series, self.mode == "compat", self.swing_length)
        return self

    # SMC context features (issue 15, default mode only, all off by default; see the SMC README).
    internal_length: int = Field(0, ge=0, le=499)  # internal structure swing length, < swing_length
    internal_confluence: bool = False
    trend: bool = False
    zones: bool = False
    fvg_min_size: str = Field("", pattern=r"^(|auto|(abs|atr):[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)$")
    fvg_mitigation: Literal["touch", "ce", "full"] = "touch"
    inverse_fvg: bool = False
    ob_atr_filter: float = Field(0.0, ge=0, le=1000)
    breakers: bool = False
    sweep_outcome: bool = False

    @model_validator(mode="after")
    def _context_consistent(self) -> DetectionSettings:
        if self.internal_length and self.internal_length >= self.swing_length:
            raise ValueError("detection.internal_length must be smaller than swing_length (0 = off)")
        if self.internal_confluence and not self.internal_length:
            raise ValueError("detection.internal_confluence needs internal_length > 0")
        context = (self.internal_length or self.trend or self.zones or self.fvg_min_size
                   or self.fvg_mitigation != "touch" or self.inverse_fvg or self.ob_atr_filter
                   or self.breakers or self.sweep_outcome)
        if context and self.mode == "compat":
            raise ValueError("detection context features (internal_length, trend, zones, fvg_*, "
                             "inverse_fvg, ob_atr_filter, breakers, sweep_outcome) need mode 'default'")
        return self


class AlertSettings(_Model):
    watched_symbols: list[str] = []
    structure_breaks: bool = True
    spread_bps_threshold: float = Field(50.0, gt=0)
    imbalance_threshold: float = Field(0.8, gt=0, le=1)
    large_trades: bool = True
    orderbook_gaps: bool = True
    # series events (detection.series): a previous period's high/low broken; a session opened/closed
    previous_levels_broken: bool = True
    sessions: bool = True
    # SMC context alerts (off by default, like the detection features whose events they read:
    # sweep_outcome, breakers, trend)
    liquidity_sweeps: bool = False
    breaker_retests: bool = False
    trend_changes: bool = False


PLUGIN_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
_PLUGIN_NAME_RE = re.compile(PLUGIN_NAME_PATTERN)


class PluginSettings(_Model):
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


class KafkaClientSettings(_Model):
    """librdkafka tunables per client role; keys the runtime owns are rejected with the reason.

    See ``smc_runtime.client_settings`` for the allow-lists and docs/plugins.md for tuning advice."""

    consumer: dict[str, Any] = {}
    producer: dict[str, Any] = {}
    admin: dict[str, Any] = {}

    @field_validator("consumer", "producer", "admin")
    @classmethod
    def _allowed_keys(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from smc_runtime.client_settings import check_client_settings

        problems = check_client_settings(info.field_name, value)  # type: ignore[arg-type]
        if problems:
            raise ValueError("; ".join(f"{key!r}: {reason}" for key, reason in problems))
        return value


class TopicCreation(_Model):
    """Output, dead-letter and changelog topics missing at start: created (like Kafka Streams' internal
    topics) or reported. ``partitions`` None: the widest input topic's count; replication -1: the
    broker's default."""

    create_missing: bool = True
    partitions: int | None = Field(None, ge=1, le=10_000)
    replication_factor: int = Field(-1, ge=-1, le=32)


class ProcessorSettings(_Model):
    consumer_group: str = Field(min_length=1, max_length=249)
    processing_mode: ProcessingMode = ProcessingMode.EXACTLY_ONCE
    batch_size: int = Field(10_000, ge=1, le=1_000_000)
    commit_interval_ms: int = Field(100, ge=1, le=600_000)
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
        from smc_runtime.client_settings import CLIENT_ROLES, probe_client_settings

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
CHANGELOG_RECORD_OVERHEAD = 2048
_MAX_SYMBOL_BYTES = 32
_FLOAT_BYTES = 9  # a msgpack float64
# The SMC engine in default mode keeps ~2 x swing_length bars plus a prune chunk (256) of slack, and
# at most max_open_fvgs open gaps (each an event in the FVG detector and in the engine's alive book,
# ~200 B each as msgpack maps). The other alive events (order blocks, liquidity groups, swings) are
# not bounded by a setting and get a fixed budget (measured on a 5,900-bar synthetic trend: ~12 KB).
_SMC_BAR_BYTES = 7 * _FLOAT_BYTES
_SMC_FVG_BYTES = 512
_SMC_EVENT_BUDGET = 128 * 1024


def worst_case_snapshot_bytes(settings: ProcessorSettings) -> dict[str, int]:
    """Upper bound of one key's snapshot bytes per key kind (``trade``, ``orderbook``, ``kline``),
    built-ins only (plugins' state is theirs to bound). An estimate with margins, from the formats in
    ``analytics/`` (trade rings as raw float64, book levels as msgpack floats)."""
    frame = 256 + _MAX_SYMBOL_BYTES + 64 * 8  # KeySnapshot fields, names, the active alert flags
    trades, book = settings.enrichment.trades, settings.enrichment.orderbook
    ring = max(*trades.sma_windows, trades.vwap_window, trades.volume_window, trades.volatility_window,
               trades.momentum_window + 1)
    trade = frame + 4 * 8 * ring + _FLOAT_BYTES * len(trades.sma_windows) + 512
    orderbook = frame + 4 * _FLOAT_BYTES * book.max_levels + 128
    kline = frame + 256
    detection = settings.detection
    if detection.enabled:
        smc = ((2 * detection.swing_length + 2 * 256) * _SMC_BAR_BYTES
               + detection.max_open_fvgs * _SMC_FVG_BYTES + _SMC_EVENT_BUDGET)
        if detection.series:  # the smc_series detector: a swing buffer like the engine's + small calculators
            smc += (2 * detection.swing_length + 2 * 256) * _SMC_BAR_BYTES + 1024 * len(detection.series)
        if detection.inverse_fvg:  # waiting and live inverse gaps, bounded by max_open_fvgs too
            smc += detection.max_open_fvgs * _SMC_FVG_BYTES
        if detection.internal_length:  # a second scope's swings, structure and order blocks
            smc += _SMC_EVENT_BUDGET
        kline += smc
        if settings.enrichment.klines.bars_from_trades:
            trade += smc + 128
    return {"trade": trade, "orderbook": orderbook, "kline": kline}


def snapshot_size_problems(settings: ProcessorSettings) -> list[str]:
    """Every setting whose worst-case key snapshot cannot fit one changelog record."""
    problems: list[str] = []
    limit = settings.max_record_bytes - CHANGELOG_RECORD_OVERHEAD
    sizes = worst_case_snapshot_bytes(settings)
    if settings.detection.enabled and settings.detection.mode == "compat":
        problems.append("detection.mode 'compat' keeps every bar (the reference library's end-of-series "
                        "rules read the whole series), so a key's snapshot grows without bound; use "
                        "'default' in a processor (compat is for `smc-runtime detect`)")
    if sizes["trade"] > limit:
        problems.append(f"enrichment.trades windows (largest ring {_ring_of(settings)}) need up to "
                        f"{sizes['trade']} bytes per trade key (limit {limit}): lower vwap_window/"
                        "volume_window/sma_windows/volatility_window or raise max_record_bytes")
    if sizes["orderbook"] > limit:
        problems.append(f"enrichment.orderbook.max_levels {settings.enrichment.orderbook.max_levels} needs "
                        f"up to {sizes['orderbook']} bytes per book key (limit {limit}): lower it or raise "
                        "max_record_bytes")
    if sizes["kline"] > limit:
        problems.append(f"detection.swing_length {settings.detection.swing_length} and max_open_fvgs "
                        f"{settings.detection.max_open_fvgs} need up to {sizes['kline']} bytes per kline key "
                        f"(limit {limit}): lower them or raise max_record_bytes")
    producer_max = settings.kafka_clients.producer.get("message.max.bytes")
    if producer_max is not None and _as_int(producer_max) < settings.max_record_bytes:
        problems.append(f"kafka_clients.producer message.max.bytes {producer_max} is below max_record_bytes "
                        f"{settings.max_record_bytes}: records up to max_record_bytes would be refused")
    return problems


def _ring_of(settings: ProcessorSettings) -> int:
    t = settings.enrichment.trades
    return max(*t.sma_windows, t.vwap_window, t.volume_window, t.volatility_window, t.momentum_window + 1)


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class MonitoringSettings(_Model):
    metrics_port: int = Field(8080, ge=1, le=65535)
    health_check_port: int = Field(8081, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


class StreamsConfig(_Model):
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


def is_valid_topic_name(name: str) -> bool:
    return bool(_TOPIC_RE.fullmatch(name)) and name not in (".", "..")
