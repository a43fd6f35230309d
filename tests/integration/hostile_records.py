"""Seeded hostile market-data records of every class of issue 12, each with the dead-letter reason
it must get (None: the record is valid and must be processed), for tests/integration/test_runtime_hostile.py.

A class is a list of *streams*: records that must stay in order on one partition (same key), e.g.
clean trades of a symbol, then an id jump, then clean trades again. ``interleave`` merges streams
at seeded random points, keeping each stream's order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

BASE_TIME_MS = 1_700_000_000_000
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Hostile:
    cls: str          # the class of issue 12 it belongs to
    kind: str         # input topic kind: trades, orderbook, klines
    key: bytes
    value: bytes
    expected: str | None  # dead-letter reason, None = processed normally


Stream = list[Hostile]


def _trade(symbol: str, trade_id: int, price: float | str, qty: float | str = 0.5,
           time_ms: int | None = None, **extra: object) -> bytes:
    doc: dict[str, object] = {"e": "trade", "E": time_ms or BASE_TIME_MS + trade_id, "s": symbol,
                              "t": trade_id, "p": str(price), "q": str(qty),
                              "T": time_ms or BASE_TIME_MS + trade_id, "m": trade_id % 2 == 0}
    doc.update(extra)
    return json.dumps(doc).encode()


def _depth(symbol: str, first: int, last: int, bids: Sequence[Sequence[str]],
           asks: Sequence[Sequence[str]]) -> bytes:
    return json.dumps({"e": "depthUpdate", "E": BASE_TIME_MS + last, "s": symbol, "U": first, "u": last,
                       "b": bids, "a": asks}).encode()


def _kline(symbol: str, start_ms: int, close: float, interval: str = "1m") -> bytes:
    return json.dumps({"e": "kline", "E": start_ms + 60_000, "s": symbol, "k": {
        "t": start_ms, "T": start_ms + 59_999, "s": symbol, "i": interval, "o": str(close),
        "h": str(close * 1.01), "l": str(close * 0.99), "c": str(close), "v": "10", "n": 5,
        "x": True, "q": str(close * 10), "V": "4", "Q": str(close * 4)}}).encode()


def malformed_json(rng: random.Random, n: int) -> Iterator[Stream]:
    for i in range(n):
        good = _trade(f"MAL{i % 50}", 1000 + i, 100.5)
        variant = i % 5
        if variant == 0:
            value = good[: rng.randrange(1, len(good) - 1)] + f"#{i}".encode()  # truncated
        elif variant == 1:
            value = b"\x00" + bytes(rng.randrange(256) for _ in range(40)) + f"|{i}".encode()  # garbage
        elif variant == 2:
            value = b'{"e":"trade","s":"X' + b"\xff\xfe" * 4 + f'","t":{i}}}'.encode()  # not UTF-8
        elif variant == 3:
            value = f'{{"e":"trade","t":{i},,}}'.encode()  # syntax error
        else:
            value = f'{{"e":"trade","s":"MAL","t":{i},"p":"1.5'.encode()  # unterminated string
        yield [Hostile("malformed_json", "trades", f"mal-{i}".encode(), value, "invalid_json")]


def deeply_nested(n: int) -> Iterator[Stream]:
    for i in range(n):
        depth = 50_000 + i
        if i % 2 == 0:  # in a field the decoder skips: only the nesting is wrong
            value = f'{{"e":"trade","t":{i},"junk":'.encode() + b"[" * depth + b"]" * depth + b"}"
        else:
            value = b'{"x":' * depth + f"{i}".encode() + b"}" * depth
        yield [Hostile("deeply_nested", "trades", f"deep-{i}".encode(), value, "too_deep")]


def wrong_types(n: int) -> Iterator[Stream]:
    for i in range(n):
        variant = i % 6
        if variant == 0:
            doc: object = {"e": "trade", "s": "WRONG", "t": "abc", "p": "1", "q": "1", "T": 1, "m": True}
        elif variant == 1:
            doc = {"e": "trade", "s": 42, "t": i, "p": "1", "q": "1", "T": 1, "m": True}
        elif variant == 2:
            doc = {"e": "trade", "s": "WRONG", "t": i, "p": {"v": 1}, "q": "1", "T": 1, "m": True}
        elif variant == 3:
            doc = {"e": "trade", "s": "WRONG", "t": i, "q": "1", "T": 1, "m": True}  # price missing
        elif variant == 4:
            doc = {"e": "depthUpdate", "s": "WRONG", "U": i, "u": i, "b": "not a list", "a": []}
        else:
            doc = {"e": "kline", "s": "WRONG", "E": i, "k": [1, 2, 3]}
        kind = {4: "orderbook", 5: "klines"}.get(variant, "trades")
        yield [Hostile("wrong_types", kind, f"wrong-{i}".encode(), json.dumps(doc).encode(), "schema")]


def huge_ints(n: int) -> Iterator[Stream]:
    for i in range(n):
        big = 2**63 + i if i % 2 == 0 else 10**30 + i
        if i % 3 == 0:
            value = _trade("BIGINT", big, 100.0, time_ms=BASE_TIME_MS)
        elif i % 3 == 1:
            value = _trade("BIGINT", 1 + i, 100.0, time_ms=big)
        else:
            value = _depth("BIGINT", big, big, [["1.0", "1.0"]], [])
        kind = "orderbook" if i % 3 == 2 else "trades"
        yield [Hostile("int_beyond_int64", kind, f"bigint-{i}".encode(), value, "out_of_range")]


def extreme_prices(n: int) -> Iterator[Stream]:
    for i in range(n):
        price = ("1e308", "9.9e307", "1e300", "1e-300", "1.7976931348623157e308")[i % 5]
        if i % 4 == 3:
            value = _depth(f"EXT{i % 7}", 10 + i, 10 + i, [[price, "1.0"]], [])
            kind = "orderbook"
        else:
            value = _trade(f"EXT{i % 7}", 10 + i, price)
            kind = "trades"
        yield [Hostile("extreme_price", kind, f"ext-{i}".encode(), value, "out_of_range")]


def bad_symbols(n: int) -> Iterator[Stream]:
    symbols = ("Z|book", "A|1m", "B\x00C", "TAB\tX", "NL\nX", "\x1b[31mRED", "x" * 300, "", "SP ACE", "é€")
    for i in range(n):
        symbol = symbols[i % len(symbols)]
        value = _trade(symbol, 1 + i, 10.0)
        yield [Hostile("bad_symbol", "trades", f"sym-{i}".encode(), value, "invalid_symbol")]


def jumps(streams: int, per_stream: int) -> Iterator[Stream]:
    """Clean trades of one symbol, a forward jump in the middle (trade id near 2**63, a trade time
    or a kline start a year ahead, a kline in the year 300,000), then clean records again: the jump
    is a dead letter, the records around it are processed (the jump never became the baseline)."""
    for s in range(streams):
        variant = s % 4
        stream: Stream = []
        symbol = f"JUMP{s}"
        key = symbol.encode()
        for j in range(per_stream):
            if variant >= 2:  # klines
                start = BASE_TIME_MS + j * 60_000
                value = _kline(symbol, start, 100.0 + j % 7)
                stream.append(Hostile("jump", "klines", key, value, None))
            else:
                stream.append(Hostile("jump", "trades", key, _trade(symbol, 1_000 + j, 100.0 + j % 5), None))
            if j == per_stream // 2:
                year_ahead = BASE_TIME_MS + 365 * 86_400_000
                if variant == 0:
                    value = _trade(symbol, INT64_MAX - 7, 101.0, time_ms=BASE_TIME_MS + 1_000 + j)
                    stream.append(Hostile("jump", "trades", key, value, "id_jump"))
                elif variant == 1:
                    value = _trade(symbol, 1_000 + j + 1, 101.0, time_ms=year_ahead)
                    stream.append(Hostile("jump", "trades", key, value, "time_jump"))
                elif variant == 2:
                    value = _kline(symbol, year_ahead, 101.0)
                    stream.append(Hostile("jump", "klines", key, value, "time_jump"))
                else:  # the year 300,000: beyond any valid time, refused before the jump check
                    value = _kline(symbol, 9_400_000_000_000_000, 101.0)
                    stream.append(Hostile("jump", "klines", key, value, "out_of_range"))
        yield stream


def huge_diffs(n: int, levels: int) -> Iterator[Stream]:
    for i in range(n):
        bids = [[f"{50_000 - k * 0.01:.2f}", "1.5"] for k in range(levels)]
        asks = [[f"{50_001 + k * 0.01:.2f}", "1.5"] for k in range(levels)]
        value = _depth(f"HUGE{i % 3}", 1 + i, 1 + i, bids, asks)
        yield [Hostile("huge_diff", "orderbook", f"HUGE{i % 3}".encode(), value, "too_many_levels")]


def megabyte_values(n: int, size: int, expected: str) -> Iterator[Stream]:
    for i in range(n):
        head = f'{{"e":"trade","s":"MEGA","t":{i},"junk":"'.encode()
        value = head + b"A" * (size - len(head))  # unterminated string: invalid JSON of ``size`` bytes
        yield [Hostile("megabyte", "trades", f"mega-{i}".encode(), value, expected)]


def symbol_flood(rng: random.Random, n: int) -> Iterator[Stream]:
    """Valid trades of ``n`` random symbols, each once: new state keys, processed (up to the
    per-partition key cap, which the test sets high enough)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    seen: set[str] = set()
    while len(seen) < n:
        symbol = "F" + "".join(rng.choice(alphabet) for _ in range(9))
        if symbol in seen:
            continue
        seen.add(symbol)
        yield [Hostile("symbol_flood", "trades", symbol.encode(), _trade(symbol, 1, 10.0), None)]


def every_class(seed: int) -> list[Stream]:
    rng = random.Random(seed)
    streams: list[Stream] = []
    streams += malformed_json(rng, 1_500)
    streams += deeply_nested(300)
    streams += wrong_types(1_500)
    streams += huge_ints(1_200)
    streams += extreme_prices(1_200)
    streams += bad_symbols(1_200)
    streams += jumps(32, 40)
    streams += huge_diffs(30, 6_000)
    streams += megabyte_values(12, 1_000_000, "invalid_json")
    streams += megabyte_values(3, 2_000_000, "oversized")
    streams += symbol_flood(rng, 2_000)
    return streams


def interleave(rng: random.Random, streams: Iterable[Stream]) -> list[Hostile]:
    """Merge the streams at random points, each stream's records staying in their order."""
    pending = [list(reversed(s)) for s in streams if s]
    merged: list[Hostile] = []
    while pending:
        i = rng.randrange(len(pending))
        merged.append(pending[i].pop())
        if not pending[i]:
            pending[i] = pending[-1]
            pending.pop()
    return merged
