"""Built-in alert rules over enriched documents and SMC events (configured by ``AlertSettings``).

Condition rules (spread blow-out, extreme imbalance) alert on the rising edge only: the
condition's name goes into the per-key ``active`` set and leaves it when the condition clears,
so a wide spread lasting 10,000 updates is one alert, not 10,000.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smc_runtime.analytics.enrichers import EnrichedTrade
from smc_runtime.analytics.interfaces import Alert, AlertRule
from smc_runtime.analytics.orderbook import BookMetrics
from smc_runtime.config import AlertSettings


def _edge(active: set[str], name: str, condition: bool) -> bool:
    """True when ``condition`` just became true; keeps ``active`` in step."""
    if condition:
        if name in active:
            return False
        active.add(name)
        return True
    active.discard(name)
    return False


class _SmcEventRule:
    """A rule over SMC events of some ``patterns`` (and ``action``, when set) on the watched symbols
    (an empty watch list watches every symbol): ``evaluate`` finds the event, each rule's ``alert``
    decides and words it."""

    name: str
    kinds = frozenset({"signal"})
    patterns: tuple[str, ...]
    action: str | None = None

    def __init__(self, watched_symbols: list[str]) -> None:
        self._watched = {s.upper() for s in watched_symbols}

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any,
                 active: set[str]) -> list[Alert]:
        if kind != "signal" or not isinstance(record, Mapping):
            return []
        if self._watched and symbol not in self._watched:
            return []
        event = record.get("event")
        if not isinstance(event, Mapping) or event.get("pattern") not in self.patterns:
            return []
        if self.action is not None and event.get("action") != self.action:
            return []
        return self.alert(symbol, timestamp_ms, record, event)

    def alert(self, symbol: str, timestamp_ms: int, record: Mapping[str, Any],
              event: Mapping[str, Any]) -> list[Alert]:
        raise NotImplementedError


class StructureBreakRule(_SmcEventRule):
    """A confirmed break of structure (BOS) or change of character (CHoCH) on a watched symbol."""

    name = "structure_break"
    patterns = ("bos", "choch")

    def alert(self, symbol: str, timestamp_ms: int, record: Mapping[str, Any],
              event: Mapping[str, Any]) -> list[Alert]:
        if event.get("action") == "retracted" or event.get("broken_index") is None:
            return []
        if event.get("action") not in ("formed", "broken"):
            return []
        pattern = str(event["pattern"]).upper()
        direction = "bullish" if event.get("direction", 0) > 0 else "bearish"
        return [Alert(self.name, "warning", symbol, timestamp_ms,
                      f"{direction} {pattern} on {symbol} {record.get('interval')} "
                      f"at level {event.get('level')}",
                      {"interval": record.get("interval"), "pattern": event["pattern"],
                       "direction": event.get("direction"), "level": event.get("level"),
                       "index": event.get("index"), "broken_index": event.get("broken_index")})]


class LiquiditySweepRule(_SmcEventRule):
    """A liquidity pool (equal highs/lows) taken out, classified by the sweeping bar's close:
    ``sweep`` (wick through, close back inside: a rejection) or ``breakout`` (close beyond).
    Needs ``detection.sweep_outcome``."""

    name = "liquidity_sweep"
    patterns = ("liquidity",)
    action = "swept"

    def alert(self, symbol: str, timestamp_ms: int, record: Mapping[str, Any],
              event: Mapping[str, Any]) -> list[Alert]:
        if event.get("outcome") is None:
            return []
        side = "highs" if event.get("direction", 0) > 0 else "lows"
        outcome = str(event["outcome"])
        return [Alert(self.name, "warning", symbol, timestamp_ms,
                      f"{outcome} of equal {side} on {symbol} {record.get('interval')} "
                      f"at level {event.get('level')}",
                      {"interval": record.get("interval"), "outcome": outcome,
                       "direction": event.get("direction"), "level": event.get("level"),
                       "index": event.get("index"), "swept": event.get("swept")})]


class BreakerRetestRule(_SmcEventRule):
    """Price came back into a breaker block (a mitigated order block with flipped polarity) from
    its new side without reclaiming it. Needs ``detection.breakers``."""

    name = "breaker_retest"
    patterns = ("breaker_block",)
    action = "retested"

    def alert(self, symbol: str, timestamp_ms: int, record: Mapping[str, Any],
              event: Mapping[str, Any]) -> list[Alert]:
        direction = "bullish" if event.get("direction", 0) > 0 else "bearish"
        return [Alert(self.name, "warning", symbol, timestamp_ms,
                      f"{direction} breaker retest on {symbol} {record.get('interval')} "
                      f"[{event.get('bottom')}, {event.get('top')}]",
                      {"interval": record.get("interval"), "direction": event.get("direction"),
                       "top": event.get("top"), "bottom": event.get("bottom"), "index": event.get("index"),
                       "retest_index": event.get("retest_index"), "scope": event.get("scope")})]


class TrendChangeRule(_SmcEventRule):
    """The swing trend bias flipped (a close beyond the last final swing high/low). Needs
    ``detection.trend``."""

    name = "trend_change"
    patterns = ("trend",)
    action = "formed"

    def alert(self, symbol: str, timestamp_ms: int, record: Mapping[str, Any],
              event: Mapping[str, Any]) -> list[Alert]:
        bias = "bullish" if event.get("direction", 0) > 0 else "bearish"
        return [Alert(self.name, "info", symbol, timestamp_ms,
                      f"{symbol} {record.get('interval')} trend turned {bias} "
                      f"(close beyond swing level {event.get('level')})",
                      {"interval": record.get("interval"), "bias": event.get("direction"),
                       "level": event.get("level"), "swing_index": event.get("swing_index"),
                       "index": event.get("index")})]


class SpreadBlowoutRule:
    """The spread widens beyond ``spread_bps_threshold`` basis points."""

    name = "spread_blowout"
    kinds = frozenset({"orderbook"})

    def __init__(self, threshold_bps: float) -> None:
        self._threshold = threshold_bps

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any,
                 active: set[str]) -> list[Alert]:
        if not isinstance(record, BookMetrics) or record.spread_bps is None or record.stale:
            return []
        if not _edge(active, self.name, record.spread_bps > self._threshold):
            return []
        return [Alert(self.name, "warning", symbol, timestamp_ms,
                      f"{symbol} spread {record.spread_bps:.2f} bps > {self._threshold:g} bps",
                      {"spread_bps": record.spread_bps, "best_bid": record.best_bid,
                       "best_ask": record.best_ask, "threshold_bps": self._threshold})]


class ImbalanceRule:
    """Top-of-book imbalance beyond +/- ``imbalance_threshold``."""

    name = "extreme_imbalance"
    kinds = frozenset({"orderbook"})

    def __init__(self, threshold: float) -> None:
        self._threshold = threshold

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any,
                 active: set[str]) -> list[Alert]:
        if not isinstance(record, BookMetrics) or record.top_imbalance is None or record.stale:
            return []
        imbalance = record.top_imbalance
        if not _edge(active, self.name, abs(imbalance) >= self._threshold):
            return []
        side = "bid" if imbalance > 0 else "ask"
        return [Alert(self.name, "info", symbol, timestamp_ms,
                      f"{symbol} order book {side}-heavy: imbalance {imbalance:+.3f}",
                      {"imbalance": imbalance, "threshold": self._threshold})]


class LargeTradeRule:
    """A trade flagged large by the trade enricher (size vs rolling mean)."""

    name = "large_trade"
    kinds = frozenset({"trade"})

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any,
                 active: set[str]) -> list[Alert]:
        if not isinstance(record, EnrichedTrade) or not record.large_trade:
            return []
        return [Alert(self.name, "info", symbol, timestamp_ms,
                      f"{symbol} large {record.side} trade {record.quantity:g} @ {record.price:g} "
                      f"(window mean {record.mean_trade_size:g})",
                      {"trade_id": record.trade_id, "price": record.price, "quantity": record.quantity,
                       "side": record.side, "mean_trade_size": record.mean_trade_size})]


class OrderBookGapRule:
    """A sequence gap in the diff stream: the local book is stale until the next snapshot."""

    name = "orderbook_gap"
    kinds = frozenset({"orderbook"})

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any,
                 active: set[str]) -> list[Alert]:
        if not isinstance(record, BookMetrics) or record.gap is None:
            return []
        gap = record.gap
        return [Alert(self.name, "critical", symbol, timestamp_ms,
                      f"{symbol} order book gap: expected update {gap.expected_first_update_id}, got "
                      f"{gap.received_first_update_id}; book stale until next snapshot",
                      {"expected_first_update_id": gap.expected_first_update_id,
                       "received_first_update_id": gap.received_first_update_id})]


def default_alert_rules(settings: AlertSettings) -> list[AlertRule]:
    """The built-in rules switched on by ``settings``."""
    rules: list[AlertRule] = []
    if settings.structure_breaks:
        rules.append(StructureBreakRule(settings.watched_symbols))
    if settings.liquidity_sweeps:
        rules.append(LiquiditySweepRule(settings.watched_symbols))
    if settings.breaker_retests:
        rules.append(BreakerRetestRule(settings.watched_symbols))
    if settings.trend_changes:
        rules.append(TrendChangeRule(settings.watched_symbols))
    rules.append(SpreadBlowoutRule(settings.spread_bps_threshold))
    rules.append(ImbalanceRule(settings.imbalance_threshold))
    if settings.large_trades:
        rules.append(LargeTradeRule())
    if settings.orderbook_gaps:
        rules.append(OrderBookGapRule())
    return rules
