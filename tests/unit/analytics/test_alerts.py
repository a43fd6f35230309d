"""Alert rules: what triggers them, edge-triggering, configuration switches."""

from __future__ import annotations

from typing import Any

from smc_runtime.analytics.alerts import (
    ImbalanceRule,
    LargeTradeRule,
    OrderBookGapRule,
    SpreadBlowoutRule,
    StructureBreakRule,
    default_alert_rules,
)
from smc_runtime.analytics.enrichers import TradeEnricher
from smc_runtime.analytics.orderbook import BookMetrics, SequenceGap
from smc_runtime.config import AlertSettings, TradeEnrichment
from smc_runtime.messages import Trade


def _book(spread_bps: float = 1.0, imbalance: float = 0.0, gap: SequenceGap | None = None,
          stale: bool = False) -> BookMetrics:
    return BookMetrics(symbol="BTCUSDT", update_id=1, event_time=0, source="diff", stale=stale, gap=gap,
                       bid_levels=1, ask_levels=1, best_bid=99.0, best_ask=101.0, best_bid_qty=1.0,
                       best_ask_qty=1.0, mid=100.0, spread=2.0, spread_bps=spread_bps, microprice=100.0,
                       top_imbalance=imbalance, depth_bid={}, depth_ask={}, depth_imbalance={})


def test_spread_blowout_alerts_on_rising_edge_only() -> None:
    rule = SpreadBlowoutRule(50.0)
    active: set[str] = set()
    fired = [len(rule.evaluate("orderbook", "BTCUSDT", i, _book(spread), active))
             for i, spread in enumerate([10.0, 60.0, 70.0, 20.0, 80.0])]
    assert fired == [0, 1, 0, 0, 1]


def test_imbalance_both_sides() -> None:
    rule = ImbalanceRule(0.8)
    active: set[str] = set()
    bid_heavy = rule.evaluate("orderbook", "X", 1, _book(imbalance=0.9), active)
    assert bid_heavy and bid_heavy[0].details["imbalance"] == 0.9
    assert rule.evaluate("orderbook", "X", 2, _book(imbalance=0.1), active) == []
    ask_heavy = rule.evaluate("orderbook", "X", 3, _book(imbalance=-0.85), active)
    assert ask_heavy and "ask-heavy" in ask_heavy[0].message
    assert rule.evaluate("orderbook", "X", 4, _book(imbalance=0.79), active) == []


def test_gap_alert_is_critical() -> None:
    alerts = OrderBookGapRule().evaluate("orderbook", "X", 5, _book(gap=SequenceGap(10, 14), stale=True),
                                         set())
    assert len(alerts) == 1 and alerts[0].severity == "critical" and alerts[0].timestamp_ms == 5
    assert OrderBookGapRule().evaluate("orderbook", "X", 5, _book(), set()) == []


def test_large_trade_rule_follows_enricher_flag() -> None:
    enricher = TradeEnricher(TradeEnrichment(volume_window=20, large_trade_multiplier=5.0))
    state = enricher.new_state()
    rule = LargeTradeRule()
    fired = []
    for i, qty in enumerate([1.0] * 15 + [4.9, 7.0]):
        doc = enricher.update(state, Trade(symbol="X", trade_id=i, price=10.0, quantity=qty, trade_time=i,
                                           buyer_is_maker=False))
        fired.append(len(rule.evaluate("trade", "X", i, doc, set())))
    assert fired[-2:] == [0, 1] and sum(fired) == 1


def _signal(pattern: str, action: str, broken: int | None, symbol: str = "BTCUSDT") -> dict[str, Any]:
    return {"symbol": symbol, "interval": "1m", "source": "klines",
            "event": {"pattern": pattern, "action": action, "direction": 1, "index": 3, "level": 10.0,
                      "broken_index": broken}}


def test_structure_break_on_watched_symbols() -> None:
    rule = StructureBreakRule(["btcusdt"])
    assert len(rule.evaluate("signal", "BTCUSDT", 1, _signal("bos", "broken", 7), set())) == 1
    assert len(rule.evaluate("signal", "BTCUSDT", 1, _signal("choch", "formed", 7), set())) == 1
    assert rule.evaluate("signal", "ETHUSDT", 1, _signal("bos", "broken", 7, "ETHUSDT"), set()) == []
    assert rule.evaluate("signal", "BTCUSDT", 1, _signal("bos", "formed", None), set()) == []
    assert rule.evaluate("signal", "BTCUSDT", 1, _signal("bos", "retracted", 7), set()) == []
    assert rule.evaluate("signal", "BTCUSDT", 1, _signal("fvg", "formed", None), set()) == []
    watch_all = StructureBreakRule([])
    assert len(watch_all.evaluate("signal", "ETHUSDT", 1, _signal("bos", "broken", 7, "ETHUSDT"), set())) == 1


def test_settings_switch_rules_off() -> None:
    names = {r.name for r in default_alert_rules(AlertSettings(structure_breaks=False, large_trades=False,
                                                               orderbook_gaps=False))}
    assert names == {"spread_blowout", "extreme_imbalance"}
    assert {r.name for r in default_alert_rules(AlertSettings())} == {
        "structure_break", "spread_blowout", "extreme_imbalance", "large_trade", "orderbook_gap"}
