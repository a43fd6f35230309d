"""Differential tests: streaming indicators vs TA-Lib on long random series (1e-9 relative).

Each trade indicator has one implementation, ``TradeEnricher.update``: the tests feed it trades and
compare its documents; the kline enricher's ATR is ``klines.WilderAverage``."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from smc_runtime.analytics.enrichers import EnrichedTrade, TradeEnricher, TradeState
from smc_runtime.analytics.klines import KlineEnricher, WilderAverage
from smc_runtime.config import KlineEnrichment, TradeEnrichment
from smc_runtime.messages import Kline, KlineBody, Trade

N = 20_000
RTOL = 1e-9


def _prices(seed: int, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))


def _compare(ours: list[float | None], reference: np.ndarray) -> None:
    ours_arr = np.array([np.nan if v is None else v for v in ours])
    assert np.array_equal(np.isnan(ours_arr), np.isnan(reference)), "warm-up differs"
    mask = ~np.isnan(reference)
    assert mask.sum() > 0
    np.testing.assert_allclose(ours_arr[mask], reference[mask], rtol=RTOL, atol=0.0)


def _enrich(settings: TradeEnrichment, prices: np.ndarray) -> tuple[list[EnrichedTrade], TradeState]:
    """``TradeEnricher.update`` over one trade per price (ids 1, 2, ...; one second apart)."""
    enricher = TradeEnricher(settings)
    state = enricher.new_state()
    docs = []
    for i, p in enumerate(prices):
        doc = enricher.update(state, Trade(symbol="X", trade_id=i + 1, price=float(p), quantity=1.0,
                                           trade_time=1_700_000_000_000 + i * 1000, buyer_is_maker=False))
        assert isinstance(doc, EnrichedTrade), doc
        docs.append(doc)
    return docs, state


@pytest.mark.parametrize("period", [2, 5, 20, 200])
@pytest.mark.parametrize("seed", [1, 2])
def test_sma(period: int, seed: int) -> None:
    prices = _prices(seed)
    docs, _ = _enrich(TradeEnrichment(sma_windows=[period]), prices)
    _compare([d.sma[str(period)] for d in docs], talib.SMA(prices, timeperiod=period))


@pytest.mark.parametrize("period", [2, 10, 50])
def test_ema(period: int) -> None:
    prices = _prices(3)
    docs, _ = _enrich(TradeEnrichment(ema_span=period), prices)
    _compare([d.ema for d in docs], talib.EMA(prices, timeperiod=period))


@pytest.mark.parametrize("period", [5, 50])
def test_stddev_of_log_returns(period: int) -> None:
    prices = _prices(4)
    docs, _ = _enrich(TradeEnrichment(volatility_window=period), prices)
    returns = np.diff(np.log(prices))
    reference = np.concatenate([[np.nan], talib.STDDEV(returns, timeperiod=period, nbdev=1.0)])
    _compare([d.volatility for d in docs], reference)


@pytest.mark.parametrize("period", [1, 14, 30])
def test_wilder_atr(period: int) -> None:
    rng = np.random.default_rng(5)
    close = _prices(5)
    high = close * (1 + rng.uniform(0, 0.01, N))
    low = close * (1 - rng.uniform(0, 0.01, N))
    enricher = KlineEnricher(KlineEnrichment(atr_period=period))
    state = enricher.new_state()
    ours = []
    for i in range(N):
        o = float(close[i - 1]) if i else float(close[0])
        body = KlineBody(start_time=i * 60_000, close_time=i * 60_000 + 59_999, interval="1m", open=o,
                         high=max(float(high[i]), o), low=min(float(low[i]), o), close=float(close[i]),
                         volume=1.0, closed=True)
        high[i], low[i] = body.high, body.low
        out = enricher.update(state, Kline(symbol="X", kline=body))
        assert not isinstance(out, Exception) and hasattr(out, "atr")
        ours.append(out.atr)  # type: ignore[union-attr]
    _compare(ours, talib.ATR(high, low, close, timeperiod=period))


def test_wilder_peek_does_not_change_state() -> None:
    wilder = WilderAverage.new(3)
    for x in (1.0, 2.0, 3.0):
        wilder.push(x)
    before = wilder.value
    assert wilder.peek(10.0) == pytest.approx((before * 2 + 10.0) / 3)
    assert wilder.value == before


def test_trade_enricher_matches_talib_and_numpy() -> None:
    rng = np.random.default_rng(6)
    prices = np.round(_prices(6), 2)
    qtys = np.round(rng.lognormal(0, 1, N), 5) + 1e-5
    makers = rng.random(N) < 0.5
    settings = TradeEnrichment(sma_windows=[5, 50], vwap_window=30, ema_span=12, momentum_window=10,
                               volatility_window=20, volume_window=40)
    enricher = TradeEnricher(settings)
    state = enricher.new_state()
    docs = []
    for i in range(N):
        trade = Trade(symbol="X", trade_id=i, price=float(prices[i]), quantity=float(qtys[i]),
                      trade_time=1_700_000_000_000 + i * 1000, buyer_is_maker=bool(makers[i]))
        doc = enricher.update(state, trade)
        assert not hasattr(doc, "reason")
        docs.append(doc)
    _compare([d.sma["5"] for d in docs], talib.SMA(prices, 5))  # type: ignore[union-attr]
    _compare([d.sma["50"] for d in docs], talib.SMA(prices, 50))  # type: ignore[union-attr]
    _compare([d.ema for d in docs], talib.EMA(prices, 12))  # type: ignore[union-attr]
    _compare([d.momentum for d in docs], talib.MOM(prices, 10))  # type: ignore[union-attr]
    _compare([d.roc_pct for d in docs], talib.ROC(prices, 10))  # type: ignore[union-attr]
    vol = np.concatenate([[np.nan], talib.STDDEV(np.diff(np.log(prices)), 20)])
    _compare([d.volatility for d in docs], vol)  # type: ignore[union-attr]
    notional = prices * qtys
    vwap = talib.SUM(notional, 30) / talib.SUM(qtys, 30)
    _compare([d.vwap for d in docs], vwap)  # type: ignore[union-attr]
    buy = np.where(makers, 0.0, qtys)
    full = np.arange(N) >= 39
    ours_buy = np.array([d.buy_volume for d in docs])  # type: ignore[union-attr]
    np.testing.assert_allclose(ours_buy[full], talib.SUM(buy, 40)[full], rtol=1e-9, atol=1e-12)
    # large-trade flag: size > multiplier * mean of the preceding window
    for i in range(100, 400):
        prior = qtys[max(0, i - 40):i].mean()
        assert docs[i].large_trade == (qtys[i] > settings.large_trade_multiplier * prior)  # type: ignore[union-attr]


def test_running_sums_stay_exact_over_long_runs() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(1e6, 1e5, 200_000)
    _, state = _enrich(TradeEnrichment(sma_windows=[64]), values)
    assert state.sma_sums[0] == pytest.approx(float(np.sum(values[-64:])), rel=1e-12)


def test_session_vwap_resets_at_utc_midnight() -> None:
    day = 86_400_000
    trades = [(100.0, 1.0, day - 1), (200.0, 1.0, day - 1), (300.0, 2.0, day), (100.0, 2.0, day + 5)]
    enricher = TradeEnricher(TradeEnrichment())
    state = enricher.new_state()
    vwaps = []
    for i, (price, qty, time_ms) in enumerate(trades):
        doc = enricher.update(state, Trade(symbol="X", trade_id=i + 1, price=price, quantity=qty,
                                           trade_time=time_ms, buyer_is_maker=False))
        assert isinstance(doc, EnrichedTrade), doc
        vwaps.append(doc.session_vwap)
    assert vwaps == [100.0, 150.0, 300.0, 200.0]  # the third trade starts a new UTC day
