"""Pipeline routing: outputs per role, dead letters, detectors, plugins, state bookkeeping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from smc_runtime.analytics.interfaces import BarDetector, DetectorEvent
from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.config import ProcessorSettings
from smc_runtime.messages import TradeMessage
from smc_runtime.pipeline import OutputRecord, Pipeline
from smc_runtime.sample_data import generate_market_data
from smc_runtime.state import SnapshotError

TRADES = "market_data.binance.btcusdt.trades"
BOOK = "market_data.binance.btcusdt.orderbook"
KLINES = "market_data.binance.btcusdt.klines"


def _settings(**overrides: Any) -> ProcessorSettings:
    raw: dict[str, Any] = {"consumer_group": "g", "input_topics": [TRADES, BOOK, KLINES]}
    raw.update(overrides)
    return ProcessorSettings.model_validate(raw)


def _trade(trade_id: int, price: float = 100.0, qty: float = 1.0, t: int = 0) -> bytes:
    return json.dumps({"e": "trade", "E": t, "s": "BTCUSDT", "t": trade_id, "p": str(price), "q": str(qty),
                       "T": t, "m": False}).encode()


def _kline(start: int, closed: bool, close: float = 10.0) -> bytes:
    return json.dumps({"e": "kline", "E": start, "s": "BTCUSDT", "k": {
        "t": start, "T": start + 59_999, "s": "BTCUSDT", "i": "1m", "o": "10", "h": str(max(close, 10) + 1),
        "l": str(min(close, 10) - 1), "c": str(close), "v": "5", "n": 3, "x": closed, "q": "50", "V": "2",
        "Q": "20"}}).encode()


class FakeEvent(msgspec.Struct):
    pattern: str
    action: str
    direction: int
    index: int
    timestamp_ms: int
    level: float
    broken_index: int | None

    def to_dict(self) -> dict[str, object]:
        return msgspec.structs.asdict(self)


class FakeDetector:
    """Emits a BOS broken on every third bar; state = bar count."""

    def __init__(self, bars: int = 0) -> None:
        self.bars = bars

    def on_bar(self, bar: Bar) -> Sequence[DetectorEvent]:
        self.bars += 1
        if self.bars % 3:
            return []
        return [FakeEvent("bos", "broken", 1, self.bars - 1, bar.timestamp_ms, bar.close, self.bars)]

    def finalize(self) -> Sequence[DetectorEvent]:
        return [FakeEvent("swing", "final", -1, self.bars, 0, 0.0, None)]

    def snapshot(self) -> bytes:
        return str(self.bars).encode()


class FakeFactory:
    name = "fake"

    def create(self) -> BarDetector:
        return FakeDetector()

    def restore(self, data: bytes) -> BarDetector:
        return FakeDetector(int(data))


def _roles(outputs: list[OutputRecord]) -> list[str]:
    return [o.role for o in outputs]


def test_trade_produces_enriched_record_keyed_by_symbol() -> None:
    pipeline = Pipeline(_settings())
    [out] = pipeline.process(_trade(1), topic=TRADES, partition=0, offset=0, timestamp_ms=5)
    assert out.role == "enriched_trades" and out.key == b"BTCUSDT"
    doc = json.loads(out.value)
    assert doc["type"] == "enriched_trade" and doc["price"] == 100.0 and doc["side"] == "buy"


def test_rejection_becomes_dead_letter_with_original_bytes_and_headers() -> None:
    pipeline = Pipeline(_settings())
    raw = b'{"e":"trade","s":"BTCUSDT","p":"-1"'
    [out] = pipeline.process(raw, topic=TRADES, partition=3, offset=42, timestamp_ms=777, key=b"BTCUSDT")
    assert out.role == "dead_letters" and out.value == raw and out.key == b"BTCUSDT"
    headers = dict(out.headers)
    assert headers["reason"] == b"invalid_json" and headers["error"]
    assert (headers["source_topic"], headers["source_partition"], headers["source_offset"],
            headers["source_timestamp"]) == (TRADES.encode(), b"3", b"42", b"777")


def test_duplicate_and_out_of_order_trades_are_dead_lettered() -> None:
    pipeline = Pipeline(_settings())
    pipeline.process(_trade(5), topic=TRADES, partition=0, offset=0, timestamp_ms=0)
    [dup] = pipeline.process(_trade(5), topic=TRADES, partition=0, offset=1, timestamp_ms=0)
    [old] = pipeline.process(_trade(4), topic=TRADES, partition=0, offset=2, timestamp_ms=0)
    assert dict(dup.headers)["reason"] == b"duplicate"
    assert dict(old.headers)["reason"] == b"out_of_order"


def test_oversized_limit_comes_from_config() -> None:
    pipeline = Pipeline(_settings(enrichment={"max_message_bytes": 64}))
    [out] = pipeline.process(_trade(1) + b" " * 64, topic=TRADES, partition=0, offset=0, timestamp_ms=0)
    assert dict(out.headers)["reason"] == b"oversized"


def test_closed_klines_feed_detectors_and_structure_alerts() -> None:
    pipeline = Pipeline(_settings(), detectors=[FakeFactory()])
    outputs: list[OutputRecord] = []
    for i in range(3):
        outputs += pipeline.process(_kline(i * 60_000, closed=False), topic=KLINES, partition=0, offset=2 * i,
                                    timestamp_ms=i)
        outputs += pipeline.process(_kline(i * 60_000, closed=True), topic=KLINES, partition=0,
                                    offset=2 * i + 1, timestamp_ms=i)
    assert _roles(outputs).count("kline_metrics") == 6
    signals = [json.loads(o.value) for o in outputs if o.role == "smc_signals"]
    assert len(signals) == 1  # only closed klines count as bars: 3 bars -> one event
    assert signals[0]["interval"] == "1m" and signals[0]["event"]["pattern"] == "bos"
    alerts = [json.loads(o.value) for o in outputs if o.role == "alerts"]
    assert [a["rule"] for a in alerts] == ["structure_break"]
    assert pipeline.state_keys(KLINES, 0) == ["BTCUSDT|1m"]


def test_bars_from_trades_feed_detectors() -> None:
    settings = _settings(enrichment={"klines": {"bars_from_trades": True, "trade_bar_interval_ms": 1000}})
    pipeline = Pipeline(settings, detectors=[FakeFactory()])
    signals = []
    for i in range(10):
        for o in pipeline.process(_trade(i, t=i * 1000), topic=TRADES, partition=0, offset=i, timestamp_ms=i):
            if o.role == "smc_signals":
                signals.append(json.loads(o.value))
    # trades at 0..9 s close bars 0..8 s when the next second starts: 9 bars -> 3 events
    assert [s["event"]["timestamp_ms"] for s in signals] == [2000, 5000, 8000]
    assert all(s["source"] == "trades" and s["interval"] == "1s" for s in signals)
    final = [json.loads(o.value) for o in pipeline.finalize() if o.role == "smc_signals"]
    assert [s["event"]["pattern"] for s in final] == ["swing"]  # flushed bar 9 + finalize


def test_plugin_enricher_is_a_peer_of_the_builtins() -> None:
    class CountState(msgspec.Struct):
        count: int = 0

    class CountEnricher:
        name = "count"
        kind = "trade"

        def new_state(self) -> CountState:
            return CountState()

        def update(self, state: CountState, message: TradeMessage) -> dict[str, object]:
            state.count += 1
            return {"symbol": message.symbol, "count": state.count}

        def dump_state(self, state: CountState) -> bytes:
            return msgspec.msgpack.encode(state)

        def load_state(self, data: bytes) -> CountState:
            return msgspec.msgpack.decode(data, type=CountState)

    pipeline = Pipeline(_settings(), enrichers=[CountEnricher()], detectors=[])
    pipeline.process(_trade(1), topic=TRADES, partition=0, offset=0, timestamp_ms=0)
    restored = Pipeline(_settings(), enrichers=[CountEnricher()], detectors=[])
    snapshot = pipeline.snapshot(TRADES, 0, "BTCUSDT")
    assert snapshot is not None
    restored.restore(TRADES, 0, "BTCUSDT", snapshot)
    [out] = restored.process(_trade(2), topic=TRADES, partition=0, offset=1, timestamp_ms=0)
    assert out.role == "enriched_trades" and json.loads(out.value) == {"symbol": "BTCUSDT", "count": 2}


def test_touched_state_keys_and_drop_partition() -> None:
    pipeline = Pipeline(_settings(), detectors=[])
    pipeline.process(_trade(1), topic=TRADES, partition=0, offset=0, timestamp_ms=0)
    pipeline.process(_trade(1), topic=TRADES, partition=1, offset=0, timestamp_ms=0)
    pipeline.process(b'{"lastUpdateId":1,"bids":[["1","1"]],"asks":[["2","1"]]}', topic=BOOK, partition=0,
                     offset=0, timestamp_ms=0)
    touched = pipeline.take_touched()
    assert touched == {(TRADES, 0, "BTCUSDT"), (TRADES, 1, "BTCUSDT"), (BOOK, 0, "BTCUSDT|book")}
    assert pipeline.take_touched() == set()
    assert pipeline.state_keys(BOOK, 0) == ["BTCUSDT|book"]
    pipeline.drop_partition(TRADES, 1)
    assert pipeline.state_keys(TRADES, 1) == [] and pipeline.snapshot(TRADES, 1, "BTCUSDT") is None
    # state is per source partition: partition 0 continues, partition 1 starts fresh
    [p0] = pipeline.process(_trade(1), topic=TRADES, partition=0, offset=1, timestamp_ms=0)
    [p1] = pipeline.process(_trade(1), topic=TRADES, partition=1, offset=1, timestamp_ms=0)
    assert dict(p0.headers)["reason"] == b"duplicate" and p1.role == "enriched_trades"


def test_restore_rejects_foreign_bytes() -> None:
    with pytest.raises(SnapshotError):
        Pipeline(_settings()).restore(TRADES, 0, "BTCUSDT", b"not a snapshot")


def test_same_input_gives_byte_identical_outputs() -> None:
    records = list(generate_market_data(["BTCUSDT", "ETHUSDT"], trades_per_symbol=400, seed=3,
                                        malformed_every=50))

    def run() -> list[OutputRecord]:
        pipeline = Pipeline(_settings(detection={"swing_length": 3}))
        out: list[OutputRecord] = []
        for offset, r in enumerate(records):
            out += pipeline.process(r.value, topic=r.topic, partition=0, offset=offset,
                                    timestamp_ms=r.timestamp_ms, key=r.key)
        return out + pipeline.finalize()

    first, second = run(), run()
    assert first == second
    roles = set(_roles(first))
    assert {"enriched_trades", "orderbook_metrics", "kline_metrics", "dead_letters"} <= roles
