"""Benchmark input: the analytics engineer's seeded generator (``smc_runtime.sample_data``) shaped to a mix.

``sample_data`` is trade-driven (order book diffs every ``depth_every`` trades, a closed 1m kline per
symbol-minute), so a requested mix maps onto its knobs; the records it yields for per-symbol topics are
regrouped by kind onto one topic per kind. Same arguments -> same bytes. Generating a million records
takes tens of seconds, so results are cached on disk (outside git) by their arguments.
"""

from __future__ import annotations

import itertools
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

from smc_runtime.sample_data import generate_market_data

KINDS = ("trades", "orderbook", "klines")
_MAJORS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
_CACHE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Mix:
    """Share of each message kind, normalised so the shares sum to 1."""

    trades: float = 0.8
    orderbook: float = 0.15
    klines: float = 0.05

    @classmethod
    def parse(cls, text: str) -> Mix:
        """Parse ``trades=0.8,orderbook=0.15,klines=0.05`` (kinds left out are 0)."""
        shares = dict.fromkeys(KINDS, 0.0)
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name not in shares:
                raise ValueError(f"unknown message kind {name!r} (expected one of {', '.join(KINDS)})")
            shares[name] = float(value)
        total = sum(shares.values())
        if shares["trades"] <= 0 or total <= 0:
            raise ValueError("the generator is trade-driven: the mix needs a positive trades share")
        return cls(**{k: v / total for k, v in shares.items()})

    def label(self) -> str:
        return ",".join(f"{k}={getattr(self, k):.2f}" for k in KINDS)


TRADES_ONLY = Mix(1.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # trades | orderbook | klines
    key: bytes  # symbol (the partitioning key)
    value: bytes


def symbol_names(count: int) -> list[str]:
    names = list(_MAJORS[:count])
    names.extend(f"C{i:04d}USDT" for i in range(len(names), count))
    return names


def _cache_path(symbols: int, count: int, mix: Mix, seed: int) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    name = f"v{_CACHE_VERSION}-s{symbols}-n{count}-{mix.label()}-seed{seed}.pkl"
    return Path(base) / "smc-stream" / "bench-input" / name


def generate(symbols: int, count: int, mix: Mix, seed: int) -> list[Message]:
    """``count`` messages over ``symbols`` symbols in roughly the given mix, in event-time order."""
    depth_every = max(1, round(mix.trades / mix.orderbook)) if mix.orderbook > 0 else 1_000_000_000
    gap_ms = 60_000.0 * mix.klines / mix.trades if mix.klines > 0 else 3_000.0
    per_symbol = math.ceil(count * mix.trades / symbols * 1.2) + 2
    records = generate_market_data(symbol_names(symbols), trades_per_symbol=per_symbol, seed=seed,
                                   mean_trade_gap_ms=gap_ms, depth_every=depth_every)
    wanted = {k for k in KINDS if getattr(mix, k) > 0}
    messages = (Message(kind, r.key, r.value)
                for r in records if (kind := r.topic.rsplit(".", 1)[1]) in wanted)
    return list(itertools.islice(messages, count))


def market_messages(symbols: int, count: int, mix: Mix | None = None, seed: int = 7) -> list[Message]:
    """Cached ``generate``: same arguments -> the same list, generated once per machine."""
    mix = mix or Mix()
    path = _cache_path(symbols, count, mix, seed)
    if path.exists():
        with path.open("rb") as cached:
            loaded: list[Message] = [Message(*t) for t in pickle.load(cached)]
        return loaded
    messages = generate(symbols, count, mix, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        pickle.dump([(m.kind, m.key, m.value) for m in messages], out, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return messages
