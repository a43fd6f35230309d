"""The state of one key (``KeySlot``: its components' states, bar builder, detectors, active
alerts) and how one is made: fresh (``KeyCodec.new``) or from its snapshot bytes (``KeyCodec.load``: the
changelog format ``KeySnapshot``, unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smc_runtime.analytics.interfaces import BarDetector, DetectorFactory, Enricher
from smc_runtime.analytics.klines import TradeBarBuilder
from smc_runtime.plugin_guards import GuardedDetector, PluginFailed
from smc_runtime.state import SNAPSHOT_VERSION, KeySnapshot, SnapshotError, decode_snapshot, encode_snapshot


def fresh_state(enricher: Enricher[Any, Any], failures: list[PluginFailed] | None = None) -> Any:
    """New state of one component; a plugin that cannot make one gets None (its guard counted the
    failure; its updates then fail as the plugin's, not the key's)."""
    try:
        return enricher.new_state()
    except PluginFailed as failure:
        if failures is not None:
            failures.append(failure)
        return None


def fresh_detector(factory: DetectorFactory, failures: list[PluginFailed] | None = None) -> BarDetector:
    try:
        return factory.create()
    except PluginFailed as failure:
        if failures is not None:
            failures.append(failure)
        return GuardedDetector(None, failure.health)


class KeySlot:
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


class KeyCodec:
    """Snapshot bytes of a key and back, for one Pipeline's components (built-ins and plugins)."""

    def __init__(self, enrichers: dict[str, list[Enricher[Any, Any]]], bar_builder: TradeBarBuilder | None,
                 detector_factories: Sequence[DetectorFactory]) -> None:
        self.enrichers = enrichers
        self.bar_builder = bar_builder
        self.detector_factories = detector_factories

    def dump(self, slot: KeySlot) -> bytes:
        """Deterministic bytes of one key's state."""
        enrichers = self.enrichers[slot.kind]
        states = slot.states
        if len(enrichers) == 1:  # the common case: one enricher per kind, no plugin
            components = [(enrichers[0].name, enrichers[0].dump_state(states[0]))]
        else:
            components = [(e.name, e.dump_state(s)) for e, s in zip(enrichers, states, strict=True)]
        if slot.bar_state is not None and self.bar_builder is not None:
            components.append((self.bar_builder.name, self.bar_builder.dump_state(slot.bar_state)))
        detectors = ([(f.name, d.snapshot()) for f, d in zip(self.detector_factories, slot.detectors,
                                                              strict=False)]
                     if slot.detectors else [])
        active = sorted(slot.active) if slot.active else []
        return encode_snapshot(KeySnapshot(SNAPSHOT_VERSION, slot.kind, slot.symbol, slot.interval,
                                           components, detectors, active))

    def new(self, kind: str, symbol: str, interval: str, ident: tuple[str, int, str],
            failures: list[PluginFailed]) -> KeySlot:
        """A fresh key. A plugin that cannot make its state or detector gets None / a detector that
        does nothing (its failure goes to ``failures``): the built-ins of the key run regardless."""
        slot = KeySlot(kind, symbol, interval, ident)
        enrichers = self.enrichers[kind]
        builder = self.bar_builder
        slot.states = [fresh_state(e, failures) for e in enrichers]
        slot.pairs = list(zip(enrichers, slot.states, strict=True))
        if kind == "kline" or (kind == "trade" and builder is not None):
            slot.detectors = [fresh_detector(f, failures) for f in self.detector_factories]
        if kind == "trade" and builder is not None:
            slot.bar_state = builder.new_state()
        return slot

    def load(self, data: bytes, ident: tuple[str, int, str]) -> KeySlot:
        """The key a snapshot describes; raises ``SnapshotError`` on foreign bytes."""
        snap = decode_snapshot(data)
        kind = snap.kind
        slot = KeySlot(kind, snap.symbol, snap.interval, ident)
        saved = dict(snap.components)
        enrichers = self.enrichers[kind]
        try:
            slot.states = [e.load_state(saved[e.name]) if e.name in saved else fresh_state(e)
                           for e in enrichers]
        except ValueError as exc:  # msgspec errors and ring-size checks are ValueErrors
            raise SnapshotError(f"state of {kind} key {ident[2]!r} does not load: {exc}") from None
        slot.pairs = list(zip(enrichers, slot.states, strict=True))
        builder = self.bar_builder
        if kind == "trade" and builder is not None:
            name = builder.name
            slot.bar_state = builder.load_state(saved[name]) if name in saved else builder.new_state()
        if kind == "kline" or (kind == "trade" and builder is not None):
            saved_detectors = dict(snap.detectors)
            slot.detectors = [f.restore(saved_detectors[f.name]) if f.name in saved_detectors
                              else fresh_detector(f) for f in self.detector_factories]
        slot.active = set(snap.active_alerts)
        return slot
