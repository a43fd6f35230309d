"""Alert rules over the context events (liquidity sweep/breakout, breaker retest, trend change),
fed with real engine events so the rules and the event shapes cannot drift apart."""

from __future__ import annotations

from typing import Any

from smc_runtime.analytics.alerts import (
    BreakerRetestRule,
    LiquiditySweepRule,
    TrendChangeRule,
    default_alert_rules,
)
from smc_runtime.analytics.smc.engine import SmcEngine
from smc_runtime.analytics.smc.events import SmcEvent
from smc_runtime.analytics.smc.params import SmcParams
from smc_runtime.config import AlertSettings

from ._oracle import random_series


def _events(params: SmcParams, seed: int = 10, n: int = 3000) -> list[SmcEvent]:
    eng = SmcEngine(params)
    return [e for b in random_series(seed, n, "walk") for e in eng.on_bar(b)]


def _record(ev: SmcEvent, symbol: str = "BTCUSDT") -> dict[str, Any]:
    return {"symbol": symbol, "interval": "1m", "source": "klines", "event": ev.to_dict()}


def _fire(rule: Any, events: list[SmcEvent], symbol: str = "BTCUSDT") -> list[tuple[SmcEvent, Any]]:
    out = []
    for ev in events:
        for alert in rule.evaluate("signal", symbol, ev.timestamp_ms, _record(ev, symbol), set()):
            out.append((ev, alert))
    return out


def test_liquidity_sweep_rule_fires_once_per_swept_pool_with_its_outcome() -> None:
    events = _events(SmcParams(swing_length=3, liquidity_range="abs:0.3", sweep_outcome=True))
    swept = [e for e in events if e.pattern == "liquidity" and e.action == "swept"]
    fired = _fire(LiquiditySweepRule([]), events)
    assert [ev for ev, _ in fired] == swept and swept
    assert {a.details["outcome"] for _, a in fired} == {"sweep", "breakout"}
    for ev, alert in fired:
        assert alert.rule == "liquidity_sweep" and alert.details["swept"] == ev.swept
        assert ev.outcome is not None and alert.message.startswith(ev.outcome)
    # without the outcome (feature off) the rule stays quiet; unwatched symbols too
    assert _fire(LiquiditySweepRule([]), _events(SmcParams(swing_length=3, liquidity_range="abs:0.3"))) == []
    assert _fire(LiquiditySweepRule(["ETHUSDT"]), events) == []


def test_breaker_retest_rule() -> None:
    events = _events(SmcParams(swing_length=4, breakers=True), seed=2, n=1500)
    retests = [e for e in events if e.pattern == "breaker_block" and e.action == "retested"]
    fired = _fire(BreakerRetestRule(["btcusdt"]), events)
    assert [ev for ev, _ in fired] == retests and retests
    assert all(a.details["retest_index"] == ev.retest_index for ev, a in fired)


def test_trend_change_rule() -> None:
    events = _events(SmcParams(swing_length=5, trend=True), n=2000)
    trend = [e for e in events if e.pattern == "trend"]
    fired = _fire(TrendChangeRule([]), events)
    assert [ev for ev, _ in fired] == trend and len(trend) > 3
    assert [a.details["bias"] for _, a in fired] == [e.direction for e in trend]


def test_context_rules_are_opt_in() -> None:
    names = {r.name for r in default_alert_rules(AlertSettings())}
    assert not names & {"liquidity_sweep", "breaker_retest", "trend_change"}
    on = AlertSettings(liquidity_sweeps=True, breaker_retests=True, trend_changes=True)
    assert {"liquidity_sweep", "breaker_retest", "trend_change"} <= {r.name for r in default_alert_rules(on)}
