"""Decoding of every message type and a rejection test per reason code."""

from __future__ import annotations

import json

import pytest

from smc_runtime.messages import (
    AggTrade,
    DepthSnapshot,
    DepthUpdate,
    Kline,
    Rejection,
    RejectReason,
    Trade,
    decode,
    symbol_from_topic,
)

TOPIC = "market_data.binance.btcusdt.trades"


def _trade(**overrides: object) -> bytes:
    doc: dict[str, object] = {"e": "trade", "E": 2, "s": "BTCUSDT", "t": 7, "p": "65000.10", "q": "0.25",
                              "T": 1, "m": True, "M": True}
    doc.update(overrides)
    return json.dumps(doc).encode()


def _kline(**k_overrides: object) -> bytes:
    k: dict[str, object] = {"t": 0, "T": 59_999, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 9, "o": "10",
                            "c": "11",
                            "h": "12", "l": "9", "v": "100", "n": 9, "x": True, "q": "1050", "V": "40",
                            "Q": "420", "B": "0"}
    k.update(k_overrides)
    return json.dumps({"e": "kline", "E": 60_000, "s": "BTCUSDT", "k": k}).encode()


def test_trade_decodes_to_typed_struct() -> None:
    msg = decode(_trade(), topic=TOPIC)
    assert isinstance(msg, Trade)
    assert (msg.symbol, msg.trade_id, msg.price, msg.quantity, msg.trade_time, msg.buyer_is_maker) == (
        "BTCUSDT", 7, 65000.10, 0.25, 1, True)


def test_agg_trade_uses_aggregate_id() -> None:
    raw = json.dumps({"e": "aggTrade", "E": 1, "s": "ETHUSDT", "a": 99, "p": "3000", "q": "2", "f": 1, "l": 4,
                      "T": 5, "m": False}).encode()
    msg = decode(raw)
    assert isinstance(msg, AggTrade)
    assert (msg.trade_id, msg.first_trade_id, msg.last_trade_id, msg.buyer_is_maker) == (99, 1, 4, False)


def test_snapshot_symbol_from_key_then_topic() -> None:
    raw = b'{"lastUpdateId":10,"bids":[["99.5","1"]],"asks":[["100.5","2"]]}'
    from_key = decode(raw, topic="whatever", key=b"ethusdt")
    from_topic = decode(raw, topic="market_data.binance.solusdt.orderbook")
    assert isinstance(from_key, DepthSnapshot) and from_key.symbol == "ETHUSDT"
    assert isinstance(from_topic, DepthSnapshot) and from_topic.symbol == "SOLUSDT"
    assert from_topic.last_update_id == 10 and from_topic.bids == [(99.5, 1.0)]
    no_symbol = decode(raw, topic="other")
    assert isinstance(no_symbol, Rejection) and no_symbol.reason == RejectReason.SCHEMA


def test_numeric_prices_are_accepted_like_strings() -> None:
    msg = decode(_trade(p=7, q=1.5))
    assert isinstance(msg, Trade) and (msg.price, msg.quantity) == (7.0, 1.5)


def test_depth_update_and_kline() -> None:
    diff = decode(b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":8,"b":[["1","0"]],"a":[]}')
    assert isinstance(diff, DepthUpdate) and (diff.first_update_id, diff.final_update_id) == (5, 8)
    kline = decode(_kline())
    assert isinstance(kline, Kline) and kline.kline.closed and kline.kline.taker_buy_volume == 40.0


def test_symbol_from_topic() -> None:
    assert symbol_from_topic("market_data.binance.btcusdt.trades") == "BTCUSDT"
    assert symbol_from_topic("trades") == ""


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"e":"trade","s":', RejectReason.INVALID_JSON),
        (b"", RejectReason.INVALID_JSON),
        (_trade(s=5), RejectReason.SCHEMA),
        (json.dumps({"e": "trade", "s": "X"}).encode(), RejectReason.SCHEMA),
        (b"[1,2]", RejectReason.SCHEMA),
        (_trade(p="NaN"), RejectReason.NON_FINITE),
        (_trade(q="inf"), RejectReason.NON_FINITE),
        (_trade(p="1e999"), RejectReason.NON_FINITE),
        (_trade(p="0"), RejectReason.NON_POSITIVE),
        (_trade(q="-1"), RejectReason.NON_POSITIVE),
        (b'{"lastUpdateId":1,"bids":[["101","1"]],"asks":[["100","1"]]}', RejectReason.CROSSED_BOOK),
        (b'{"lastUpdateId":1,"bids":[["99","0"]],"asks":[["100","1"]]}', RejectReason.NON_POSITIVE),
        (b'{"e":"bookTicker","s":"X"}', RejectReason.UNKNOWN_TYPE),
        (b'{"s":"X","p":"1"}', RejectReason.UNKNOWN_TYPE),
        (_kline(h="8"), RejectReason.SCHEMA),
        (_kline(v="-1"), RejectReason.NON_POSITIVE),
        (b'{"e":"depthUpdate","s":"X","U":9,"u":8,"b":[],"a":[]}', RejectReason.SCHEMA),
    ],
)
def test_rejections_carry_reason_and_message(raw: bytes, reason: RejectReason) -> None:
    result = decode(raw, topic="market_data.binance.x.orderbook")
    assert isinstance(result, Rejection), result
    assert result.reason == reason
    assert result.message


def test_oversized_is_checked_before_parsing() -> None:
    raw = _trade()
    result = decode(raw, max_bytes=len(raw) - 1)
    assert isinstance(result, Rejection) and result.reason == RejectReason.OVERSIZED
    assert isinstance(decode(raw, max_bytes=len(raw)), Trade)
