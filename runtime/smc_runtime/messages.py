"""Typed Binance-style market-data messages and their decoding.

Decoding never raises: a record is either a typed struct or a ``Rejection`` carrying a stable
reason code and a human message, so the pipeline can turn it into a dead letter. The structs are
msgspec ``Struct``s decoded straight from bytes (no intermediate dict, no pydantic on the hot path);
Binance's one-letter keys are renamed to readable attribute names.

Bounds (docs/runtime.md, "Hostile input"): ids and times are integers in ``[0, 2**63-1]``, times
before the year 10000 (checked by msgspec while decoding, at no extra cost); prices, quantities,
volumes and the levels per book side within ``Bounds`` (configurable, ``enrichment.bounds``);
symbols match ``SYMBOL_PATTERN`` (no state-key separator ``|``, no control characters, at most 32
characters); kline intervals are Binance's. Nesting deeper than the parser's recursion limit is
``too_deep``. Duplicate keys in a JSON object: the last occurrence wins (msgspec's rule), except
for the type tag ``e``, where a second, different value is rejected (``unknown_type``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, NamedTuple, Protocol, TypeAlias

import msgspec

DEFAULT_MAX_MESSAGE_BYTES: Final = 1_048_576
MAX_INT64: Final = 2**63 - 1
MAX_TIME_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last instant datetime knows
SYMBOL_PATTERN: Final = r"[A-Z0-9][A-Z0-9_.-]{0,31}"
_SYMBOL_RE: Final = re.compile(SYMBOL_PATTERN)

PriceLevel: TypeAlias = tuple[float, float]
Id: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT64)]
TimeMs: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=MAX_TIME_MS)]
Interval: TypeAlias = Literal["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d",
                              "3d", "1w", "1M"]
INTERVAL_MS: Final[dict[str, int]] = {
    "1s": 1000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000, "1M": 31 * 86_400_000,
}


class Bounds(NamedTuple):
    """Value bounds of ``decode`` (``enrichment.bounds`` in the config; these are its defaults)."""

    min_price: float = 1e-12
    max_price: float = 1e15
    min_quantity: float = 1e-12
    max_quantity: float = 1e15
    max_volume: float = 1e18
    max_book_levels: int = 5000


DEFAULT_BOUNDS: Final = Bounds()


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
    OUT_OF_RANGE = "out_of_range"
    INVALID_SYMBOL = "invalid_symbol"
    INVALID_INTERVAL = "invalid_interval"
    TOO_DEEP = "too_deep"
    TOO_MANY_LEVELS = "too_many_levels"
    ID_JUMP = "id_jump"
    TIME_JUMP = "time_jump"
    STATE_KEY_LIMIT = "state_key_limit"
    PROCESSING_ERROR = "processing_error"
    NON_FINITE_STATE = "non_finite_state"
    PLUGIN_ERROR = "plugin_error"


class Rejection(msgspec.Struct, frozen=True):
    """Why a record was not processed: ``reason`` is a ``RejectReason`` value, ``message`` is for humans."""

    reason: str
    message: str


class Trade(msgspec.Struct, tag_field="e", tag="trade",
            rename={"symbol": "s", "trade_id": "t", "price": "p", "quantity": "q", "trade_time": "T",
                    "buyer_is_maker": "m", "event_time": "E"}):
    """A raw trade (``<symbol>@trade``). ``buyer_is_maker`` true means the aggressor sold."""

    symbol: str
    trade_id: Id
    price: float
    quantity: float
    trade_time: TimeMs
    buyer_is_maker: bool
    event_time: TimeMs = 0


class AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade",
               rename={"symbol": "s", "trade_id": "a", "price": "p", "quantity": "q", "trade_time": "T",
                       "buyer_is_maker": "m", "event_time": "E", "first_trade_id": "f",
                       "last_trade_id": "l"}):
    """An aggregate trade (``<symbol>@aggTrade``); same attribute names as ``Trade``."""

    symbol: str
    trade_id: Id
    price: float
    quantity: float
    trade_time: TimeMs
    buyer_is_maker: bool
    event_time: TimeMs = 0
    first_trade_id: Id = 0
    last_trade_id: Id = 0


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate",
                  rename={"symbol": "s", "first_update_id": "U", "final_update_id": "u", "bids": "b",
                          "asks": "a", "event_time": "E"}):
    """A diff of the order book covering update ids ``first_update_id..final_update_id``.

    A quantity of 0 removes the level."""

    symbol: str
    first_update_id: Id
    final_update_id: Id
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    event_time: TimeMs = 0


class DepthSnapshot(msgspec.Struct, rename={"last_update_id": "lastUpdateId"}):
    """A partial-depth snapshot; the payload has no symbol, so it comes from the key or topic."""

    last_update_id: Id
    bids: list[PriceLevel]
    asks: list[PriceLevel]
    symbol: str = ""
    event_time: TimeMs = 0


class KlineBody(msgspec.Struct,
                rename={"start_time": "t", "close_time": "T", "symbol": "s", "interval": "i", "open": "o",
                        "high": "h", "low": "l", "close": "c", "volume": "v", "trades": "n",
                        "closed": "x", "quote_volume": "q", "taker_buy_volume": "V",
                        "taker_buy_quote_volume": "Q"}):
    start_time: TimeMs
    close_time: TimeMs
    interval: Interval
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool
    symbol: str = ""
    trades: Id = 0
    quote_volume: float = 0.0
    taker_buy_volume: float = 0.0
    taker_buy_quote_volume: float = 0.0


class Kline(msgspec.Struct, tag_field="e", tag="kline",
            rename={"symbol": "s", "kline": "k", "event_time": "E"}):
    """A kline (candlestick) update; only ``kline.closed`` ones are final bars."""

    symbol: str
    kline: KlineBody
    event_time: TimeMs = 0


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
    if "out of range" in error:  # msgspec: a float literal beyond float64 (1e400)
        return Rejection(RejectReason.NON_FINITE, error)
    if "`$.e`" in error or "required field `e`" in error:
        return Rejection(RejectReason.UNKNOWN_TYPE, f"unknown message type: {error}")
    if "Expected `int` >=" in error or "Expected `int` <=" in error:
        return Rejection(RejectReason.OUT_OF_RANGE, error)
    if "Invalid enum value" in error and "`$.k.i`" in error:
        return Rejection(RejectReason.INVALID_INTERVAL, f"unknown kline interval: {error}")
    return Rejection(RejectReason.SCHEMA, error)


# Symbols seen valid: most records repeat a few hundred symbols, so a set lookup replaces the regex.
# Bounded, so a flood of random symbols cannot grow it; beyond the bound the regex runs every time.
_VALID_SYMBOLS: set[str] = set()
_VALID_SYMBOLS_MAX: Final = 65_536


def check_symbol(symbol: str) -> Rejection | None:
    """None if ``symbol`` matches ``SYMBOL_PATTERN``, else why not."""
    if symbol in _VALID_SYMBOLS:
        return None
    if _SYMBOL_RE.fullmatch(symbol) is None:
        shown = symbol if len(symbol) <= 40 else f"{symbol[:40]}... ({len(symbol)} characters)"
        return Rejection(RejectReason.INVALID_SYMBOL,
                         f"symbol {shown!r} does not match {SYMBOL_PATTERN} (upper-case letters, digits, "
                         "'_', '.', '-'; at most 32 characters)")
    if len(_VALID_SYMBOLS) < _VALID_SYMBOLS_MAX:
        _VALID_SYMBOLS.add(symbol)
    return None


class Decoder(Protocol):
    def __call__(self, value: bytes | None, topic: str = "", key: bytes | None = None, *,
                 max_bytes: int | None = None, bounds: Bounds | None = None) -> Message | Rejection: ...


def make_decoder(max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, bounds: Bounds = DEFAULT_BOUNDS) -> Decoder:
    """``decode`` with its limits bound once: ``decoder(value, topic, key)``. The Pipeline's hot path;
    the limits live in closure cells (a local-variable load), not in a tuple or attributes.
    ``max_bytes``/``bounds`` given to a call override the bound ones for that call (slower)."""
    default_max_bytes, default_bounds = max_bytes, bounds
    lo_p, hi_p, lo_q, hi_q, _, max_levels = bounds
    valid_symbols = _VALID_SYMBOLS
    event_decode = _EVENT_DECODER.decode
    validators = _VALIDATORS

    def decoder(value: bytes | None, topic: str = "", key: bytes | None = None, *,
                max_bytes: int | None = None, bounds: Bounds | None = None) -> Message | Rejection:
        if max_bytes is not None or bounds is not None:
            return _decoder_for(default_max_bytes if max_bytes is None else max_bytes,
                                default_bounds if bounds is None else bounds)(value, topic, key)
        if not value:  # None or empty
            return Rejection(RejectReason.INVALID_JSON, "empty record value (tombstone)")
        if len(value) > default_max_bytes:
            return Rejection(RejectReason.OVERSIZED,
                             f"{len(value)} bytes exceeds the limit of {default_max_bytes}")
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
                message = event_decode(value)
        except msgspec.ValidationError as exc:
            return _classify_validation(str(exc))
        except msgspec.DecodeError as exc:
            return Rejection(RejectReason.INVALID_JSON, str(exc))
        except RecursionError:
            return Rejection(RejectReason.TOO_DEEP, "JSON nested deeper than the parser's recursion limit")
        kind = type(message)
        if kind is Trade:  # the hot path: _check_trade's test, inline (NaN fails it too)
            price, qty = message.price, message.quantity  # type: ignore[union-attr]
            if lo_p <= price <= hi_p and lo_q <= qty <= hi_q and message.symbol in valid_symbols:
                return message
        elif kind is DepthUpdate:  # the next most frequent: _check_book's test for a diff, inline
            bids, asks = message.bids, message.asks  # type: ignore[union-attr]
            if (len(bids) <= max_levels and len(asks) <= max_levels and message.symbol in valid_symbols
                    and message.first_update_id <= message.final_update_id):  # type: ignore[union-attr]
                for price, qty in bids:
                    if not (lo_p <= price <= hi_p and (lo_q <= qty <= hi_q or qty == 0.0)):
                        break
                else:
                    for price, qty in asks:
                        if not (lo_p <= price <= hi_p and (lo_q <= qty <= hi_q or qty == 0.0)):
                            break
                    else:
                        return message
        problem = validators[kind](message, default_bounds)
        return message if problem is None else problem

    return decoder


_DECODERS: dict[tuple[int, Bounds], Decoder] = {}


def _decoder_for(max_bytes: int, bounds: Bounds) -> Decoder:
    decoder = _DECODERS.get((max_bytes, bounds))
    if decoder is None:
        if len(_DECODERS) > 64:
            _DECODERS.clear()
        decoder = _DECODERS[(max_bytes, bounds)] = make_decoder(max_bytes, bounds)
    return decoder


def _check_number(what: str, x: float, lo: float, hi: float, zero_ok: bool = False) -> Rejection | None:
    if lo <= x <= hi or (zero_ok and x == 0.0):
        return None
    if not _isfinite(x):
        return Rejection(RejectReason.NON_FINITE, f"{what} {x} not finite")
    if x < 0.0 or (x == 0.0 and not zero_ok):
        return Rejection(RejectReason.NON_POSITIVE, f"{what} {x} must be > 0")
    return Rejection(RejectReason.OUT_OF_RANGE, f"{what} {x} outside [{lo:g}, {hi:g}]")


def _check_trade(msg: TradeMessage, bounds: Bounds) -> Rejection | None:
    return (_check_number("price", msg.price, bounds[0], bounds[1])
            or _check_number("quantity", msg.quantity, bounds[2], bounds[3])
            or check_symbol(msg.symbol))


def _check_levels(levels: list[PriceLevel], side: str, zero_ok: bool, bounds: Bounds) -> Rejection | None:
    if len(levels) > bounds.max_book_levels:
        return Rejection(RejectReason.TOO_MANY_LEVELS,
                         f"{len(levels)} {side} levels, more than max_book_levels {bounds.max_book_levels}")
    lo_p, hi_p, lo_q, hi_q = bounds[0], bounds[1], bounds[2], bounds[3]
    for price, qty in levels:
        if not (lo_p <= price <= hi_p and (lo_q <= qty <= hi_q or (zero_ok and qty == 0.0))):
            return (_check_number(f"{side} level price", price, lo_p, hi_p)
                    or _check_number(f"{side} level quantity", qty, lo_q, hi_q, zero_ok))
    return None


def _check_kline(msg: Kline, bounds: Bounds) -> Rejection | None:
    k = msg.kline
    lo_p, hi_p, max_volume = bounds.min_price, bounds.max_price, bounds.max_volume
    max_quote = max_volume * hi_p
    problem = (_check_number("open", k.open, lo_p, hi_p) or _check_number("high", k.high, lo_p, hi_p)
               or _check_number("low", k.low, lo_p, hi_p) or _check_number("close", k.close, lo_p, hi_p)
               or _check_number("volume", k.volume, 0.0, max_volume)
               or _check_number("taker buy volume", k.taker_buy_volume, 0.0, max_volume)
               or _check_number("quote volume", k.quote_volume, 0.0, max_quote)
               or _check_number("taker buy quote volume", k.taker_buy_quote_volume, 0.0, max_quote))
    if problem is not None:
        return problem
    if k.high < max(k.open, k.close, k.low) or k.low > min(k.open, k.close):
        return Rejection(RejectReason.SCHEMA, f"kline high/low inconsistent: o={k.open} h={k.high} "
                                              f"l={k.low} c={k.close}")
    if k.close_time < k.start_time:
        return Rejection(RejectReason.SCHEMA, "kline close_time before start_time")
    return check_symbol(msg.symbol)


def _check_book(msg: DepthUpdate | DepthSnapshot, bounds: Bounds) -> Rejection | None:
    zero_ok = type(msg) is DepthUpdate
    problem = (_check_levels(msg.bids, "bid", zero_ok, bounds)
               or _check_levels(msg.asks, "ask", zero_ok, bounds) or check_symbol(msg.symbol))
    if problem is not None:
        return problem
    if isinstance(msg, DepthUpdate):
        if msg.final_update_id < msg.first_update_id:
            return Rejection(RejectReason.SCHEMA, "depthUpdate u < U")
        return None
    if msg.bids and msg.asks:
        best_bid = max(p for p, _ in msg.bids)
        best_ask = min(p for p, _ in msg.asks)
        if best_bid >= best_ask:
            return Rejection(RejectReason.CROSSED_BOOK, f"best bid {best_bid} >= best ask {best_ask}")
    return None


_VALIDATORS: Final[dict[type, Callable[[Any, Bounds], Rejection | None]]] = {
    Trade: _check_trade, AggTrade: _check_trade, Kline: _check_kline, DepthUpdate: _check_book,
    DepthSnapshot: _check_book,
}


# Decode and validate one record value: ``decode(value, topic=..., key=..., max_bytes=..., bounds=...)``
# returns the typed message or why it was rejected. (After _VALIDATORS, which it binds.)
decode: Final = make_decoder()
