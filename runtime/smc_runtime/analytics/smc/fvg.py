"""Fair value gaps as a stream (SPEC 2.2, 4.2).

The gap at middle candle ``m`` is known at ``m + 1``; with ``join`` a run of adjacent
same-direction gaps is emitted once the run ends. Unmitigated gaps wait in two heaps keyed by
the price that mitigates them, so a bar costs O(log n) however many gaps are open.

``max_open`` (0: no limit) bounds the open gaps, and so the state a live key snapshots: in a
trending market gaps far from the price are never mitigated and would pile up forever. Beyond the
limit the oldest open gap is given up: one ``final`` event (``final_at`` = the bar, not mitigated),
and it is no longer tracked.

Context controls (default mode, off by default): a minimum size (``abs``, ``atr`` or LuxAlgo's
``auto``), the mitigation level (first touch, 50% "consequent encroachment", full fill) and
inverse FVGs: a gap a *close* went through (beyond its far edge) flips polarity as an ``ifvg``,
which ends (``mitigated``) when a close goes back through it the other way.
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
    # -- context (appended with defaults, so older snapshots decode) ---------------------------
    min_kind: str = ""  # "" | abs | atr | auto
    min_value: float = 0.0
    mitigation: str = "touch"  # touch | ce | full
    inverse: bool = False
    body_sum: float = 0.0  # auto: sum of |close - open| / |open| over bars 0 .. t-1
    # inverse: gaps waiting for a close through them: (-bottom, index) bullish, (top, index) bearish
    inv_bull_wait: list[tuple[float, int]] = []
    inv_bear_wait: list[tuple[float, int]] = []
    inv_wait: dict[int, SmcEvent] = {}  # the gap's formed event, by index
    # live inverse gaps, ended by a close back through: (top, index) from bullish, (-bottom, index)
    inv_up: list[tuple[float, int]] = []
    inv_down: list[tuple[float, int]] = []
    inv_open: dict[int, SmcEvent] = {}

    def _threshold(self, d: int, top: float, bottom: float) -> float:
        """Price whose touch mitigates the gap at the configured level."""
        m = self.mitigation
        if m == "touch":
            return top if d == 1 else bottom
        if m == "full":
            return bottom if d == 1 else top
        return (top + bottom) / 2.0

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
        if self.mitigation == "touch":
            if d == 1:
                heapq.heappush(self.bull_heap, (-top, idx))
            else:
                heapq.heappush(self.bear_heap, (bottom, idx))
        else:
            lvl = self._threshold(d, top, bottom)
            if d == 1:
                heapq.heappush(self.bull_heap, (-lvl, idx))
            else:
                heapq.heappush(self.bear_heap, (lvl, idx))
        if self.inverse:
            self.inv_wait[idx] = ev
            if d == 1:
                heapq.heappush(self.inv_bull_wait, (-bottom, idx))
            else:
                heapq.heappush(self.inv_bear_wait, (top, idx))
        if self.max_open and len(self.open_events) > self.max_open:
            self._give_up_oldest(t, out)
        if self.max_open and len(self.inv_wait) + len(self.inv_open) > self.max_open:
            self._give_up_inverse(t, out)

    def _give_up_inverse(self, t: int, out: list[SmcEvent]) -> None:
        """Bound the inverse state like the open gaps: drop the oldest waiting gaps first (no
        event: they were never reported as inverse), then the oldest live ifvgs (``final``)."""
        while self.inv_wait and len(self.inv_wait) + len(self.inv_open) > self.max_open:
            del self.inv_wait[next(iter(self.inv_wait))]
        while len(self.inv_open) > self.max_open:
            oldest = next(iter(self.inv_open))
            ev = self.inv_open.pop(oldest)
            out.append(msgspec.structs.replace(ev, action="final", final_at=t))
        live = len(self.inv_wait) + len(self.inv_open)
        entries = len(self.inv_bull_wait) + len(self.inv_bear_wait) + len(self.inv_up) + len(self.inv_down)
        if entries > 2 * live + 64:
            self.inv_bull_wait = [e for e in self.inv_bull_wait if e[1] in self.inv_wait]
            self.inv_bear_wait = [e for e in self.inv_bear_wait if e[1] in self.inv_wait]
            self.inv_up = [e for e in self.inv_up if e[1] in self.inv_open]
            self.inv_down = [e for e in self.inv_down if e[1] in self.inv_open]
            for h in (self.inv_bull_wait, self.inv_bear_wait, self.inv_up, self.inv_down):
                heapq.heapify(h)

    def _inverse_step(self, t: int, c: float, out: list[SmcEvent]) -> None:
        """End live ifvgs a close went back through, then flip gaps a close went through."""
        ended: list[int] = []
        up = self.inv_up
        while up and up[0][0] < c:
            ended.append(heapq.heappop(up)[1])
        down = self.inv_down
        while down and down[0][0] < -c:
            ended.append(heapq.heappop(down)[1])
        for idx in sorted(ended):
            ev = self.inv_open.pop(idx, None)
            if ev is not None:
                out.append(msgspec.structs.replace(ev, action="mitigated", mitigated_index=t, final_at=t))
        flipped: list[int] = []
        bw = self.inv_bull_wait
        while bw and bw[0][0] < -c:
            flipped.append(heapq.heappop(bw)[1])
        sw = self.inv_bear_wait
        while sw and sw[0][0] < c:
            flipped.append(heapq.heappop(sw)[1])
        for idx in sorted(flipped):
            gap = self.inv_wait.pop(idx, None)
            if gap is None:
                continue
            ev = SmcEvent(
                pattern="ifvg",
                action="formed",
                direction=-gap.direction,
                index=idx,
                timestamp_ms=gap.timestamp_ms,
                confirmed_at=t,
                top=gap.top,
                bottom=gap.bottom,
            )
            out.append(ev)
            self.inv_open[idx] = ev
            assert gap.top is not None and gap.bottom is not None
            if gap.direction == 1:  # now resistance: ends on a close above its top
                heapq.heappush(self.inv_up, (gap.top, idx))
            else:  # now support: ends on a close below its bottom
                heapq.heappush(self.inv_down, (-gap.bottom, idx))

    def _big_enough(self, t: int, buf: BarBuffer, top: float, bottom: float) -> bool:
        kind = self.min_kind
        if kind == "abs":
            return top - bottom >= self.min_value
        if kind == "atr":
            return top - bottom >= self.min_value * buf.atr[t - buf.base]
        # auto (LuxAlgo): middle candle body share > 2 x the mean body share of bars 0 .. t-1
        mi = t - 1 - buf.base
        o = buf.o[mi]
        share = abs(buf.c[mi] - o) / abs(o) if o else 0.0
        return share > 2.0 * self.body_sum / t

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
        if self.min_kind:
            if self.min_kind == "auto" and t >= 1:
                pi = t - 1 - buf.base
                po = buf.o[pi]
                if po:
                    self.body_sum += abs(buf.c[pi] - po) / abs(po)
            if new_d != 0 and not self._big_enough(t, buf, top, bottom):
                new_d = 0
        if self.inverse:
            self._inverse_step(t, buf.c[t - buf.base], out)
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
