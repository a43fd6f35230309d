"""price_level: alerts only on crossings, remembered through the pipeline's ``active`` set."""

from __future__ import annotations

from smc_example_plugin.levels import PriceLevelRule

from smc_runtime.analytics.enrichers import EnrichedTrade


def _trade(price: float, trade_id: int = 1) -> EnrichedTrade:
    return EnrichedTrade("BTCUSDT", trade_id, 0, price, 1.0, price, "buy", {}, None, None, price, None, None,
                         None, 1, 1.0, 1.0, 0.0, 0.0, 1.0, False)


def test_alerts_on_each_crossing_and_not_on_first_sight() -> None:
    rule = PriceLevelRule(PriceLevelRule.Params(levels={"btcusdt": [100.0]}, severity="warning"))
    active: set[str] = set()
    prices = [99.0, 99.5, 100.5, 101.0, 99.0, 99.0, 100.0]
    fired = [[a.details["direction"] for a in rule.evaluate("trade", "BTCUSDT", i, _trade(p), active)]
             for i, p in enumerate(prices)]
    assert fired == [[], [], ["above"], [], ["below"], [], ["above"]]


def test_other_symbols_and_foreign_documents_are_ignored() -> None:
    rule = PriceLevelRule(PriceLevelRule.Params(levels={"BTCUSDT": [100.0]}))
    active: set[str] = set()
    assert rule.evaluate("trade", "ETHUSDT", 0, _trade(99.0), active) == []
    assert rule.evaluate("trade", "ETHUSDT", 1, _trade(101.0), active) == []
    assert rule.evaluate("trade", "BTCUSDT", 2, {"price": 1.0}, active) == []
    assert active == set()
