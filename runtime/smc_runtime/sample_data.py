"""Seeded, realistic Binance-style market data: trades, depth snapshots + diffs, 1m klines.

Used for the bundled sample (``data/sample_market_data.jsonl``), the runtime demo and load
tests. Same arguments -> same records, byte for byte (``random.Random(seed)``, no clock).
Per symbol: a geometric random walk with slow trend regimes (so SMC structure appears), bursty
trade sizes with occasional block trades, a consistent local order book (diffs keep it uncrossed,
full snapshots every ``snapshot_every`` diffs) and closed 1m klines built from the same trades.

``python -m smc_runtime.sample_data --output data/sample_market_data.jsonl`` writes the sample.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
from collections.abc import Iterator, Sequence
from typing import NamedTuple

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
DEFAULT_START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_BASE_PRICES = {"BTCUSDT": 65_000.0, "ETHUSDT": 3_200.0, "SOLUSDT": 150.0, "BNBUSDT": 580.0}
_MINUTE = 60_000


class MarketRecord(NamedTuple):
    """One record as it would sit in Kafka."""

    topic: str
    key: bytes
    value: bytes
    timestamp_ms: int


def topic_for(symbol: str, stream: str, exchange: str = "binance") -> str:
    """``market_data.<exchange>.<symbol lower>.<trades|orderbook|klines>``."""
    return f"market_data.{exchange}.{symbol.lower()}.{stream}"


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class _SymbolStream:
    """Generates one symbol's records in timestamp order."""

    def __init__(self, symbol: str, rng: random.Random, start_ms: int, trades: int,
                 mean_gap_ms: float, depth_every: int, snapshot_every: int, book_levels: int) -> None:
        self.symbol = symbol
        self.key = symbol.encode()
        self.rng = rng
        self.price = _BASE_PRICES.get(symbol, 100.0) * (1.0 + rng.uniform(-0.02, 0.02))
        digits = 2 if self.price >= 10.0 else 4
        self.tick = 10.0 ** -digits
        self.pdigits = digits
        self.time = start_ms
        self.trades = trades
        self.mean_gap_ms = mean_gap_ms
        self.depth_every = depth_every
        self.snapshot_every = snapshot_every
        self.book_levels = book_levels
        self.trade_id = rng.randrange(1_000_000, 9_000_000)
        self.update_id = rng.randrange(10_000_000, 90_000_000)
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.kline: dict[str, float] | None = None
        self.kline_start = -1
        self.diffs_since_snapshot = 0
        self.topics = {s: topic_for(symbol, s) for s in ("trades", "orderbook", "klines")}

    def _round(self, price: float) -> float:
        return round(round(price / self.tick) * self.tick, self.pdigits)

    def _fmt_price(self, price: float) -> str:
        return f"{price:.{self.pdigits}f}"

    def _rebuild_book(self) -> None:
        mid = self._round(self.price)
        steps = range(1, self.book_levels + 1)
        self.bids = {self._round(mid - self.tick * i): self._level_qty() for i in steps}
        self.asks = {self._round(mid + self.tick * i): self._level_qty() for i in steps}

    def _level_qty(self) -> float:
        return round(self.rng.lognormvariate(0.0, 1.0) * 1000.0 / self.price, 5) + 0.00001

    def _snapshot(self) -> MarketRecord:
        self.update_id += self.rng.randint(1, 3)
        self._rebuild_book()
        self.diffs_since_snapshot = 0
        doc = {
            "lastUpdateId": self.update_id,
            "bids": [[self._fmt_price(p), f"{q:.5f}"] for p, q in sorted(self.bids.items(), reverse=True)],
            "asks": [[self._fmt_price(p), f"{q:.5f}"] for p, q in sorted(self.asks.items())],
        }
        return MarketRecord(self.topics["orderbook"], self.key, _dumps(doc), self.time)

    def _diff(self) -> MarketRecord:
        rng = self.rng
        mid = self._round(self.price)
        bid_changes: dict[float, float] = {}
        ask_changes: dict[float, float] = {}
        for p in [p for p in self.bids if p >= mid]:
            bid_changes[p] = 0.0
        for p in [p for p in self.asks if p <= mid]:
            ask_changes[p] = 0.0
        bid_changes[self._round(mid - self.tick)] = self._level_qty()
        ask_changes[self._round(mid + self.tick)] = self._level_qty()
        for _ in range(rng.randint(1, 4)):
            offset = self.tick * rng.randint(1, self.book_levels)
            if rng.random() < 0.5:
                bid_changes[self._round(mid - offset)] = 0.0 if rng.random() < 0.2 else self._level_qty()
            else:
                ask_changes[self._round(mid + offset)] = 0.0 if rng.random() < 0.2 else self._level_qty()
        for changes, side in ((bid_changes, self.bids), (ask_changes, self.asks)):
            for p, q in changes.items():
                if q == 0.0:
                    side.pop(p, None)
                else:
                    side[p] = q
        first = self.update_id + 1
        if rng.random() < 0.004:  # a lost diff: consumers must detect the gap and resync
            first += rng.randint(1, 5)
            self.update_id = first - 1
        self.update_id += rng.randint(1, 3)
        doc = {
            "e": "depthUpdate", "E": self.time, "s": self.symbol, "U": first, "u": self.update_id,
            "b": [[self._fmt_price(p), f"{q:.5f}"] for p, q in sorted(bid_changes.items(), reverse=True)],
            "a": [[self._fmt_price(p), f"{q:.5f}"] for p, q in sorted(ask_changes.items())],
        }
        self.diffs_since_snapshot += 1
        return MarketRecord(self.topics["orderbook"], self.key, _dumps(doc), self.time)

    def _kline_doc(self, closed: bool) -> MarketRecord:
        k = self.kline
        assert k is not None
        start = self.kline_start
        doc = {
            "e": "kline", "E": start + _MINUTE - 1 if closed else self.time, "s": self.symbol,
            "k": {
                "t": start, "T": start + _MINUTE - 1, "s": self.symbol, "i": "1m", "f": int(k["first"]),
                "L": int(k["last"]), "o": self._fmt_price(k["o"]), "c": self._fmt_price(k["c"]),
                "h": self._fmt_price(k["h"]), "l": self._fmt_price(k["l"]), "v": f"{k['v']:.5f}",
                "n": int(k["n"]), "x": closed, "q": f"{k['q']:.5f}", "V": f"{k['bv']:.5f}",
                "Q": f"{k['bq']:.5f}", "B": "0",
            },
        }
        return MarketRecord(self.topics["klines"], self.key, _dumps(doc), doc["E"])  # type: ignore[arg-type]

    def records(self) -> Iterator[MarketRecord]:
        rng = self.rng
        yield self._snapshot()
        drift = 0.0
        for n in range(self.trades):
            self.time += max(1, int(rng.expovariate(1.0 / self.mean_gap_ms)))
            minute = self.time - self.time % _MINUTE
            if self.kline is not None and minute != self.kline_start:
                yield self._kline_doc(closed=True)
                self.kline = None
            if n % 300 == 0:
                drift = rng.gauss(0.0, 4e-5)
            self.price = max(self.tick * 10, self.price * math.exp(drift + rng.gauss(0.0, 3e-4)))
            price = self._round(self.price)
            qty = round(rng.lognormvariate(0.0, 1.2) * 200.0 / price, 5) + 0.00001
            if rng.random() < 0.01:
                qty = round(qty * rng.uniform(15, 40), 5)
            buyer_is_maker = rng.random() < 0.5 - drift * 2000
            self.trade_id += 1
            trade = {"e": "trade", "E": self.time, "s": self.symbol, "t": self.trade_id,
                     "p": self._fmt_price(price), "q": f"{qty:.5f}", "T": self.time, "m": buyer_is_maker,
                     "M": True}
            yield MarketRecord(self.topics["trades"], self.key, _dumps(trade), self.time)
            if self.kline is None:
                self.kline_start = minute
                self.kline = {"o": price, "h": price, "l": price, "c": price, "v": 0.0, "q": 0.0, "n": 0,
                              "bv": 0.0, "bq": 0.0, "first": self.trade_id, "last": self.trade_id}
            k = self.kline
            k["h"] = max(k["h"], price)
            k["l"] = min(k["l"], price)
            k["c"] = price
            k["v"] += qty
            k["q"] += qty * price
            k["n"] += 1
            k["last"] = self.trade_id
            if not buyer_is_maker:
                k["bv"] += qty
                k["bq"] += qty * price
            if k["n"] == 20:
                yield self._kline_doc(closed=False)
            if n % self.depth_every == 0:
                if self.diffs_since_snapshot >= self.snapshot_every:
                    yield self._snapshot()
                else:
                    yield self._diff()
        if self.kline is not None:
            self.time = self.kline_start + _MINUTE
            yield self._kline_doc(closed=True)


def _malformed(symbol: str, start_ms: int, index: int) -> MarketRecord:
    """One deliberately bad record (cycled through the reason codes the pipeline rejects)."""
    trades = topic_for(symbol, "trades")
    key = symbol.encode()
    ts = start_ms + index
    bad: list[MarketRecord] = [
        MarketRecord(trades, key, b'{"e":"trade","s":"' + key + b'","t":1,"p":"10', ts),
        MarketRecord(trades, key, _dumps({"e": "trade", "E": ts, "s": symbol, "t": 5, "p": "-1.5", "q": "1",
                                          "T": ts, "m": False}), ts),
        MarketRecord(trades, key, _dumps({"e": "trade", "E": ts, "s": symbol, "t": 6, "p": "NaN", "q": "1",
                                          "T": ts, "m": False}), ts),
        MarketRecord(trades, key, _dumps({"e": "bookTicker", "s": symbol, "b": "1", "a": "2"}), ts),
        MarketRecord(trades, key, _dumps({"e": "trade", "s": symbol, "p": "1.0"}), ts),
        MarketRecord(topic_for(symbol, "orderbook"), key,
                     _dumps({"lastUpdateId": 1, "bids": [["101.0", "1"]], "asks": [["100.0", "1"]]}), ts),
    ]
    return bad[index % len(bad)]


def generate_market_data(symbols: Sequence[str] = DEFAULT_SYMBOLS, *, trades_per_symbol: int = 2_000,
                         seed: int = 42, start_ms: int = DEFAULT_START_MS, mean_trade_gap_ms: float = 3_000.0,
                         depth_every: int = 3, snapshot_every: int = 200, book_levels: int = 20,
                         malformed_every: int = 0) -> Iterator[MarketRecord]:
    """Yield every symbol's records merged in timestamp order.

    ``malformed_every > 0`` injects one bad record (invalid JSON, negative price, NaN, unknown
    type, missing fields, crossed snapshot, in turn) after every that many good records.
    """
    streams = [
        _SymbolStream(symbol.upper(), random.Random(f"{seed}:{symbol.upper()}"), start_ms, trades_per_symbol,
                      mean_trade_gap_ms, depth_every, snapshot_every, book_levels)
        for symbol in symbols
    ]
    ordered = heapq.merge(
        *(((r.timestamp_ms, i, n, r) for n, r in enumerate(s.records())) for i, s in enumerate(streams))
    )
    bad = 0
    for count, (_, _, _, record) in enumerate(ordered, start=1):
        yield record
        if malformed_every and count % malformed_every == 0:
            yield _malformed(streams[bad % len(streams)].symbol, record.timestamp_ms, bad)
            bad += 1


def envelope_line(record: MarketRecord) -> str:
    """The replay input envelope of one record (``value`` inlined as JSON when it parses)."""
    text = record.value.decode("utf-8", "replace")
    try:
        value: object = json.loads(text)
    except ValueError:
        value = text
    return json.dumps({"topic": record.topic, "key": record.key.decode(), "timestamp": record.timestamp_ms,
                       "value": value}, separators=(",", ":"), allow_nan=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="-", help="JSONL file of replay envelopes ('-' = stdout)")
    parser.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS))
    parser.add_argument("--trades", type=int, default=2_000, help="trades per symbol")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--malformed-every", type=int, default=1_200)
    args = parser.parse_args(argv)
    records = generate_market_data(args.symbols.split(","), trades_per_symbol=args.trades, seed=args.seed,
                                   malformed_every=args.malformed_every)
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for record in records:
            out.write(envelope_line(record) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
