"""Typed Binance-style market-data messages and their decoding.

Decoding never raises: a record is either a typed struct or a ``Rejection`` carrying a stable
reason code and a human message, so the pipeline can turn it into a dead letter. The structs are
msgspec ``Struct``s decoded straight from bytes (no intermediate dict, no pydantic on the hot path);
Binance's one-letter keys are renamed to readable attribute names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Final, TypeAlias

import msgspec

DEFAULT_MAX_MESSAGE_BYTES: Final = 1_048_576

PriceLevel: TypeAlias = tuple[float, float]


class RejectReason(StrEnum):
    """Reason codes of dead letters; stable strings (they land in a Kafka header)."""

    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    NON_FINITE = "non_finite"
    NON_POSITIVE = "non_positive"
    CROSSED_BOOK = "crossed_book"
    OUT_OF_ORDER = "out_of_order"
    DUPLICATE = "duplicate"
    UNKNOWN_TYPE = "unknown_type"
    OVERSIZED = "oversized"


class Rejection(msgspec.Struct, frozen=True):
    """Why a record was not processed: ``reason`` is a ``RejectReason`` value, ``message`` is for humans."""

    reason: str
    message: str


class Trade(msgspec.Struct, tag_field="e", tag="trade",
            rename={"symbol": "s", "trade_id": "t", "price": "p", "quantity": "q", "trade_time": "T",
                    "buyer_is_maker": "m", "event_time": "E"}):
    """A raw trade (``<symbol>@trade``). ``buyer_is_maker`` true means the aggressor sold."""

    symbol: str
    trade_id: int
    price: float
    quantity: float
    trade_time: int
    buyer_is_maker: bool
    event_time: int = 0


class AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade",
               rename={"symbol": "s", "trade_id": "a", "price": "p", "quantity": "q", "trade_time": "T",
                       "buyer_is_maker": "m", "event_time": "E", "first_trade_id": "f",
                       "last_trade_id": "l"}):
    """An aggregate trade (``<symbol>@aggTrade``); same attribute names as ``Trade``."""

    symbol: str
    trade_id: int
    price: float
    quantity: float
    trade_time: int
    buyer_is_maker: bool
    event_time: int = 0
    first_trade_id: int = 0
    last_trade_id: int = 0


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate",
                  rename={"symbol": "s", "first_update_id": "U", "final_update_id": "u", "bids": "b",
                          "asks": "a", "event_time": "E"}):
    """A diff of the order book covering update ids ``first_update_id..final_update_id``.

    A quantity of 0 removes the level."""

    symbol: str
    first_update_id: int
    final_update_id: int
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    event_time: int = 0


class DepthSnapshot(msgspec.Struct, rename={"last_update_id": "lastUpdateId"}):
    """A partial-depth snapshot; the payload has no symbol, so it comes from the key or topic."""

    last_update_id: int
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    symbol: str = ""
    event_time: int = 0


class KlineBody(msgspec.Struct,
                rename={"start_time": "t", "close_time": "T", "symbol": "s", "interval": "i", "open": "o",
                        "high": "h", "low": "l", "close": "c", "volume": "v", "trades": "n",
                        "closed": "x", "quote_volume": "q", "taker_buy_volume": "V",
                        "taker_buy_quote_volume": "Q"}):
    start_time: int
    close_time: int
    interval: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool
    symbol: str = ""
    trades: int = 0
    quote_volume: float = 0.0
    taker_buy_volume: float = 0.0
    taker_buy_quote_volume: float = 0.0


class Kline(msgspec.Struct, tag_field="e", tag="kline",
            rename={"symbol": "s", "kline": "k", "event_time": "E"}):
    """A kline (candlestick) update; only ``kline.closed`` ones are final bars."""

    symbol: str
    kline: KlineBody
    event_time: int = 0


TradeMessage: TypeAlias = Trade | AggTrade
Message: TypeAlias = Trade | AggTrade | DepthUpdate | DepthSnapshot | Kline

_EVENT_DECODER: Final = msgspec.json.Decoder(Trade | AggTrade | DepthUpdate | Kline, strict=False)
_SNAPSHOT_DECODER: Final = msgspec.json.Decoder(DepthSnapshot, strict=False)
_SNAPSHOT_MARKER: Final = b'"lastUpdateId"'
_isfinite = math.isfinite
_INF = math.inf


def symbol_from_topic(topic: str) -> str:
    """``market_data.<exchange>.<symbol>.<type>`` -> ``SYMBOL``; empty if the topic has another shape."""
    parts = topic.split(".")
    if len(parts) == 4 and parts[0] == "market_data":
        return parts[2].upper()
    return ""


def _classify_validation(error: str) -> Rejection:
    if "out of range" in error:
        return Rejection(RejectReason.NON_FINITE, error)
    if "`$.e`" in error or "required field `e`" in error:
        return Rejection(RejectReason.UNKNOWN_TYPE, f"unknown message type: {error}")
    return Rejection(RejectReason.SCHEMA, error)


def decode(value: bytes | None, *, topic: str = "", key: bytes | None = None,
           max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message | Rejection:
    """Decode and validate one record value; returns the typed message or why it was rejected."""
    if not value:  # None or empty
        return Rejection(RejectReason.INVALID_JSON, "empty record value (tombstone)")
    if len(value) > max_bytes:
        return Rejection(RejectReason.OVERSIZED, f"{len(value)} bytes exceeds the limit of {max_bytes}")
    message: Message
    try:
        if value.find(_SNAPSHOT_MARKER) >= 0:  # cheaper than `in` (which first tries int conversion)
            snapshot = _SNAPSHOT_DECODER.decode(value)
            symbol = key.decode("utf-8", "replace") if key else symbol_from_topic(topic)
            if not symbol:
                return Rejection(RejectReason.SCHEMA,
                                 "depth snapshot without symbol: no record key and topic is not "
                                 "market_data.<exchange>.<symbol>.<type>")
            snapshot.symbol = symbol.upper()
            message = snapshot
        else:
            message = _EVENT_DECODER.decode(value)
    except msgspec.ValidationError as exc:
        return _classify_validation(str(exc))
    except msgspec.DecodeError as exc:
        return Rejection(RejectReason.INVALID_JSON, str(exc))
    if type(message) is Trade:  # the hot path: _check_trade's fast test, inline
        price, qty = message.price, message.quantity
        if 0.0 < price < _INF and 0.0 < qty < _INF and message.symbol:
            return message
    problem = _VALIDATORS[type(message)](message)
    return message if problem is None else problem


def _check_trade(msg: TradeMessage) -> Rejection | None:
    price, qty = msg.price, msg.quantity
    if 0.0 < price < _INF and 0.0 < qty < _INF and msg.symbol:
        return None  # fast path: one chained comparison (NaN fails it too)
    if not (_isfinite(price) and _isfinite(qty)):
        return Rejection(RejectReason.NON_FINITE, f"price {price} / quantity {qty} not finite")
    if price <= 0.0 or qty <= 0.0:
        return Rejection(RejectReason.NON_POSITIVE, f"price {price} and quantity {qty} must be > 0")
    if not msg.symbol:
        return Rejection(RejectReason.SCHEMA, "empty symbol")
    return None


def _check_levels(levels: list[PriceLevel], side: str, allow_zero_qty: bool) -> Rejection | None:
    for price, qty in levels:
        if not (_isfinite(price) and _isfinite(qty)):
            return Rejection(RejectReason.NON_FINITE, f"{side} level {price}/{qty} not finite")
        if price <= 0.0 or qty < 0.0 or (qty == 0.0 and not allow_zero_qty):
            return Rejection(RejectReason.NON_POSITIVE, f"{side} level price {price} quantity {qty}")
    return None


def _check_kline(msg: Kline) -> Rejection | None:
    k = msg.kline
    values = (k.open, k.high, k.low, k.close, k.volume, k.quote_volume, k.taker_buy_volume)
    if not all(_isfinite(v) for v in values):
        return Rejection(RejectReason.NON_FINITE, f"kline values not finite: {values}")
    if min(k.open, k.high, k.low, k.close) <= 0.0 or min(k.volume, k.quote_volume, k.taker_buy_volume) < 0:
        return Rejection(RejectReason.NON_POSITIVE, "kline prices must be > 0 and volumes >= 0")
    if k.high < max(k.open, k.close, k.low) or k.low > min(k.open, k.close):
        return Rejection(RejectReason.SCHEMA, f"kline high/low inconsistent: o={k.open} h={k.high} "
                                              f"l={k.low} c={k.close}")
    if k.close_time < k.start_time:
        return Rejection(RejectReason.SCHEMA, "kline close_time before start_time")
    if not msg.symbol:
        return Rejection(RejectReason.SCHEMA, "empty symbol")
    return None


def _check_book(msg: DepthUpdate | DepthSnapshot) -> Rejection | None:
    zero_ok = type(msg) is DepthUpdate
    problem = _check_levels(msg.bids, "bid", zero_ok) or _check_levels(msg.asks, "ask", zero_ok)
    if problem is not None:
        return problem
    if isinstance(msg, DepthUpdate):
        if msg.final_update_id < msg.first_update_id:
            return Rejection(RejectReason.SCHEMA, "depthUpdate u < U")
        if not msg.symbol:
            return Rejection(RejectReason.SCHEMA, "empty symbol")
        return None
    if msg.bids and msg.asks:
        best_bid = max(p for p, _ in msg.bids)
        best_ask = min(p for p, _ in msg.asks)
        if best_bid >= best_ask:
            return Rejection(RejectReason.CROSSED_BOOK, f"best bid {best_bid} >= best ask {best_ask}")
    return None


_VALIDATORS: Final[dict[type, Callable[[Any], Rejection | None]]] = {
    Trade: _check_trade, AggTrade: _check_trade, Kline: _check_kline, DepthUpdate: _check_book,
    DepthSnapshot: _check_book,
}


def validate(msg: Message) -> Rejection | None:
    """Value checks a schema cannot express (finite, positive, uncrossed, consistent)."""
    return _VALIDATORS[type(msg)](msg)
