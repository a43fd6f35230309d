"""Per-message cost of decoding, of each enricher and of ``Pipeline.process``.

Run: ``.venv/bin/python -m benchmarks.bench_enrichment [--n 50000]``. Prints one table (us per
message, best of ``--repeat`` runs). Inputs come from the seeded sample generator, so runs are
comparable. Target: trade enrichment including decode <= 5 us/message.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import orjson
import pydantic

from smc_runtime.analytics.enrichers import TradeEnricher
from smc_runtime.analytics.klines import KlineEnricher
from smc_runtime.analytics.orderbook import OrderBookEnricher
from smc_runtime.config import ProcessorSettings
from smc_runtime.messages import DepthSnapshot, DepthUpdate, Kline, Trade, decode
from smc_runtime.pipeline import Pipeline
from smc_runtime.sample_data import MarketRecord, generate_market_data

TRADES_TOPIC = "market_data.binance.btcusdt.trades"


class PydanticTrade(pydantic.BaseModel):
    e: str
    E: int
    s: str
    t: int
    p: float
    q: float
    T: int
    m: bool


def _best(fn: Callable[[], None], count: int, repeat: int) -> float:
    """Best-of-``repeat`` CPU microseconds per item (process time: robust on a shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time_ns()
        fn()
        best = min(best, (time.process_time_ns() - start) / count / 1000.0)
    return best


def _records(n: int) -> list[MarketRecord]:
    per_symbol = max(1, n // 2)
    return list(generate_market_data(["BTCUSDT", "ETHUSDT"], trades_per_symbol=per_symbol, seed=11,
                                     depth_every=1, snapshot_every=10_000, mean_trade_gap_ms=400))


def bench(n: int, repeat: int) -> list[tuple[str, float, str]]:
    records = _records(n)
    trades = [r for r in records if r.topic.endswith(".trades")][:n]
    diffs = [r for r in records if r.topic.endswith(".orderbook") and b"depthUpdate" in r.value][:n]
    klines = [r for r in records if r.topic.endswith(".klines")]
    trade_values = [r.value for r in trades]
    rows: list[tuple[str, float, str]] = []

    # -- decode -------------------------------------------------------------------------------
    def dec_msgspec() -> None:
        for v in trade_values:
            decode(v, topic=TRADES_TOPIC)

    raw_decoder = msgspec.json.Decoder(Trade, strict=False)

    def dec_msgspec_raw() -> None:
        for v in trade_values:
            raw_decoder.decode(v)

    def dec_orjson() -> None:
        for v in trade_values:
            d = orjson.loads(v)
            (d["s"], d["t"], float(d["p"]), float(d["q"]), d["T"], d["m"])

    def dec_json() -> None:
        for v in trade_values:
            d = json.loads(v)
            (d["s"], d["t"], float(d["p"]), float(d["q"]), d["T"], d["m"])

    def dec_pydantic() -> None:
        for v in trade_values:
            PydanticTrade.model_validate_json(v)

    count = len(trade_values)
    rows.append(("decode trade: msgspec Struct + validation (product)",
                 _best(dec_msgspec, count, repeat), ""))
    rows.append(("decode trade: msgspec Struct only", _best(dec_msgspec_raw, count, repeat), ""))
    rows.append(("decode trade: orjson -> dict -> fields", _best(dec_orjson, count, repeat), ""))
    rows.append(("decode trade: json -> dict -> fields", _best(dec_json, count, repeat), ""))
    rows.append(("decode trade: pydantic model_validate_json", _best(dec_pydantic, count, repeat), ""))

    # -- enrichers (on decoded messages, fresh state per repeat) --------------------------------
    settings = ProcessorSettings(consumer_group="bench", input_topics=["in"])
    trade_msgs = [decode(v, topic=TRADES_TOPIC) for v in trade_values]
    trade_enricher = TradeEnricher(settings.enrichment.trades)
    encoder = msgspec.json.Encoder()

    def enrich_trades() -> None:
        states: dict[str, Any] = {}
        for m in trade_msgs:
            assert isinstance(m, Trade)
            state = states.get(m.symbol)
            if state is None:
                state = states[m.symbol] = trade_enricher.new_state()
            trade_enricher.update(state, m)

    def enrich_trades_with_decode() -> None:
        states: dict[str, Any] = {}
        for v in trade_values:
            m = decode(v, topic=TRADES_TOPIC)
            assert isinstance(m, Trade)
            state = states.get(m.symbol)
            if state is None:
                state = states[m.symbol] = trade_enricher.new_state()
            trade_enricher.update(state, m)

    def enrich_trades_with_decode_encode() -> None:
        states: dict[str, Any] = {}
        for v in trade_values:
            m = decode(v, topic=TRADES_TOPIC)
            assert isinstance(m, Trade)
            state = states.get(m.symbol)
            if state is None:
                state = states[m.symbol] = trade_enricher.new_state()
            encoder.encode(trade_enricher.update(state, m))

    rows.append(("enrich trade (TradeEnricher.update)", _best(enrich_trades, count, repeat), ""))
    rows.append(("enrich trade incl. decode", _best(enrich_trades_with_decode, count, repeat),
                 "target <= 5 us"))
    rows.append(("enrich trade incl. decode + JSON encode of the output",
                 _best(enrich_trades_with_decode_encode, count, repeat), ""))

    book_enricher = OrderBookEnricher(settings.enrichment.orderbook)
    snapshots = {r.key.decode(): decode(r.value, key=r.key) for r in records
                 if r.topic.endswith(".orderbook") and b"lastUpdateId" in r.value}
    diff_msgs = [decode(r.value) for r in diffs]

    def enrich_book() -> None:
        states: dict[str, Any] = {}
        for symbol, snap in snapshots.items():
            assert isinstance(snap, DepthSnapshot)
            states[symbol] = book_enricher.new_state()
            book_enricher.update(states[symbol], snap)
        for m in diff_msgs:
            assert isinstance(m, DepthUpdate)
            book_enricher.update(states[m.symbol], m)

    rows.append(("enrich depth diff (OrderBookEnricher.update, 20+ levels)",
                 _best(enrich_book, len(diff_msgs), repeat), ""))

    kline_enricher = KlineEnricher(settings.enrichment.klines)
    kline_msgs = [decode(r.value) for r in klines] * max(1, 20_000 // max(1, len(klines)))

    def enrich_klines() -> None:
        states: dict[tuple[str, bool], Any] = {}
        for m in kline_msgs:
            assert isinstance(m, Kline)
            key = (m.symbol, m.kline.closed)
            state = states.get(key)
            if state is None:
                state = states[key] = kline_enricher.new_state()
            state.last_closed_start = -1  # repeated input: measure the arithmetic, not the rejection
            kline_enricher.update(state, m)

    rows.append(("enrich kline (KlineEnricher.update)", _best(enrich_klines, len(kline_msgs), repeat), ""))

    # -- whole pipeline -----------------------------------------------------------------------
    def run_pipeline(selected: Sequence[MarketRecord], with_state_from: Sequence[MarketRecord] = ()) -> float:
        def run() -> None:
            pipeline = Pipeline(settings)
            for i, r in enumerate(with_state_from):
                pipeline.process(r.value, topic=r.topic, partition=0, offset=i, timestamp_ms=r.timestamp_ms,
                                 key=r.key)
            for i, r in enumerate(selected):
                pipeline.process(r.value, topic=r.topic, partition=0, offset=i, timestamp_ms=r.timestamp_ms,
                                 key=r.key)
        return _best(run, len(selected) + len(with_state_from), repeat)

    book_records = [r for r in records if r.topic.endswith(".orderbook")][:n]
    rows.append(("Pipeline.process: trade", run_pipeline(trades), ""))
    rows.append(("Pipeline.process: order book (snapshot + diffs)", run_pipeline(book_records), ""))
    rows.append(("Pipeline.process: kline (+ SMC detectors on closed)", run_pipeline(klines),
                 f"{len(klines)} klines"))
    rows.append(("Pipeline.process: mixed sample stream", run_pipeline(records[: 3 * n]), ""))
    rows.extend(_snapshot_rows(settings, records, repeat))
    return rows


def _snapshot_rows(settings: ProcessorSettings, records: Sequence[MarketRecord],
                   repeat: int) -> list[tuple[str, float, str]]:
    """Per-key state snapshot and restore (what the exactly-once runtime pays per touched key and
    transaction, and per key on partition assignment), on state after the whole sample stream."""
    pipeline = Pipeline(settings)
    for i, r in enumerate(records):
        pipeline.process(r.value, topic=r.topic, partition=0, offset=i, timestamp_ms=r.timestamp_ms,
                         key=r.key)
    rows: list[tuple[str, float, str]] = []
    loops = 2_000
    for suffix, label in (("", "trade key (SYMBOL)"), ("|book", "order book key (SYMBOL|book)"),
                          ("|1m", "kline key (SYMBOL|1m, SMC engine)")):
        topic = next(r.topic for r in records if r.key == b"BTCUSDT"
                     and r.topic.endswith({"": ".trades", "|book": ".orderbook", "|1m": ".klines"}[suffix]))
        state_key = "BTCUSDT" + suffix
        data = pipeline.snapshot(topic, 0, state_key)
        assert data is not None

        def snap(topic: str = topic, state_key: str = state_key) -> None:
            for _ in range(loops):
                pipeline.snapshot(topic, 0, state_key)

        def restore(topic: str = topic, state_key: str = state_key, data: bytes = data) -> None:
            for _ in range(loops):
                pipeline.restore(topic, 0, state_key, data)

        rows.append((f"snapshot {label}", _best(snap, loops, repeat), f"{len(data)} B"))
        rows.append((f"restore {label}", _best(restore, loops, repeat), ""))
    enricher = TradeEnricher(settings.enrichment.trades)
    state = enricher.new_state()
    for r in records:
        if r.key == b"BTCUSDT" and r.topic.endswith(".trades"):
            message = decode(r.value)
            assert isinstance(message, Trade)
            enricher.update(state, message)
    dumped = enricher.dump_state(state)

    def dump() -> None:
        for _ in range(loops):
            enricher.dump_state(state)

    def load() -> None:
        for _ in range(loops):
            enricher.load_state(dumped)

    rows.append(("TradeEnricher.dump_state (one symbol)", _best(dump, loops, repeat), f"{len(dumped)} B"))
    rows.append(("TradeEnricher.load_state (one symbol)", _best(load, loops, repeat), ""))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=50_000, help="messages per measurement")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rows = bench(args.n, args.repeat)
    print(f"# bench_enrichment  python {platform.python_version()}  msgspec {msgspec.__version__}  "
          f"n={args.n} best of {args.repeat}, CPU time")
    width = max(len(name) for name, _, _ in rows)
    print(f"{'measurement'.ljust(width)}  {'us/msg':>8}  note")
    for name, micros, note in rows:
        print(f"{name.ljust(width)}  {micros:8.3f}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
