"""Recent bars, as parallel lists with a moving base index (a cheap, snapshot-able ring).

Detectors look back a bounded distance (the swing window, the OB replay cursor), so default
mode drops bars older than the oldest position anyone still needs; compat mode keeps all
bars because the library's finalize rules read the whole series.
"""

from __future__ import annotations

import msgspec

__all__ = ["BarBuffer"]

_PRUNE_CHUNK = 256  # drop in chunks: amortised O(1) per bar, small snapshots


class BarBuffer(msgspec.Struct, array_like=True):
    """Bars ``base .. base+len-1`` by absolute index ``i`` at list position ``i - base``."""

    base: int = 0
    ts: list[int] = []
    o: list[float] = []
    h: list[float] = []
    low: list[float] = []
    c: list[float] = []
    v: list[float] = []
    atr: list[float] = []

    def append(self, ts: int, o: float, h: float, lo: float, c: float, v: float, atr: float) -> None:
        """Store the next bar."""
        self.ts.append(ts)
        self.o.append(o)
        self.h.append(h)
        self.low.append(lo)
        self.c.append(c)
        self.v.append(v)
        self.atr.append(atr)

    def prune(self, keep_from: int) -> None:
        """Forget bars with index < ``keep_from`` (lazily, in chunks)."""
        k = keep_from - self.base
        if k >= _PRUNE_CHUNK:
            for lst in (self.ts, self.o, self.h, self.low, self.c, self.v, self.atr):
                del lst[:k]
            self.base = keep_from
