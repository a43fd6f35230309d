"""Fair value gaps as a stream (SPEC 2.2, 4.2).

The gap at middle candle ``m`` is known at ``m + 1``; with ``join`` a run of adjacent
same-direction gaps is emitted once the run ends. Unmitigated gaps wait in two heaps keyed by
the price that mitigates them, so a bar costs O(log n) however many gaps are open.

``max_open`` (0: no limit) bounds the open gaps, and so the state a live key snapshots: in a
trending market gaps far from the price are never mitigated and would pile up forever. Beyond the
limit the oldest open gap is given up: one ``final`` event (``final_at`` = the bar, not mitigated),
and it is no longer tracked.
"""

from __future__ import annotations

import heapq

import msgspec

from .buffer import BarBuffer
from .events import SmcEvent

__all__ = ["FvgDetector"]


class FvgDetector(msgspec.Struct, array_like=True):
    """Plain or joined FVGs with first-touch mitigation."""

    join: bool
    # open join run: direction (0 = none), last index, its timestamp, top, bottom
    run_dir: int = 0
    run_last: int = -1
    run_ts: int = 0
    run_top: float = 0.0
    run_bottom: float = 0.0
    bull_heap: list[tuple[float, int]] = []  # (-top, index): mitigated when low <= top
    bear_heap: list[tuple[float, int]] = []  # (bottom, index): mitigated when high >= bottom
    open_events: dict[int, SmcEvent] = {}
    max_open: int = 0  # last, with a default: snapshots written before it still decode

    def _form(
        self, t: int, d: int, idx: int, ts: int, top: float, bottom: float, out: list[SmcEvent]
    ) -> None:
        ev = SmcEvent(
            pattern="fvg",
            action="formed",
            direction=d,
            index=idx,
            timestamp_ms=ts,
            confirmed_at=t,
            top=top,
            bottom=bottom,
        )
        out.append(ev)
        self.open_events[idx] = ev
        if d == 1:
            heapq.heappush(self.bull_heap, (-top, idx))
        else:
            heapq.heappush(self.bear_heap, (bottom, idx))
        if self.max_open and len(self.open_events) > self.max_open:
            self._give_up_oldest(t, out)

    def _give_up_oldest(self, t: int, out: list[SmcEvent]) -> None:
        """Stop tracking the oldest open gaps beyond ``max_open`` (dicts keep insertion order:
        formation order; more than one only after the limit was lowered)."""
        while len(self.open_events) > self.max_open:
            oldest = next(iter(self.open_events))
            ev = self.open_events.pop(oldest)
            out.append(msgspec.structs.replace(ev, action="final", final_at=t))
        # its heap entry stays until popped (skipped then); compact when stale entries dominate
        if len(self.bull_heap) + len(self.bear_heap) > 2 * len(self.open_events) + 64:
            self.bull_heap = [e for e in self.bull_heap if e[1] in self.open_events]
            self.bear_heap = [e for e in self.bear_heap if e[1] in self.open_events]
            heapq.heapify(self.bull_heap)
            heapq.heapify(self.bear_heap)

    def _close_run(self, t: int, out: list[SmcEvent]) -> None:
        self._form(t, self.run_dir, self.run_last, self.run_ts, self.run_top, self.run_bottom, out)
        self.run_dir = 0

    def on_bar(self, t: int, buf: BarBuffer, out: list[SmcEvent]) -> None:
        """Evaluate the gap at ``m = t - 1``, then test open gaps against bar ``t``."""
        new_d = 0
        top = bottom = 0.0
        if t >= 2:
            base = buf.base
            mi = t - 1 - base
            om = buf.o[mi]
            cm = buf.c[mi]
            if cm > om:
                h_prev = buf.h[mi - 1]
                l_next = buf.low[mi + 1]
                if h_prev < l_next:
                    new_d, top, bottom = 1, l_next, h_prev
            elif cm < om:
                l_prev = buf.low[mi - 1]
                h_next = buf.h[mi + 1]
                if l_prev > h_next:
                    new_d, top, bottom = -1, l_prev, h_next
        pending_plain = False
        if self.join:
            if self.run_dir != 0:
                if new_d == self.run_dir and self.run_last == t - 2:
                    self.run_last = t - 1
                    self.run_ts = buf.ts[t - 1 - buf.base]
                    self.run_top = max(self.run_top, top)
                    self.run_bottom = min(self.run_bottom, bottom)
                    new_d = 0
                else:
                    self._close_run(t, out)  # its mitigation scan starts at last+2 == t
            if new_d != 0:
                self.run_dir = new_d
                self.run_last = t - 1
                self.run_ts = buf.ts[t - 1 - buf.base]
                self.run_top = top
                self.run_bottom = bottom
        elif new_d != 0:
            pending_plain = True
        self._mitigate(t, buf.h[t - buf.base], buf.low[t - buf.base], out)
        if pending_plain:
            self._form(t, new_d, t - 1, buf.ts[t - 1 - buf.base], top, bottom, out)

    def _mitigate(self, t: int, h: float, lo: float, out: list[SmcEvent]) -> None:
        hits: list[int] = []
        bull = self.bull_heap
        while bull and -bull[0][0] >= lo:
            hits.append(heapq.heappop(bull)[1])
        bear = self.bear_heap
        while bear and bear[0][0] <= h:
            hits.append(heapq.heappop(bear)[1])
        if not hits:
            return
        hits.sort()
        for idx in hits:
            ev = self.open_events.pop(idx, None)
            if ev is None:  # given up earlier (max_open)
                continue
            out.append(msgspec.structs.replace(ev, action="mitigated", mitigated_index=t, final_at=t))

    def finalize(self, n: int, out: list[SmcEvent]) -> None:
        """Close an open join run (it ends at n-2, so no bar is left to mitigate it)."""
        if self.run_dir != 0:
            self._close_run(n - 1, out)
