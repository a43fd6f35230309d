"""Seeded, reproducible Binance-style market data (trades, depth updates, closed klines).

The same seed gives byte-identical messages, so every framework in a comparison sees the same input.
Prices follow a per-symbol geometric random walk; event times advance deterministically from a fixed
epoch (wall time is never read here: the Kafka record timestamp carries the send time instead).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
KLINE_INTERVAL_MS = 60_000
_MAJORS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT")
KINDS = ("trades", "orderbook", "klines")


@dataclass(frozen=True, slots=True)
class Mix:
    """Share of each message kind; normalised so the shares sum to 1."""

    trades: float = 0.8
    orderbook: float = 0.15
    klines: float = 0.05

    @classmethod
    def parse(cls, text: str) -> Mix:
        """Parse ``trades=0.8,orderbook=0.15,klines=0.05`` (missing kinds are 0)."""
        shares = dict.fromkeys(KINDS, 0.0)
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name not in shares:
                raise ValueError(f"unknown message kind {name!r} (expected one of {', '.join(KINDS)})")
            shares[name] = float(value)
        total = sum(shares.values())
        if total <= 0:
            raise ValueError("the mix needs at least one positive share")
        return cls(**{k: v / total for k, v in shares.items()})


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # trades | orderbook | klines
    key: bytes  # symbol
    value: bytes


def symbol_names(count: int) -> list[str]:
    names = list(_MAJORS[:count])
    names.extend(f"C{i:04d}USDT" for i in range(len(names), count))
    return names


def _fmt(x: float) -> str:
    return f"{x:.8f}".rstrip("0").rstrip(".")


class _SymbolState:
    __slots__ = ("bar", "bar_start", "event_ms", "name", "price", "seq", "trade_id")

    def __init__(self, name: str, price: float) -> None:
        self.name = name
        self.price = price
        self.trade_id = 1
        self.seq = 1_000
        self.event_ms = EPOCH_MS
        self.bar_start = EPOCH_MS
        self.bar: list[float] = [price, price, price, price, 0.0, 0.0]  # o h l c v taker-buy-v


class MarketData:
    """Infinite deterministic stream of messages across ``symbols`` symbols in the given ``mix``."""

    def __init__(self, symbols: int, mix: Mix | None = None, seed: int = 7) -> None:
        self._rng = random.Random(seed)
        self._mix = mix or Mix()
        self._symbols = [
            _SymbolState(name, 10 ** self._rng.uniform(-1.0, 4.8)) for name in symbol_names(symbols)
        ]
        # First message per symbol on the book feed is a snapshot, so the local book can start.
        self._book_started: set[str] = set()

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        rng = self._rng
        sym = self._symbols[min(int(rng.paretovariate(1.2)) - 1, len(self._symbols) - 1)
                            if rng.random() < 0.5 else rng.randrange(len(self._symbols))]
        sym.event_ms += rng.randint(1, 40)
        roll = rng.random()
        if roll < self._mix.trades:
            return self._trade(sym)
        if roll < self._mix.trades + self._mix.orderbook:
            return self._depth(sym)
        return self._kline(sym)

    def take(self, count: int) -> list[Message]:
        return [next(self) for _ in range(count)]

    def _trade(self, sym: _SymbolState) -> Message:
        rng = self._rng
        sym.price *= math.exp(rng.gauss(0.0, 0.0004))
        qty = round(rng.lognormvariate(-1.0, 1.2), 6) or 0.000001
        maker = rng.random() < 0.5
        bar = sym.bar
        bar[1] = max(bar[1], sym.price)
        bar[2] = min(bar[2], sym.price)
        bar[3] = sym.price
        bar[4] += qty
        if not maker:
            bar[5] += qty
        value = (
            f'{{"e":"trade","E":{sym.event_ms},"s":"{sym.name}","t":{sym.trade_id},"p":"{_fmt(sym.price)}",'
            f'"q":"{_fmt(qty)}","T":{sym.event_ms},"m":{"true" if maker else "false"},"M":true}}'
        )
        sym.trade_id += 1
        return Message("trades", sym.name.encode(), value.encode())

    def _levels(self, sym: _SymbolState, side: int, count: int) -> str:
        rng = self._rng
        tick = sym.price * 0.0001
        levels = []
        offset = 0
        for _ in range(count):  # strictly moving away from the touch: sorted, unique, never crossed
            offset += rng.randint(1, 3)
            price = sym.price + side * tick * offset
            qty = 0.0 if rng.random() < 0.1 else round(rng.lognormvariate(0.0, 1.0), 4)
            levels.append(f'["{_fmt(price)}","{_fmt(qty)}"]')
        return ",".join(levels)

    def _depth(self, sym: _SymbolState) -> Message:
        rng = self._rng
        if sym.name not in self._book_started:
            self._book_started.add(sym.name)
            value = (
                f'{{"lastUpdateId":{sym.seq},"bids":[{self._levels(sym, -1, 20)}],'
                f'"asks":[{self._levels(sym, 1, 20)}]}}'
            )
            return Message("orderbook", sym.name.encode(), value.encode())
        first = sym.seq + 1
        sym.seq += rng.randint(1, 5)
        value = (
            f'{{"e":"depthUpdate","E":{sym.event_ms},"s":"{sym.name}","U":{first},"u":{sym.seq},'
            f'"b":[{self._levels(sym, -1, rng.randint(1, 5))}],'
            f'"a":[{self._levels(sym, 1, rng.randint(1, 5))}]}}'
        )
        return Message("orderbook", sym.name.encode(), value.encode())

    def _kline(self, sym: _SymbolState) -> Message:
        rng = self._rng
        o, h, lo, c, v, tbv = sym.bar
        if v == 0.0:  # no trades in this bar: make a small synthetic move
            c = sym.price * math.exp(rng.gauss(0.0, 0.001))
            h, lo, v, tbv = max(o, c), min(o, c), round(rng.uniform(0.1, 5.0), 4), 0.0
        start = sym.bar_start
        value = (
            f'{{"e":"kline","E":{start + KLINE_INTERVAL_MS},"s":"{sym.name}","k":{{"t":{start},'
            f'"T":{start + KLINE_INTERVAL_MS - 1},"s":"{sym.name}","i":"1m",'
            f'"f":{sym.trade_id},"L":{sym.trade_id},'
            f'"o":"{_fmt(o)}","c":"{_fmt(c)}","h":"{_fmt(h)}","l":"{_fmt(lo)}","v":"{_fmt(v)}",'
            f'"n":{rng.randint(1, 500)},"x":true,"q":"{_fmt(v * c)}","V":"{_fmt(tbv)}","Q":"{_fmt(tbv * c)}",'
            f'"B":"0"}}}}'
        )
        sym.bar_start += KLINE_INTERVAL_MS
        sym.event_ms = max(sym.event_ms, sym.bar_start)
        sym.bar = [sym.price, sym.price, sym.price, sym.price, 0.0, 0.0]
        return Message("klines", sym.name.encode(), value.encode())
