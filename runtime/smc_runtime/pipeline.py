"""The pure processing core: one raw record in, output records out.

``Pipeline.process`` decodes a record, routes it to the enrichers of its kind, feeds closed bars
to the detectors, runs the alert rules and returns ``OutputRecord``s. It never raises on bad
input (a rejection becomes one dead-letter record) and never reads a clock: the same input
sequence from the same (restored) state gives byte-identical outputs.

State is scoped to the source partition ``(topic, partition)`` and, within it, to a state key:
``SYMBOL`` (trades, plus bars built from trades), ``SYMBOL|book`` (order book) and
``SYMBOL|<interval>`` (klines). The Kafka edge snapshots touched keys into its changelog and
drops a partition's state when the partition is revoked.

Plugins (``settings.plugins``, see ``smc_runtime.plugins``) run after the built-ins of their kind,
through the same interfaces and the same state handling. A plugin that raises costs one
dead-letter record (reason ``plugin_error``) and never the processor; the built-ins are not
wrapped, so they pay nothing for the isolation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from smc_runtime.analytics.alerts import default_alert_rules
from smc_runtime.analytics.detectors import SmcDetectorFactory, smc_engine_available
from smc_runtime.analytics.enrichers import TradeEnricher
from smc_runtime.analytics.interfaces import Alert, AlertRule, BarDetector, DetectorFactory, Enricher
from smc_runtime.analytics.klines import KlineEnricher, TradeBarBuilder, kline_bar
from smc_runtime.analytics.orderbook import OrderBookEnricher
from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.config import ProcessorSettings
from smc_runtime.messages import (
    AggTrade,
    DepthSnapshot,
    DepthUpdate,
    Kline,
    Rejection,
    RejectReason,
    Trade,
    decode,
)
from smc_runtime.plugins import LoadedPlugins, PluginFailed, check_unique_names, load_plugins
from smc_runtime.state import (
    SNAPSHOT_VERSION,
    KeySnapshot,
    SnapshotError,
    decode_snapshot,
    encode_snapshot,
)

ROLE_BY_KIND = {"trade": "enriched_trades", "orderbook": "orderbook_metrics", "kline": "kline_metrics"}
_BOOK_SUFFIX = "|book"
_KIND_BY_TYPE: dict[type, str] = {Trade: "trade", AggTrade: "trade", DepthUpdate: "orderbook",
                                  DepthSnapshot: "orderbook", Kline: "kline"}


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One record to produce; ``role`` names an ``OutputTopics`` field."""

    role: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


_new_object = object.__new__
_set_role = OutputRecord.__dict__["role"].__set__
_set_key = OutputRecord.__dict__["key"].__set__
_set_value = OutputRecord.__dict__["value"].__set__
_set_headers = OutputRecord.__dict__["headers"].__set__
_NO_HEADERS: tuple[tuple[str, bytes], ...] = ()


def _output(role: str, key: bytes, value: bytes) -> OutputRecord:
    """``OutputRecord(role, key, value)`` without headers, at a third of the cost: a frozen
    dataclass's ``__init__`` pays ``object.__setattr__`` per field; the slot descriptors do not."""
    record: OutputRecord = _new_object(OutputRecord)
    _set_role(record, role)
    _set_key(record, key)
    _set_value(record, value)
    _set_headers(record, _NO_HEADERS)
    return record


class SmcSignal(msgspec.Struct):
    """The ``smc_signals`` document: one detector event with its stream (see docs/schemas.md)."""

    symbol: str
    interval: str
    source: str
    detector: str
    event: dict[str, Any]
    type: str = "smc_signal"


class _Slot:
    """Everything kept for one state key; ``ident`` is its ``(topic, partition, state_key)``."""

    __slots__ = ("active", "bar_state", "detectors", "ident", "interval", "key_bytes", "kind", "pairs",
                 "states", "symbol")

    def __init__(self, kind: str, symbol: str, interval: str, ident: tuple[str, int, str]) -> None:
        self.kind = kind
        self.symbol = symbol
        self.key_bytes = symbol.encode()
        self.interval = interval
        self.ident = ident
        self.states: list[Any] = []
        self.pairs: list[tuple[Enricher[Any, Any], Any]] = []  # (enricher, its state), for the hot loop
        self.bar_state: Any = None
        self.detectors: list[BarDetector] = []
        self.active: set[str] = set()


class _Route:
    """What one message type goes through: its kind, output role, enrichers and alert rules."""

    __slots__ = ("enrichers", "kind", "role", "rules", "suffix")

    def __init__(self, kind: str, enrichers: list[Enricher[Any, Any]], rules: list[AlertRule]) -> None:
        self.kind = kind
        self.role = ROLE_BY_KIND[kind]
        self.enrichers = enrichers
        self.rules = rules
        self.suffix = _BOOK_SUFFIX if kind == "orderbook" else ""


class Pipeline:
    """Routes records through enrichers, detectors and alert rules; see the module docstring."""

    def __init__(self, settings: ProcessorSettings, *,
                 enrichers: Sequence[Enricher[Any, Any]] | None = None,
                 detectors: Sequence[DetectorFactory] | None = None,
                 alert_rules: Sequence[AlertRule] | None = None,
                 plugins: LoadedPlugins | None = None) -> None:
        """``enrichers``/``detectors``/``alert_rules`` replace the built-ins (tests); ``plugins``
        replaces loading ``settings.plugins`` from entry points (raises ``PluginConfigError``)."""
        self.settings = settings
        self._plugins = load_plugins(settings.plugins) if plugins is None else plugins
        enrichment = settings.enrichment
        self._max_bytes = enrichment.max_message_bytes
        if enrichers is None:
            enrichers = [TradeEnricher(enrichment.trades), OrderBookEnricher(enrichment.orderbook),
                         KlineEnricher(enrichment.klines)]
        enrichers = [*enrichers, *self._plugins.enrichers]
        self._enrichers: dict[str, list[Enricher[Any, Any]]] = {kind: [] for kind in ROLE_BY_KIND}
        for enricher in enrichers:
            self._enrichers[enricher.kind].append(enricher)
        if detectors is None:
            enabled = settings.detection.enabled and smc_engine_available()
            detectors = [SmcDetectorFactory(settings.detection)] if enabled else []
        self._detector_factories: list[DetectorFactory] = [*detectors, *self._plugins.detectors]
        klines = enrichment.klines
        self._bar_builder = (TradeBarBuilder(klines.trade_bar_interval_ms)
                             if klines.bars_from_trades and self._detector_factories else None)
        rules = list(default_alert_rules(settings.alerts) if alert_rules is None else alert_rules)
        rules.extend(self._plugins.alert_rules)
        check_unique_names("enricher", [*(e.name for e in enrichers), TradeBarBuilder.name])
        check_unique_names("detector", [f.name for f in self._detector_factories])
        check_unique_names("alert_rule", [r.name for r in rules])
        self._rules: dict[str, list[AlertRule]] = {
            kind: [r for r in rules if kind in r.kinds] for kind in (*ROLE_BY_KIND, "signal")
        }
        self._routes: dict[type, _Route] = {
            cls: _Route(kind, self._enrichers[kind], self._rules[kind]) for cls, kind in _KIND_BY_TYPE.items()
        }
        self._partitions: dict[tuple[str, int], dict[str, _Slot]] = {}
        self._touched: set[tuple[str, int, str]] = set()
        self._encode = msgspec.json.Encoder().encode

    # -- processing ---------------------------------------------------------------------------

    def process(self, value: bytes | None, *, topic: str, partition: int, offset: int,
                timestamp_ms: int, key: bytes | None = None) -> list[OutputRecord]:
        """Process one source record; never raises on bad input."""
        message = decode(value, topic=topic, key=key, max_bytes=self._max_bytes)
        if type(message) is Rejection:
            return [self._dead_letter(value, key, message, topic, partition, offset, timestamp_ms)]
        route = self._routes[type(message)]
        kind = route.kind
        symbol = message.symbol  # type: ignore[union-attr]
        if kind == "kline":
            interval = message.kline.interval  # type: ignore[union-attr]
            state_key = f"{symbol}|{interval}"
        else:
            interval = ""
            state_key = symbol + route.suffix if route.suffix else symbol
        slots = self._partitions.get((topic, partition))
        if slots is None:
            slots = self._partitions[(topic, partition)] = {}
        slot = slots.get(state_key)
        if slot is None:
            slot = slots[state_key] = self._new_slot(kind, symbol, interval, (topic, partition, state_key))
        self._touched.add(slot.ident)

        outputs: list[OutputRecord] = []
        role = route.role
        rules = route.rules
        encode = self._encode
        key_bytes = slot.key_bytes
        failures: list[PluginFailed] = []
        for enricher, state in slot.pairs:
            try:
                document = enricher.update(state, message)
            except PluginFailed as failure:
                failures.append(failure)
                continue
            if document is None:
                continue
            if isinstance(document, Rejection):
                outputs.append(
                    self._dead_letter(value, key, document, topic, partition, offset, timestamp_ms))
                if failures:
                    self._plugin_failures(failures, slot, value, key, topic, partition, offset,
                                          timestamp_ms, outputs)
                return outputs
            record: OutputRecord = _new_object(OutputRecord)  # _output(), inlined: the hot line
            _set_role(record, role)
            _set_key(record, key_bytes)
            _set_value(record, encode(document))
            _set_headers(record, _NO_HEADERS)
            outputs.append(record)
            for rule in rules:
                try:
                    alerts = rule.evaluate(kind, symbol, timestamp_ms, document, slot.active)
                except PluginFailed as failure:
                    failures.append(failure)
                    continue
                for alert in alerts:
                    outputs.append(_output("alerts", key_bytes, encode(alert)))

        if slot.detectors:
            bar: Bar | None = None
            if isinstance(message, Kline):
                bar = kline_bar(message) if message.kline.closed else None
            elif self._bar_builder is not None and isinstance(message, Trade | AggTrade):
                bar = self._bar_builder.update(slot.bar_state, message)
            if bar is not None:
                source = "klines" if kind == "kline" else "trades"
                try:
                    self._detect(slot, bar, source, timestamp_ms, outputs, failures)
                except ValueError as exc:  # a detector refusing a bar: a value, not a crash
                    rejection = Rejection(RejectReason.SCHEMA, f"bar rejected by detector: {exc}")
                    outputs.append(
                        self._dead_letter(value, key, rejection, topic, partition, offset, timestamp_ms))
        if failures:
            self._plugin_failures(failures, slot, value, key, topic, partition, offset, timestamp_ms, outputs)
        return outputs

    def finalize(self) -> list[OutputRecord]:
        """End of a finite stream (replay): close open trade bars and finalize every detector.

        A live stream never ends, so the Kafka runtime does not call this."""
        outputs: list[OutputRecord] = []
        for topic_partition in sorted(self._partitions):
            slots = self._partitions[topic_partition]
            for state_key in sorted(slots):
                slot = slots[state_key]
                if not slot.detectors:
                    continue
                source = "trades" if slot.kind == "trade" else "klines"
                failures: list[PluginFailed] = []
                last_ts = 0
                if self._bar_builder is not None and slot.bar_state is not None:
                    bar = self._bar_builder.flush(slot.bar_state)
                    if bar is not None:
                        last_ts = bar.timestamp_ms
                        self._detect(slot, bar, source, bar.timestamp_ms, outputs, failures)
                for factory, detector in zip(self._detector_factories, slot.detectors, strict=True):
                    try:
                        events = detector.finalize()
                    except PluginFailed as failure:
                        failures.append(failure)
                        continue
                    self._signals(slot, factory.name, source, events, 0, outputs, failures)
                if failures:
                    self._plugin_failures(failures, slot, None, None, topic_partition[0], topic_partition[1],
                                          -1, last_ts, outputs)
        return outputs

    def _detect(self, slot: _Slot, bar: Bar, source: str, timestamp_ms: int,
                outputs: list[OutputRecord], failures: list[PluginFailed]) -> None:
        for factory, detector in zip(self._detector_factories, slot.detectors, strict=True):
            try:
                events = detector.on_bar(bar)
            except PluginFailed as failure:
                failures.append(failure)
                continue
            if events:
                self._signals(slot, factory.name, source, events, timestamp_ms, outputs, failures)

    def _signals(self, slot: _Slot, detector_name: str, source: str, events: Sequence[Any],
                 timestamp_ms: int, outputs: list[OutputRecord], failures: list[PluginFailed]) -> None:
        interval = slot.interval or (self._bar_builder.label if self._bar_builder else "")
        rules = self._rules["signal"]
        for event in events:
            event_dict = dict(event.to_dict())
            signal = SmcSignal(slot.symbol, interval, source, detector_name, event_dict)
            outputs.append(_output("smc_signals", slot.key_bytes, self._encode(signal)))
            if rules:
                record = {"symbol": slot.symbol, "interval": interval, "source": source, "event": event_dict}
                alert_ts = timestamp_ms or int(event_dict.get("timestamp_ms") or 0)
                for rule in rules:
                    try:
                        alerts = rule.evaluate("signal", slot.symbol, alert_ts, record, slot.active)
                    except PluginFailed as failure:
                        failures.append(failure)
                        continue
                    for alert in alerts:
                        outputs.append(_output("alerts", slot.key_bytes, self._encode(alert)))

    def _plugin_failures(self, failures: list[PluginFailed], slot: _Slot, value: bytes | None,
                         key: bytes | None, topic: str, partition: int, offset: int, timestamp_ms: int,
                         outputs: list[OutputRecord]) -> None:
        """One dead letter per failed plugin call (the original bytes, the plugin and its error) and a
        ``plugin_disabled`` alert when that failure disabled the plugin."""
        for failure in failures:
            health = failure.health
            headers = (
                ("reason", b"plugin_error"),
                ("error", failure.error.encode("utf-8", "replace")),
                ("plugin", health.name.encode()),
                ("plugin_kind", health.kind.encode()),
                ("source_topic", topic.encode()),
                ("source_partition", str(partition).encode()),
                ("source_offset", str(offset).encode()),
                ("source_timestamp", str(timestamp_ms).encode()),
            )
            outputs.append(OutputRecord("dead_letters", key or slot.key_bytes, value or b"", headers))
            if failure.just_disabled:
                alert = Alert("plugin_disabled", "critical", slot.symbol, timestamp_ms,
                              f"{health.kind} plugin {health.name!r} disabled after {health.consecutive} "
                              f"consecutive failures; last error: {failure.error}",
                              {"plugin": health.name, "plugin_kind": health.kind,
                               "consecutive_failures": health.consecutive, "failures": health.failures,
                               "error": failure.error})
                outputs.append(OutputRecord("alerts", slot.key_bytes, self._encode(alert)))

    # -- plugins ----------------------------------------------------------------------------------

    def plugin_failures(self) -> dict[str, int]:
        """Failures per plugin (``kind:name``) since start: for the runtime's metrics."""
        return self._plugins.failures()

    def disabled_plugins(self) -> list[str]:
        """Plugins (``kind:name``) disabled after too many consecutive failures."""
        return self._plugins.disabled()

    def _new_slot(self, kind: str, symbol: str, interval: str, ident: tuple[str, int, str]) -> _Slot:
        slot = _Slot(kind, symbol, interval, ident)
        enrichers = self._enrichers[kind]
        slot.states = [e.new_state() for e in enrichers]
        slot.pairs = list(zip(enrichers, slot.states, strict=True))
        if kind == "kline" or (kind == "trade" and self._bar_builder is not None):
            slot.detectors = [f.create() for f in self._detector_factories]
        if kind == "trade" and self._bar_builder is not None:
            slot.bar_state = self._bar_builder.new_state()
        return slot

    @staticmethod
    def _dead_letter(value: bytes | None, key: bytes | None, rejection: Rejection, topic: str,
                     partition: int, offset: int, timestamp_ms: int) -> OutputRecord:
        headers = (
            ("reason", str(rejection.reason).encode()),
            ("error", rejection.message.encode("utf-8", "replace")),
            ("source_topic", topic.encode()),
            ("source_partition", str(partition).encode()),
            ("source_offset", str(offset).encode()),
            ("source_timestamp", str(timestamp_ms).encode()),
        )
        return OutputRecord("dead_letters", key or b"", value or b"", headers)

    # -- state ----------------------------------------------------------------------------------

    def touched(self) -> set[tuple[str, int, str]]:
        """State keys changed since the last call (and clears the set)."""
        touched, self._touched = self._touched, set()
        return touched

    def state_keys(self, topic: str, partition: int) -> list[str]:
        return sorted(self._partitions.get((topic, partition), {}))

    def drop_partition(self, topic: str, partition: int) -> None:
        self._partitions.pop((topic, partition), None)
        self._touched = {t for t in self._touched if (t[0], t[1]) != (topic, partition)}

    def snapshot(self, topic: str, partition: int, state_key: str) -> bytes | None:
        """Deterministic bytes of one key's state, or None if the key has no state."""
        slots = self._partitions.get((topic, partition))
        slot = slots.get(state_key) if slots is not None else None
        if slot is None:
            return None
        enrichers = self._enrichers[slot.kind]
        states = slot.states
        if len(enrichers) == 1:  # the common case: one enricher per kind, no plugin
            components = [(enrichers[0].name, enrichers[0].dump_state(states[0]))]
        else:
            components = [(e.name, e.dump_state(s)) for e, s in zip(enrichers, states, strict=True)]
        if slot.bar_state is not None and self._bar_builder is not None:
            components.append((self._bar_builder.name, self._bar_builder.dump_state(slot.bar_state)))
        detectors = ([(f.name, d.snapshot()) for f, d in zip(self._detector_factories, slot.detectors,
                                                              strict=False)]
                     if slot.detectors else [])
        active = sorted(slot.active) if slot.active else []
        return encode_snapshot(KeySnapshot(SNAPSHOT_VERSION, slot.kind, slot.symbol, slot.interval,
                                           components, detectors, active))

    def restore(self, topic: str, partition: int, state_key: str, data: bytes) -> None:
        """Replace one key's state with a snapshot; raises ``SnapshotError`` on foreign bytes."""
        snap = decode_snapshot(data)
        kind = snap.kind
        slot = _Slot(kind, snap.symbol, snap.interval, (topic, partition, state_key))
        saved = dict(snap.components)
        enrichers = self._enrichers[kind]
        try:
            slot.states = [e.load_state(saved[e.name]) if e.name in saved else e.new_state()
                           for e in enrichers]
        except ValueError as exc:  # msgspec errors and ring-size checks are ValueErrors
            raise SnapshotError(f"state of {kind} key {state_key!r} does not load: {exc}") from None
        slot.pairs = list(zip(enrichers, slot.states, strict=True))
        builder = self._bar_builder
        if kind == "trade" and builder is not None:
            name = builder.name
            slot.bar_state = builder.load_state(saved[name]) if name in saved else builder.new_state()
        if kind == "kline" or (kind == "trade" and builder is not None):
            saved_detectors = dict(snap.detectors)
            slot.detectors = [f.restore(saved_detectors[f.name]) if f.name in saved_detectors else f.create()
                              for f in self._detector_factories]
        slot.active = set(snap.active_alerts)
        self._partitions.setdefault((topic, partition), {})[state_key] = slot
