"""Incremental O(1) indicators over ring buffers (one indicator per class, talipp-style).

Each indicator is a mutable msgspec ``Struct`` so an enricher's whole state encodes to msgpack
bytes and decodes back to an identical object (exact float64 round trip). Running sums are
recomputed exactly (``math.fsum``) every time a ring wraps, so float drift never accumulates
beyond one window's worth of additions; results stay within 1e-9 of TA-Lib on long series.
"""

from __future__ import annotations

import math

import msgspec

_fsum = math.fsum


class RollingSum(msgspec.Struct, array_like=True):
    """Sum (and mean) of the last ``size`` pushed values."""

    size: int
    values: list[float]
    pos: int = 0
    count: int = 0
    total: float = 0.0

    @classmethod
    def new(cls, size: int) -> RollingSum:
        return cls(size, [0.0] * size)

    def push(self, x: float) -> None:
        pos = self.pos
        values = self.values
        self.total += x - values[pos]
        values[pos] = x
        pos += 1
        if pos == self.size:
            pos = 0
            self.total = _fsum(values)
        self.pos = pos
        if self.count < self.size:
            self.count += 1

    def full(self) -> bool:
        return self.count == self.size

    def mean(self) -> float | None:
        """Mean of the window once it is full (TA-Lib SMA semantics), else None."""
        return self.total / self.size if self.count == self.size else None

    def partial_mean(self) -> float | None:
        """Mean of what the window holds so far (None when empty)."""
        return self.total / self.count if self.count else None

    def oldest(self) -> float | None:
        """The value pushed ``size - 1`` pushes ago, once the window is full."""
        return self.values[self.pos] if self.count == self.size else None


class RollingVariance(msgspec.Struct, array_like=True):
    """Population variance of the last ``size`` values (TA-Lib VAR/STDDEV semantics)."""

    sums: RollingSum
    squares: RollingSum

    @classmethod
    def new(cls, size: int) -> RollingVariance:
        return cls(RollingSum.new(size), RollingSum.new(size))

    def push(self, x: float) -> None:
        self.sums.push(x)
        self.squares.push(x * x)

    def stddev(self) -> float | None:
        sums = self.sums
        if sums.count != sums.size:
            return None
        n = sums.size
        mean = sums.total / n
        var = self.squares.total / n - mean * mean
        return math.sqrt(var) if var > 0.0 else 0.0


class Ema(msgspec.Struct, array_like=True):
    """Exponential moving average seeded with the SMA of the first ``period`` values (TA-Lib EMA)."""

    period: int
    k: float
    count: int = 0
    seed: float = 0.0
    value: float = 0.0

    @classmethod
    def new(cls, period: int) -> Ema:
        return cls(period, 2.0 / (period + 1))

    def push(self, x: float) -> float | None:
        count = self.count + 1
        self.count = count
        if count > self.period:
            self.value += (x - self.value) * self.k
            return self.value
        self.seed += x
        if count == self.period:
            self.value = self.seed / self.period
            return self.value
        return None


class WilderAverage(msgspec.Struct, array_like=True):
    """Wilder's smoothing seeded with the SMA of the first ``period`` values (TA-Lib ATR core)."""

    period: int
    count: int = 0
    seed: float = 0.0
    value: float = 0.0

    @classmethod
    def new(cls, period: int) -> WilderAverage:
        return cls(period)

    def peek(self, x: float) -> float | None:
        """What ``push(x)`` would return, without changing state (for provisional bars)."""
        count = self.count + 1
        if count > self.period:
            return (self.value * (self.period - 1) + x) / self.period
        if count == self.period:
            return (self.seed + x) / self.period
        return None

    def push(self, x: float) -> float | None:
        result = self.peek(x)
        self.count += 1
        if self.count <= self.period:
            self.seed += x
        if result is not None:
            self.value = result
        return result


class SessionVwap(msgspec.Struct, array_like=True):
    """VWAP since 00:00 UTC of the trade time; resets when the UTC day changes."""

    day: int = -1
    notional: float = 0.0
    volume: float = 0.0

    def push(self, price: float, quantity: float, time_ms: int) -> float:
        day = time_ms // 86_400_000
        if day != self.day:
            self.day = day
            self.notional = 0.0
            self.volume = 0.0
        self.notional += price * quantity
        self.volume += quantity
        return self.notional / self.volume
