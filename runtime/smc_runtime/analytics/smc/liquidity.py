"""Liquidity (equal highs / equal lows) as a stream (SPEC 2.5, 4.5; default mode 5.2 item 10).

Final swings are offered, in index order, to the open groups of their side in start order; the
first whose band (anchored on its first level, inclusive) holds the level takes it. A group
closes when swept: no swing at or after the sweep bar may join.

With ``outcomes`` (context, default mode) the sweeping bar's close classifies it: back inside the
band (a wick through and rejection) is a ``sweep``, beyond the band is a ``breakout``.
"""

from __future__ import annotations

import heapq

import msgspec

from .buffer import BarBuffer
from .events import SmcEvent
from .numeric import f32
from .swings import SwingPoint

__all__ = ["LiquidityDetector"]


class _Group(msgspec.Struct, array_like=True):
    """A group of same-side swings within ``[lo, hi]`` of its first level."""

    direction: int
    index: int
    timestamp_ms: int
    lo: float
    hi: float
    total: float
    count: int = 1
    end: int = -1
    swept: int = -1
    confirmed_at: int = -1
    event: SmcEvent | None = None
    outcome: str | None = None  # sweep | breakout (context)


class LiquidityDetector(msgspec.Struct, array_like=True):
    """Streaming grouping for ``abs``/``atr`` tolerances; ``range`` (compat) runs at finalize."""

    compat: bool
    kind: str  # abs | atr | range
    value: float
    groups: dict[int, _Group] = {}  # open groups of both sides by start index (= start order)
    unswept_up: list[tuple[float, int]] = []  # (hi, index): swept when high >= hi
    unswept_down: list[tuple[float, int]] = []  # (-lo, index): swept when -low >= -lo
    swept_open: list[int] = []  # swept groups waiting for the swings before the sweep to settle
    all_swings: list[SwingPoint] = []  # range mode only
    max_high: float = float("-inf")
    min_low: float = float("inf")
    outcomes: bool = False  # classify sweeps by the close (context)

    def _outcome(self, g: _Group, c: float) -> str:
        """Close beyond the band edge the wick crossed: breakout; back inside: sweep."""
        return "breakout" if ((c > g.hi) if g.direction == 1 else (c < g.lo)) else "sweep"

    def on_bar(self, t: int, h: float, lo: float, out: list[SmcEvent], c: float = 0.0) -> None:
        """Sweep check of the open groups against bar ``t``."""
        if self.kind == "range":
            if h > self.max_high:
                self.max_high = h
            if lo < self.min_low:
                self.min_low = lo
            return
        self._sweep(t, h, lo, out, c)

    def _sweep(self, t: int, h: float, lo: float, out: list[SmcEvent], c: float = 0.0) -> None:
        hits: list[int] = []
        up = self.unswept_up
        while up and up[0][0] <= h:
            hits.append(heapq.heappop(up)[1])
        down = self.unswept_down
        while down and down[0][0] <= -lo:
            hits.append(heapq.heappop(down)[1])
        if not hits:
            return
        hits.sort()
        for idx in hits:
            g = self.groups[idx]
            g.swept = t
            if self.outcomes:
                g.outcome = self._outcome(g, c)
            self.swept_open.append(idx)
            if g.event is not None:
                g.event = msgspec.structs.replace(g.event, action="swept", swept=t, outcome=g.outcome)
                out.append(g.event)

    def on_finals(self, finals: list[SwingPoint], t: int, buf: BarBuffer, out: list[SmcEvent]) -> None:
        """Offer newly final swings (known through bar ``t``) to the open groups."""
        if self.kind == "range":
            self.all_swings.extend(finals)
            return
        for s in finals:
            self._offer(s, t, buf, out, self.value if self.kind == "abs" else self.value * s.atr)

    def _offer(self, s: SwingPoint, t: int, buf: BarBuffer | None, out: list[SmcEvent], p: float) -> None:
        j = s.index
        lvl = s.level
        for g in self.groups.values():
            if g.direction == s.direction and (g.swept < 0 or j < g.swept) and g.lo <= lvl <= g.hi:
                g.total += lvl
                g.count += 1
                g.end = j
                if g.count == 2:
                    g.confirmed_at = t
                g.event = self._event(g, "formed" if g.count == 2 else "updated")
                out.append(g.event)
                return
        g = _Group(s.direction, j, s.timestamp_ms, lvl - p, lvl + p, lvl, 1, j)
        if buf is not None:
            base = buf.base
            if s.direction == 1:
                hi = g.hi
                for k, x in enumerate(buf.h[j + 1 - base : t + 1 - base]):
                    if x >= hi:
                        g.swept = j + 1 + k
                        break
            else:
                glo = g.lo
                for k, x in enumerate(buf.low[j + 1 - base : t + 1 - base]):
                    if x <= glo:
                        g.swept = j + 1 + k
                        break
        self.groups[j] = g
        if g.swept >= 0 and self.outcomes and buf is not None:
            g.outcome = self._outcome(g, buf.c[g.swept - buf.base])
        if g.swept >= 0:
            self.swept_open.append(j)
        else:
            if g.direction == 1:
                heapq.heappush(self.unswept_up, (g.hi, j))
            else:
                heapq.heappush(self.unswept_down, (-g.lo, j))

    def _event(self, g: _Group, action: str, final_at: int | None = None) -> SmcEvent:
        mean = g.total / g.count
        return SmcEvent(
            pattern="liquidity",
            action=action,
            direction=g.direction,
            index=g.index,
            timestamp_ms=g.timestamp_ms,
            confirmed_at=g.confirmed_at,
            final_at=final_at,
            level=f32(mean) if self.compat else mean,
            end=g.end,
            swept=g.swept if g.swept >= 0 else None,
            outcome=g.outcome,
        )

    def check_final(self, t: int, length: int, pending_index: int | None, out: list[SmcEvent]) -> None:
        """Close swept groups once every swing before the sweep bar is final."""
        if self.kind == "range":
            return
        if not self.swept_open:
            return
        keep: list[int] = []
        for idx in self.swept_open:
            g = self.groups[idx]
            s = g.swept
            if t >= s - 1 + length and (pending_index is None or pending_index >= s):
                del self.groups[idx]
                if g.event is not None:
                    out.append(self._event(g, "final", final_at=t))
            else:
                keep.append(idx)
        self.swept_open = keep

    def finalize(self, buf: BarBuffer, out: list[SmcEvent]) -> None:
        """Compat whole-series rule: the tolerance is known only now; group everything."""
        if self.kind != "range" or not self.all_swings:
            return
        p = (self.max_high - self.min_low) * self.value
        n = buf.base + len(buf.h)
        scratch: list[SmcEvent] = []  # incremental chatter, replaced by one event per group
        done: list[_Group] = []
        base = buf.base
        hs, ls = buf.h, buf.low
        cursor = base
        for s in sorted(self.all_swings, key=lambda s: s.index):
            j = s.index
            while cursor <= j:  # sweeps through bar j are all a swing at j can depend on
                self._sweep(cursor, hs[cursor - base], ls[cursor - base], scratch)
                cursor += 1
            if self.swept_open:
                keep: list[int] = []
                for idx in self.swept_open:
                    g = self.groups[idx]
                    if g.swept <= j:
                        done.append(self.groups.pop(idx))
                    else:
                        keep.append(idx)
                self.swept_open = keep
            self._offer(s, j, None, scratch, p)
        while cursor < n:
            self._sweep(cursor, hs[cursor - base], ls[cursor - base], scratch)
            cursor += 1
        done.extend(self.groups.values())
        for g in sorted(done, key=lambda g: g.index):
            if g.event is not None:
                g.confirmed_at = n - 1
                g.event = self._event(g, "formed")
                out.append(g.event)
        self.groups = {g.index: g for g in done if g.event is not None}
