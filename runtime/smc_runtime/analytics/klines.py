"""Kline metrics per (symbol, interval), and time bars built from trades.

Only closed klines advance state (ATR, previous close); an open kline gets provisional values
computed from the closed history without changing it, so a replay of the same closed klines
always yields the same bars for the detectors.
"""

from __future__ import annotations

import math

import msgspec

from smc_runtime.analytics.interfaces import MessageKind, NonFiniteState, SimpleState
from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.config import InputBounds, KlineEnrichment
from smc_runtime.messages import INTERVAL_MS, Kline, Rejection, RejectReason, TradeMessage


class WilderAverage(msgspec.Struct, array_like=True):
    """Wilder's smoothing seeded with the SMA of the first ``period`` values (TA-Lib ATR core)."""

    period: int
    count: int = 0
    seed: float = 0.0
    value: float = 0.0

    @classmethod
    def new(cls, period: int) -> WilderAverage:
        return cls(period)

    def peek(self, x: float) -> float | None:
        """What ``push(x)`` would return, without changing state (for provisional bars)."""
        count = self.count + 1
        if count > self.period:
            return (self.value * (self.period - 1) + x) / self.period
        if count == self.period:
            return (self.seed + x) / self.period
        return None

    def push(self, x: float) -> float | None:
        result = self.peek(x)
        self.count += 1
        if self.count <= self.period:
            self.seed += x
        if result is not None:
            self.value = result
        return result


class KlineState(msgspec.Struct, array_like=True):
    last_closed_start: int
    prev_close: float
    atr: WilderAverage


class KlineMetrics(msgspec.Struct):
    """The ``kline_metrics`` document (see docs/schemas.md)."""

    symbol: str
    interval: str
    start_time: int
    close_time: int
    closed: bool
    open: float
    high: float
    low: float
    close: float
    volume: float
    range: float
    body: float
    body_ratio: float | None
    upper_wick_ratio: float | None
    lower_wick_ratio: float | None
    log_return: float | None
    true_range: float
    atr: float | None
    typical_price: float
    taker_buy_share: float | None
    vwap: float | None
    trades: int
    type: str = "kline_metrics"


def true_range(high: float, low: float, prev_close: float | None) -> float:
    """Wilder's true range; without a previous close it is the bar's range."""
    if prev_close is None:
        return high - low
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


class KlineEnricher:
    """Candle anatomy, log return, true range and ATR (Wilder, TA-Lib seeding) per (symbol, interval)."""

    name = "kline_metrics"
    kind: MessageKind = "kline"

    def __init__(self, settings: KlineEnrichment, bounds: InputBounds | None = None) -> None:
        self._period = settings.atr_period
        self._codec = SimpleState(KlineState)
        max_jump = (bounds or InputBounds()).max_time_jump_ms
        # a jump bound per interval: at least two intervals (a monthly kline steps 31 days)
        self._max_jump = {interval: max(max_jump, 2 * ms) for interval, ms in INTERVAL_MS.items()}

    def new_state(self) -> KlineState:
        return KlineState(last_closed_start=-1, prev_close=0.0, atr=WilderAverage.new(self._period))

    def dump_state(self, state: KlineState) -> bytes:
        return self._codec.dump(state)

    def load_state(self, data: bytes) -> KlineState:
        return self._codec.load(data)

    def update(self, state: KlineState, message: Kline) -> KlineMetrics | Rejection:
        k = message.kline
        if k.start_time <= state.last_closed_start:
            if k.start_time == state.last_closed_start and k.closed:
                return Rejection(RejectReason.DUPLICATE, f"kline {k.interval} @{k.start_time} already closed")
            return Rejection(RejectReason.OUT_OF_ORDER, f"kline {k.interval} @{k.start_time} not after the "
                                                        f"last closed one @{state.last_closed_start}")
        last = state.last_closed_start
        if last >= 0 and k.start_time - last > self._max_jump[k.interval]:
            return Rejection(RejectReason.TIME_JUMP,
                             f"kline {k.interval} @{k.start_time} is {k.start_time - last} ms after the last "
                             f"closed one (bound {self._max_jump[k.interval]} ms)")
        o, h, lo, c = k.open, k.high, k.low, k.close
        prev_close = state.prev_close if state.prev_close > 0.0 else None
        tr = true_range(h, lo, prev_close)
        if prev_close is None:
            atr = None  # TA-Lib's ATR starts from the second bar's true range
        elif k.closed:
            atr = state.atr.push(tr)
            if not math.isfinite(state.atr.value + state.atr.seed):
                raise NonFiniteState(f"ATR of {message.symbol} {k.interval} not finite")
        else:
            atr = state.atr.peek(tr)
        log_return = math.log(c / prev_close) if prev_close is not None else None
        if k.closed:
            state.last_closed_start = k.start_time
            state.prev_close = c
        rng = h - lo
        return KlineMetrics(
            symbol=message.symbol, interval=k.interval, start_time=k.start_time, close_time=k.close_time,
            closed=k.closed, open=o, high=h, low=lo, close=c, volume=k.volume, range=rng, body=c - o,
            body_ratio=abs(c - o) / rng if rng > 0.0 else None,
            upper_wick_ratio=(h - max(o, c)) / rng if rng > 0.0 else None,
            lower_wick_ratio=(min(o, c) - lo) / rng if rng > 0.0 else None,
            log_return=log_return, true_range=tr, atr=atr, typical_price=(h + lo + c) / 3.0,
            taker_buy_share=k.taker_buy_volume / k.volume if k.volume > 0.0 else None,
            vwap=k.quote_volume / k.volume if k.volume > 0.0 and k.quote_volume > 0.0 else None,
            trades=k.trades,
        )


def kline_bar(message: Kline) -> Bar:
    k = message.kline
    return Bar(k.start_time, k.open, k.high, k.low, k.close, k.volume)


def interval_label(interval_ms: int) -> str:
    """60_000 -> ``1m``; the label used in state keys and signal records."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if interval_ms % size == 0:
            return f"{interval_ms // size}{unit}"
    return f"{interval_ms}ms"


class TradeBarState(msgspec.Struct, array_like=True):
    """The bar being built; ``start < 0`` means none open yet."""

    start: int = -1
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    volume: float = 0.0


class TradeBarBuilder:
    """Aggregates trades into time bars of ``interval_ms`` (bar time = bucket open, UTC-aligned).

    A bar closes when the first trade of a later bucket arrives; buckets without trades yield no
    bar (the detectors see consecutive bars, as with a kline feed that skips empty intervals).
    """

    name = "trade_bars"

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self.label = interval_label(interval_ms)
        self._codec = SimpleState(TradeBarState)

    def new_state(self) -> TradeBarState:
        return TradeBarState()

    def dump_state(self, state: TradeBarState) -> bytes:
        return self._codec.dump(state)

    def load_state(self, data: bytes) -> TradeBarState:
        return self._codec.load(data)

    def update(self, state: TradeBarState, trade: TradeMessage) -> Bar | None:
        """Add a trade; returns the bar it closed, if any."""
        start = trade.trade_time - trade.trade_time % self.interval_ms
        price = trade.price
        closed: Bar | None = None
        if start != state.start:
            if start < state.start:
                return None  # late trade for an already closed bar: ignored for bars
            if state.start >= 0:
                closed = self._bar(state)
            state.start = start
            state.open = state.high = state.low = state.close = price
            state.volume = trade.quantity
            return closed
        if price > state.high:
            state.high = price
        elif price < state.low:
            state.low = price
        state.close = price
        state.volume += trade.quantity
        return None

    def flush(self, state: TradeBarState) -> Bar | None:
        """Close the open bar at end of stream (replay); live streams never call this."""
        if state.start < 0:
            return None
        bar = self._bar(state)
        state.start = -1
        return bar

    @staticmethod
    def _bar(state: TradeBarState) -> Bar:
        return Bar(state.start, state.open, state.high, state.low, state.close, state.volume)
