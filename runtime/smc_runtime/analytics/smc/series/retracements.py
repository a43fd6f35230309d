"""Retracement of the current swing leg, per bar (SPEC 2.8, 4.6; default mode 5.2 item 13).

The calculator is fed bar ``i`` once bar ``i``'s swing status is final (the series engine's
cursor), with that status. Compat reproduces the library's first pass (its mixed branches and
numpy rounding: 6.13); the one-bar shift and the zeroed prefix read the end of the stream and are
applied by ``compat_rows`` at the end. Default mode: row ``i`` from bar ``i``, the share of the
last leg given back (0 at the swing, 100 at the leg's start), its running max since the swing.
"""

from __future__ import annotations

import msgspec

__all__ = ["Retracements", "compat_rows"]

Row = tuple[int, float | None, float | None]


def _np_round1(x: float) -> float:
    """numpy's ``round(x, 1)`` for a float64: ``rint(x * 10) / 10`` (not Python's decimal rounding)."""
    y = x * 10.0
    if y != y or y in (float("inf"), float("-inf")):
        return y / 10.0
    return float(round(y)) / 10.0


class Retracements(msgspec.Struct, array_like=True):
    """State of the first pass (compat) or of the current leg (default)."""

    compat: bool
    direction: int = 0  # D of the previous row
    top: float | None = None
    bottom: float | None = None
    deepest: float = 0.0  # P of the previous row

    def update(self, h: float, lo: float, swing: int, level: float) -> Row:
        """Bar's row from its high, low and final swing status (``swing`` 1/-1/0, its level)."""
        if self.compat:
            return self._compat(h, lo, swing, level)
        if swing == 1:
            self.top = level
        elif swing == -1:
            self.bottom = level
        if swing != 0:
            self.direction = swing
        top, bottom, d = self.top, self.bottom, self.direction
        if top is None or bottom is None:
            return d, None, None
        span = top - bottom
        if span == 0:
            cur = 0.0
        elif d == 1:
            cur = (top - lo) / span * 100.0
        else:
            cur = (h - bottom) / span * 100.0
        if swing != 0 or cur > self.deepest:
            self.deepest = cur
        return d, cur, self.deepest

    def _compat(self, h: float, lo: float, swing: int, level: float) -> Row:
        prev = self.direction
        if swing == 1:
            d = 1
            self.top = level
        elif swing == -1:
            d = -1
            self.bottom = level
        else:
            d = prev
        top = self.top if self.top is not None else 0.0
        bottom = self.bottom if self.bottom is not None else 0.0
        cur = 0.0
        deep = 0.0
        if prev == 1:
            div = top - bottom
            cur = _np_round1(100 - ((lo - bottom) / div) * 100) if div != 0 else 0.0
            base = self.deepest
            deep = cur if cur > base else base
        if d == -1:
            div = bottom - top
            cur = _np_round1(100 - ((h - top) / div) * 100) if div != 0 else 0.0
            base = self.deepest if prev == -1 else 0.0
            deep = cur if cur > base else base
        self.direction = d
        self.deepest = deep
        return d, cur, deep


def compat_rows(first_pass: list[Row]) -> list[Row]:
    """The library's second pass: shift by one (row 0 gets the last row) and zero the prefix."""
    n = len(first_pass)
    if n == 0:
        return []
    rows = [first_pass[-1], *first_pass[:-1]]
    dirs = [r[0] for r in rows]
    zero: Row = (0, 0.0, 0.0)
    changes = 0
    for i in range(n - 1):
        if dirs[i] != dirs[i + 1]:
            changes += 1
        rows[i] = zero
        if changes == 3:
            rows[i + 1] = zero
            break
    return rows
