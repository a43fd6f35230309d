"""Kline metrics, kline sequencing, and time bars built from trades."""

from __future__ import annotations

import math

import pytest

from smc_runtime.analytics.klines import KlineEnricher, KlineMetrics, TradeBarBuilder, interval_label
from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.config import KlineEnrichment
from smc_runtime.messages import Kline, KlineBody, Rejection, RejectReason, Trade


def _kline(start: int, o: float, h: float, lo: float, c: float, closed: bool = True) -> Kline:
    body = KlineBody(start_time=start, close_time=start + 59_999, interval="1m", open=o, high=h, low=lo,
                     close=c, volume=10.0, closed=closed, trades=4, quote_volume=1005.0, taker_buy_volume=4.0)
    return Kline(symbol="BTCUSDT", kline=body)


def test_candle_anatomy() -> None:
    enricher = KlineEnricher(KlineEnrichment())
    state = enricher.new_state()
    out = enricher.update(state, _kline(0, 100.0, 110.0, 90.0, 105.0))
    assert isinstance(out, KlineMetrics)
    assert (out.range, out.body, out.body_ratio) == (20.0, 5.0, 0.25)
    assert out.upper_wick_ratio == pytest.approx(0.25) and out.lower_wick_ratio == pytest.approx(0.5)
    assert out.typical_price == pytest.approx(305.0 / 3)
    assert (out.taker_buy_share, out.vwap, out.log_return, out.true_range) == (0.4, 100.5, None, 20.0)
    second = enricher.update(state, _kline(60_000, 105.0, 106.0, 104.0, 104.5))
    assert isinstance(second, KlineMetrics)
    assert second.log_return == pytest.approx(math.log(104.5 / 105.0))
    assert second.true_range == 2.0


def test_open_klines_do_not_advance_state() -> None:
    enricher = KlineEnricher(KlineEnrichment(atr_period=1))
    state = enricher.new_state()
    enricher.update(state, _kline(0, 100.0, 101.0, 99.0, 100.0))
    provisional = enricher.update(state, _kline(60_000, 100.0, 130.0, 99.0, 120.0, closed=False))
    assert isinstance(provisional, KlineMetrics) and provisional.atr == 31.0
    before = enricher.dump_state(state)
    enricher.update(state, _kline(60_000, 100.0, 131.0, 99.0, 121.0, closed=False))
    assert enricher.dump_state(state) == before
    final = enricher.update(state, _kline(60_000, 100.0, 102.0, 99.0, 101.0))
    assert isinstance(final, KlineMetrics) and final.atr == 3.0


def test_duplicate_and_out_of_order_klines() -> None:
    enricher = KlineEnricher(KlineEnrichment())
    state = enricher.new_state()
    enricher.update(state, _kline(60_000, 1.0, 2.0, 0.5, 1.5))
    dup = enricher.update(state, _kline(60_000, 1.0, 2.0, 0.5, 1.5))
    late = enricher.update(state, _kline(0, 1.0, 2.0, 0.5, 1.5))
    late_open = enricher.update(state, _kline(60_000, 1.0, 2.0, 0.5, 1.5, closed=False))
    assert isinstance(dup, Rejection) and dup.reason == RejectReason.DUPLICATE
    assert isinstance(late, Rejection) and late.reason == RejectReason.OUT_OF_ORDER
    assert isinstance(late_open, Rejection) and late_open.reason == RejectReason.OUT_OF_ORDER


def _trade(i: int, t: int, price: float, qty: float = 1.0) -> Trade:
    return Trade(symbol="X", trade_id=i, price=price, quantity=qty, trade_time=t, buyer_is_maker=False)


def test_trade_bars_close_on_the_next_bucket_and_skip_empty_ones() -> None:
    builder = TradeBarBuilder(60_000)
    state = builder.new_state()
    closed = [builder.update(state, t) for t in (
        _trade(1, 5_000, 10.0), _trade(2, 20_000, 12.0), _trade(3, 59_999, 9.0, 2.0),
        _trade(4, 185_000, 11.0),  # skips the 60 s bucket entirely
        _trade(5, 190_000, 11.5))]
    assert closed[:3] == [None, None, None] and closed[4] is None
    assert closed[3] == Bar(0, 10.0, 12.0, 9.0, 9.0, 4.0)
    assert builder.flush(state) == Bar(180_000, 11.0, 11.5, 11.0, 11.5, 2.0)
    assert builder.flush(state) is None


def test_interval_labels() -> None:
    assert [interval_label(ms) for ms in (1000, 60_000, 300_000, 3_600_000, 86_400_000, 1500)] == [
        "1s", "1m", "5m", "1h", "1d", "1500ms"]
