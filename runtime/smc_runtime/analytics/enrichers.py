"""Trade enrichment: rolling indicators per symbol, O(1) per trade.

The state of one symbol is a single ``TradeState`` struct of ring-buffer indicators, so it
snapshots to msgpack bytes and restores exactly.
"""

from __future__ import annotations

import math

import msgspec

from smc_runtime.analytics.interfaces import MessageKind, SimpleState
from smc_runtime.analytics.rolling import Ema, RollingSum, RollingVariance, SessionVwap
from smc_runtime.config import TradeEnrichment
from smc_runtime.messages import Rejection, RejectReason, TradeMessage

_log = math.log
_LARGE_TRADE_MIN_HISTORY = 10


class TradeState(msgspec.Struct, array_like=True):
    """Per-symbol trade indicator state."""

    last_trade_id: int
    last_price: float
    smas: list[RollingSum]
    ema: Ema
    vwap_notional: RollingSum
    vwap_volume: RollingSum
    momentum: RollingSum
    returns: RollingVariance
    volume: RollingSum
    buy_volume: RollingSum
    session: SessionVwap


class EnrichedTrade(msgspec.Struct, omit_defaults=False):
    """The ``enriched_trades`` document (see docs/schemas.md)."""

    symbol: str
    trade_id: int
    trade_time: int
    price: float
    quantity: float
    quote_quantity: float
    side: str
    sma: dict[str, float | None]
    ema: float | None
    vwap: float | None
    session_vwap: float
    momentum: float | None
    roc_pct: float | None
    volatility: float | None
    window_trades: int
    window_volume: float
    buy_volume: float
    sell_volume: float
    volume_imbalance: float
    mean_trade_size: float
    large_trade: bool
    type: str = "enriched_trade"


class TradeEnricher:
    """Rolling SMA/EMA/VWAP/momentum/volatility/aggressor-flow per symbol (windows from config)."""

    name = "trade_indicators"
    kind: MessageKind = "trade"

    def __init__(self, settings: TradeEnrichment) -> None:
        self._settings = settings
        self._sma_keys = [str(n) for n in settings.sma_windows]
        self._large_multiplier = settings.large_trade_multiplier
        self._codec = SimpleState(TradeState)

    def new_state(self) -> TradeState:
        s = self._settings
        return TradeState(
            last_trade_id=-1,
            last_price=0.0,
            smas=[RollingSum.new(n) for n in s.sma_windows],
            ema=Ema.new(s.ema_span),
            vwap_notional=RollingSum.new(s.vwap_window),
            vwap_volume=RollingSum.new(s.vwap_window),
            momentum=RollingSum.new(s.momentum_window + 1),
            returns=RollingVariance.new(s.volatility_window),
            volume=RollingSum.new(s.volume_window),
            buy_volume=RollingSum.new(s.volume_window),
            session=SessionVwap(),
        )

    def dump_state(self, state: TradeState) -> bytes:
        return self._codec.dump(state)

    def load_state(self, data: bytes) -> TradeState:
        return self._codec.load(data)

    def update(self, state: TradeState, message: TradeMessage) -> EnrichedTrade | Rejection:
        trade_id = message.trade_id
        if trade_id <= state.last_trade_id:
            if trade_id == state.last_trade_id:
                return Rejection(RejectReason.DUPLICATE, f"trade id {trade_id} already processed")
            return Rejection(RejectReason.OUT_OF_ORDER,
                             f"trade id {trade_id} behind last processed {state.last_trade_id}")
        price = message.price
        qty = message.quantity
        notional = price * qty
        state.last_trade_id = trade_id

        sma: dict[str, float | None] = {}
        for key, window in zip(self._sma_keys, state.smas, strict=True):
            window.push(price)
            sma[key] = window.mean()
        ema = state.ema.push(price)

        state.vwap_notional.push(notional)
        vwap_volume = state.vwap_volume
        vwap_volume.push(qty)
        vwap = state.vwap_notional.total / vwap_volume.total if vwap_volume.full() else None
        session_vwap = state.session.push(price, qty, message.trade_time)

        momentum_ring = state.momentum
        momentum_ring.push(price)
        past = momentum_ring.oldest()
        momentum = price - past if past is not None else None
        roc = (price / past - 1.0) * 100.0 if past is not None else None

        if state.last_price > 0.0:
            state.returns.push(_log(price / state.last_price))
        state.last_price = price
        volatility = state.returns.stddev()

        volume = state.volume
        prior_mean = volume.partial_mean()
        large = (prior_mean is not None and volume.count >= min(_LARGE_TRADE_MIN_HISTORY, volume.size)
                 and qty > self._large_multiplier * prior_mean)
        volume.push(qty)
        aggressor_buy = not message.buyer_is_maker
        buy_volume = state.buy_volume
        buy_volume.push(qty if aggressor_buy else 0.0)
        total = volume.total
        buys = buy_volume.total
        sells = max(total - buys, 0.0)
        count = volume.count
        return EnrichedTrade(
            symbol=message.symbol,
            trade_id=message.trade_id,
            trade_time=message.trade_time,
            price=price,
            quantity=qty,
            quote_quantity=notional,
            side="buy" if aggressor_buy else "sell",
            sma=sma,
            ema=ema,
            vwap=vwap,
            session_vwap=session_vwap,
            momentum=momentum,
            roc_pct=roc,
            volatility=volatility,
            window_trades=count,
            window_volume=total,
            buy_volume=buys,
            sell_volume=sells,
            volume_imbalance=(buys - sells) / total if total > 0.0 else 0.0,
            mean_trade_size=total / count,
            large_trade=large,
        )
