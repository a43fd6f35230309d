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

No record stops the processor (docs/runtime.md, "Hostile input"): besides the decode bounds,
everything a decoded record runs through sits in one ``try`` per record. An exception there (a bug,
or a poison pill nobody foresaw) discards the record's outputs, **resets the key** (its state is
dropped, as if the key had never been seen: the next record starts it afresh; the changelog gets a
tombstone) and yields one dead letter (``processing_error``, or ``non_finite_state`` when a
component found its state no longer finite) plus a ``state_reset`` alert. The decision depends on the
key's state and the record only, so a replay after a crash decides the same. Resetting, rather than
rolling back, needs no per-record copy of the state (the hot path stays as it was) and cannot keep a
state that is itself the problem.

Dead letters, the key limit and their alerts: ``record_faults.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from smc_runtime.analytics.alerts import default_alert_rules
from smc_runtime.analytics.detectors import SmcDetectorFactory
from smc_runtime.analytics.enrichers import TradeEnricher
from smc_runtime.analytics.interfaces import (
    AlertRule,
    DetectorFactory,
    Enricher,
)
from smc_runtime.analytics.klines import KlineEnricher, TradeBarBuilder, kline_bar
from smc_runtime.analytics.orderbook import OrderBookEnricher
from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.config import ProcessorSettings
from smc_runtime.key_state import KeyCodec, KeySlot
from smc_runtime.messages import (
    AggTrade,
    Bounds,
    DepthSnapshot,
    DepthUpdate,
    Kline,
    Rejection,
    RejectReason,
    Trade,
    make_decoder,
)
from smc_runtime.outputs import DEAD_LETTER_KEY_MAX as DEAD_LETTER_KEY_MAX
from smc_runtime.outputs import (
    NO_HEADERS,
    SmcSignal,
    new_object,
    output,
    set_headers,
    set_key,
    set_pattern,
    set_role,
    set_value,
)
from smc_runtime.outputs import OutputRecord as OutputRecord
from smc_runtime.outputs import dead_letter_value_cap as dead_letter_value_cap
from smc_runtime.plugin_guards import PluginFailed, PluginStopError
from smc_runtime.plugins import LoadedPlugins, check_unique_names, load_plugins
from smc_runtime.record_faults import FaultOutputs

ROLE_BY_KIND = {"trade": "enriched_trades", "orderbook": "orderbook_metrics", "kline": "kline_metrics"}
_BOOK_SUFFIX = "|book"
_KIND_BY_TYPE: dict[type, str] = {Trade: "trade", AggTrade: "trade", DepthUpdate: "orderbook",
                                  DepthSnapshot: "orderbook", Kline: "kline"}


def _state_key(route: _Route, message: Any) -> tuple[str, str]:
    """(state key, kline interval or ""): a symbol's trades, ``SYMBOL|book`` for its order book,
    ``SYMBOL|<interval>`` for each kline interval."""
    symbol: str = message.symbol
    if route.kind == "kline":
        interval: str = message.kline.interval
        return f"{symbol}|{interval}", interval
    return (symbol + route.suffix if route.suffix else symbol), ""


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
        b = enrichment.bounds
        self._decode = make_decoder(self._max_bytes, Bounds(b.min_price, b.max_price, b.min_quantity,
                                                            b.max_quantity, b.max_volume, b.max_book_levels))
        self._dl_value_cap = dead_letter_value_cap(settings.max_record_bytes)
        self._max_keys = settings.max_state_keys_per_partition
        if enrichers is None:
            enrichers = [TradeEnricher(enrichment.trades, b), OrderBookEnricher(enrichment.orderbook, b),
                         KlineEnricher(enrichment.klines, b)]
        enrichers = [*enrichers, *self._plugins.enrichers]
        self._enrichers: dict[str, list[Enricher[Any, Any]]] = {kind: [] for kind in ROLE_BY_KIND}
        for enricher in enrichers:
            self._enrichers[enricher.kind].append(enricher)
        if detectors is None:
            enabled = settings.detection.enabled
            detectors = [SmcDetectorFactory(settings.detection)] if enabled else []
            if enabled and settings.detection.series:  # per-bar series: analytics/smc/series (issue 15)
                from smc_runtime.analytics.smc.series.factory import SeriesDetectorFactory

                detectors.append(SeriesDetectorFactory(settings.detection.series,
                                                       compat=settings.detection.mode == "compat",
                                                       swing_length=settings.detection.swing_length))
        self._detector_factories: list[DetectorFactory] = [*detectors, *self._plugins.detectors]
        klines = enrichment.klines
        self._bar_builder = (TradeBarBuilder(klines.trade_bar_interval_ms)
                             if klines.bars_from_trades and self._detector_factories else None)
        rules = list(default_alert_rules(settings.alerts) if alert_rules is None else alert_rules)
        if alert_rules is None and any(f.name == "smc_series" for f in detectors):  # issue 15: series alerts
            from smc_runtime.analytics.smc.series.factory import series_alert_rules

            rules.extend(series_alert_rules(settings.alerts.previous_levels_broken, settings.alerts.sessions))
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
        self._partitions: dict[tuple[str, int], dict[str, KeySlot]] = {}
        self._codec = KeyCodec(self._enrichers, self._bar_builder, self._detector_factories)
        self._touched: set[tuple[str, int, str]] = set()
        self._encode = msgspec.json.Encoder().encode
        self._faults = FaultOutputs(self._dl_value_cap, self._max_keys, self._encode)

    # -- processing ---------------------------------------------------------------------------

    def process(self, value: bytes | None, *, topic: str, partition: int, offset: int,
                timestamp_ms: int, key: bytes | None = None) -> list[OutputRecord]:
        """Process one source record; never raises on bad input (see the module docstring).

        Decode, route, find the key, run its enrichers; each document's record and alerts are
        ``_emit``'s (that call costs no measurable throughput in ``bench_enrichment``). What happens
        once per key (``_add_slot``), per rejection (``_rejected``) or per closed bar (``_on_bar``)
        is in helpers too."""
        message = self._decode(value, topic, key)
        if type(message) is Rejection:
            return [self._faults.dead_letter(value, key, message, topic, partition, offset, timestamp_ms)]
        route = self._routes[type(message)]
        kind = route.kind
        symbol = message.symbol  # type: ignore[union-attr]
        state_key, interval = _state_key(route, message)
        slots = self._partitions.get((topic, partition))
        if slots is None:
            slots = self._partitions[(topic, partition)] = {}
        outputs: list[OutputRecord] = []
        failures: list[PluginFailed] = []
        try:
            slot = slots.get(state_key)
            if slot is None:
                if len(slots) >= self._max_keys:
                    return [self._faults.key_limit(value, key, state_key, topic, partition, offset,
                                                   timestamp_ms)]
                slot = self._add_slot(slots, kind, symbol, interval, (topic, partition, state_key),
                                      timestamp_ms, outputs, failures)
            self._touched.add(slot.ident)

            for enricher, state in slot.pairs:
                try:
                    document = enricher.update(state, message)
                except PluginFailed as failure:
                    failures.append(failure)
                    continue
                if document is None:
                    continue
                if isinstance(document, Rejection):
                    return self._rejected(document, slot, value, key, topic, partition, offset, timestamp_ms,
                                          outputs, failures)
                self._emit(route, slot, document, timestamp_ms, outputs, failures)
            if slot.detectors:
                self._on_bar(slot, message, value, key, topic, partition, offset, timestamp_ms, outputs,
                             failures)
            if failures:
                self._faults.plugin_failures(failures, slot, value, key, topic, partition, offset,
                                             timestamp_ms, outputs)
            return outputs
        except (PluginStopError, MemoryError, KeyboardInterrupt):
            raise  # by design fatal (on_failure: stop), or not this record's fault
        except Exception as exc:  # the per-record guard: this record's dead letter, never the process's exit
            return self._reset_key(exc, slots, state_key, symbol, value, key, topic, partition, offset,
                                   timestamp_ms)

    def state_key_of(self, value: bytes | None, *, topic: str, key: bytes | None = None) -> str | None:
        """The state key ``process`` would update for this record (None: it is rejected). Replay uses
        it to skip records a key's snapshot already reflects (``kafka/recovery.py``); not the hot path."""
        message = self._decode(value, topic, key)
        if type(message) is Rejection:
            return None
        return _state_key(self._routes[type(message)], message)[0]

    def _emit(self, route: _Route, slot: KeySlot, document: Any, timestamp_ms: int,
              outputs: list[OutputRecord], failures: list[PluginFailed]) -> None:
        """One enriched document: its output record and the alerts of the route's rules on it."""
        encode = self._encode
        key_bytes = slot.key_bytes
        record: OutputRecord = new_object(OutputRecord)  # output(), inlined: the hot line
        set_role(record, route.role)
        set_key(record, key_bytes)
        set_value(record, encode(document))
        set_headers(record, NO_HEADERS)
        set_pattern(record, "")
        outputs.append(record)
        for rule in route.rules:
            try:
                alerts = rule.evaluate(route.kind, slot.symbol, timestamp_ms, document, slot.active)
            except PluginFailed as failure:
                failures.append(failure)
                continue
            for alert in alerts:
                outputs.append(output("alerts", key_bytes, encode(alert)))

    def _add_slot(self, slots: dict[str, KeySlot], kind: str, symbol: str, interval: str,
                  ident: tuple[str, int, str], timestamp_ms: int, outputs: list[OutputRecord],
                  failures: list[PluginFailed]) -> KeySlot:
        """A key's first record: its slot, and the ``state_key_limit`` alert if it fills the partition."""
        slot = slots[ident[2]] = self._codec.new(kind, symbol, interval, ident, failures)
        if len(slots) == self._max_keys:
            outputs.append(self._faults.key_limit_alert(slot, ident[0], ident[1], timestamp_ms))
        return slot

    def _rejected(self, rejection: Rejection, slot: KeySlot, value: bytes | None, key: bytes | None,
                  topic: str, partition: int, offset: int, timestamp_ms: int, outputs: list[OutputRecord],
                  failures: list[PluginFailed]) -> list[OutputRecord]:
        """An enricher rejected the record: its dead letter ends the record (after the plugin failures
        so far)."""
        faults = self._faults
        outputs.append(faults.dead_letter(value, key, rejection, topic, partition, offset, timestamp_ms))
        if failures:
            faults.plugin_failures(failures, slot, value, key, topic, partition, offset, timestamp_ms,
                                   outputs)
        return outputs

    def _on_bar(self, slot: KeySlot, message: object, value: bytes | None, key: bytes | None, topic: str,
                partition: int, offset: int, timestamp_ms: int, outputs: list[OutputRecord],
                failures: list[PluginFailed]) -> None:
        """Feed the key's detectors when the record closes a bar (a closed kline, or a trade that the
        bar builder says ends one); a detector refusing the bar is a dead letter, not a crash."""
        bar: Bar | None = None
        if isinstance(message, Kline):
            bar = kline_bar(message) if message.kline.closed else None
        elif self._bar_builder is not None and isinstance(message, Trade | AggTrade):
            bar = self._bar_builder.update(slot.bar_state, message)
        if bar is None:
            return
        source = "klines" if slot.kind == "kline" else "trades"
        try:
            self._detect(slot, bar, source, timestamp_ms, outputs, failures)
        except ValueError as exc:
            rejection = Rejection(RejectReason.SCHEMA, f"bar rejected by detector: {exc}")
            outputs.append(
                self._faults.dead_letter(value, key, rejection, topic, partition, offset, timestamp_ms))

    def _reset_key(self, exc: Exception, slots: dict[str, KeySlot], state_key: str, symbol: str,
                   value: bytes | None, key: bytes | None, topic: str, partition: int, offset: int,
                   timestamp_ms: int) -> list[OutputRecord]:
        """A record raised: drop the key's state (the changelog gets a tombstone), one dead letter with
        the exception, one ``state_reset`` alert. The record's other outputs are discarded."""
        slots.pop(state_key, None)
        self._touched.add((topic, partition, state_key))
        return self._faults.state_reset(exc, state_key, symbol, value, key, topic, partition, offset,
                                        timestamp_ms)

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
                    self._faults.plugin_failures(failures, slot, None, None, topic_partition[0],
                                                 topic_partition[1], -1, last_ts, outputs)
        return outputs

    def _detect(self, slot: KeySlot, bar: Bar, source: str, timestamp_ms: int,
                outputs: list[OutputRecord], failures: list[PluginFailed]) -> None:
        for factory, detector in zip(self._detector_factories, slot.detectors, strict=True):
            try:
                events = detector.on_bar(bar)
            except PluginFailed as failure:
                failures.append(failure)
                continue
            if events:
                self._signals(slot, factory.name, source, events, timestamp_ms, outputs, failures)

    def _signals(self, slot: KeySlot, detector_name: str, source: str, events: Sequence[Any],
                 timestamp_ms: int, outputs: list[OutputRecord], failures: list[PluginFailed]) -> None:
        interval = slot.interval or (self._bar_builder.label if self._bar_builder else "")
        rules = self._rules["signal"]
        for event in events:
            event_dict = dict(event.to_dict())
            signal = SmcSignal(slot.symbol, interval, source, detector_name, event_dict)
            pattern = event_dict.get("pattern")
            outputs.append(OutputRecord("smc_signals", slot.key_bytes, self._encode(signal),
                                        pattern=str(pattern) if pattern else "unknown"))
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
                        outputs.append(output("alerts", slot.key_bytes, self._encode(alert)))

    # -- plugins ----------------------------------------------------------------------------------

    def plugin_failures(self) -> dict[str, int]:
        """Failures per plugin (``kind:name``) since start: for the runtime's metrics."""
        return self._plugins.failures()

    def disabled_plugins(self) -> list[str]:
        """Plugins (``kind:name``) disabled after too many consecutive failures."""
        return self._plugins.disabled()

    # -- state ----------------------------------------------------------------------------------

    def take_touched(self) -> set[tuple[str, int, str]]:
        """The state keys changed since the last call; the Pipeline forgets them (they are the
        caller's to snapshot now)."""
        touched, self._touched = self._touched, set()
        return touched

    def state_key_count(self, topic: str, partition: int) -> int:
        """Keys held for one source partition (a gauge; capped by ``max_state_keys_per_partition``)."""
        return len(self._partitions.get((topic, partition), ()))

    def state_keys(self, topic: str, partition: int) -> list[str]:
        return sorted(self._partitions.get((topic, partition), {}))

    def drop_partition(self, topic: str, partition: int) -> None:
        self._partitions.pop((topic, partition), None)
        self._touched = {t for t in self._touched if (t[0], t[1]) != (topic, partition)}

    def snapshot(self, topic: str, partition: int, state_key: str) -> bytes | None:
        """Deterministic bytes of one key's state, or None if the key has no state."""
        slots = self._partitions.get((topic, partition))
        slot = slots.get(state_key) if slots is not None else None
        return None if slot is None else self._codec.dump(slot)

    def restore(self, topic: str, partition: int, state_key: str, data: bytes) -> None:
        """Replace one key's state with a snapshot; raises ``SnapshotError`` on foreign bytes."""
        slot = self._codec.load(data, (topic, partition, state_key))
        self._partitions.setdefault((topic, partition), {})[state_key] = slot
