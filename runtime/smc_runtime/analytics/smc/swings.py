"""Swing highs/lows as a stream (SPEC 2.1, 4.1; default-mode changes 5.2 items 1-3).

A candidate at bar ``c`` is known at ``c + L``. Same-type candidates form a run that collapses
to its most extreme member (earliest on ties), so the *pending* candidate may still be
replaced; it becomes final when the first opposite candidate appears.
"""

from __future__ import annotations

import msgspec

from .buffer import BarBuffer
from .events import SmcEvent

__all__ = ["SwingDetector", "SwingPoint"]


class SwingPoint(msgspec.Struct, array_like=True):
    """A swing (candidate or final) as the other detectors consume it."""

    index: int
    direction: int  # 1 high, -1 low
    level: float
    timestamp_ms: int
    candidate_at: int
    atr: float = 0.0
    artificial: bool = False


class SwingDetector(msgspec.Struct, array_like=True):
    """Window test + run reduction; compat adds the artificial endpoint swings."""

    length: int
    compat: bool
    pending: SwingPoint | None = None
    seen_candidate: bool = False
    scope: str | None = None  # "internal" | "swing" when internal structure runs (context)

    def _event(self, s: SwingPoint, action: str, final_at: int | None) -> SmcEvent:
        return SmcEvent(
            pattern="swing",
            action=action,
            direction=s.direction,
            index=s.index,
            timestamp_ms=s.timestamp_ms,
            confirmed_at=s.candidate_at,
            final_at=final_at,
            level=s.level,
            artificial=s.artificial,
            scope=self.scope,
        )

    def on_bar(self, t: int, buf: BarBuffer, out: list[SmcEvent], finals: list[SwingPoint]) -> None:
        """Test candidate ``c = t - L``; append events to ``out`` and newly final swings to ``finals``."""
        n_len = self.length
        c = t - n_len
        base = buf.base
        if self.compat:
            # library window: L-1 bars before c, c, L after; only c >= 2L-1 is tested
            if c < 2 * n_len - 1:
                return
            lo = c - n_len + 1 - base
        else:
            if c < n_len:
                return
            lo = c - n_len - base
        hi = t + 1 - base
        hs = buf.h
        ls = buf.low
        ci = c - base
        hc = hs[ci]
        lc = ls[ci]
        is_high = hc == max(hs[lo:hi])
        is_low = lc == min(ls[lo:hi])
        if is_high:
            if is_low and not self.compat:
                return  # both extremes: ambiguous, not a candidate (5.2 item 2)
            d = 1
            level = hc
        elif is_low:
            d = -1
            level = lc
        else:
            return
        cand = SwingPoint(c, d, level, buf.ts[ci], t, buf.atr[ci])
        pend = self.pending
        if pend is None:
            if not self.seen_candidate and self.compat:
                # library: bar 0 gets a swing opposite to the first real one (6.3)
                a_dir = -d
                a_level = buf.h[-base] if a_dir == 1 else buf.low[-base]
                art = SwingPoint(0, a_dir, a_level, buf.ts[-base], t, buf.atr[-base], True)
                out.append(self._event(art, "final", t))
                finals.append(art)
            self.seen_candidate = True
            self.pending = cand
            out.append(self._event(cand, "formed", None))
            return
        if pend.direction == d:
            if (level > pend.level) if d == 1 else (level < pend.level):
                out.append(self._event(pend, "retracted", t))
                self.pending = cand
                out.append(self._event(cand, "formed", None))
            return
        out.append(self._event(pend, "final", t))
        finals.append(pend)
        self.pending = cand
        out.append(self._event(cand, "formed", None))

    def finalize(self, n: int, buf: BarBuffer, out: list[SmcEvent], finals: list[SwingPoint]) -> None:
        """End of stream: the pending swing is final; compat adds the artificial swing at n-1."""
        pend = self.pending
        if pend is None:
            return
        self.pending = None
        out.append(self._event(pend, "final", None))
        finals.append(pend)
        if self.compat:
            last = n - 1
            li = last - buf.base
            a_dir = -pend.direction
            level = buf.h[li] if a_dir == 1 else buf.low[li]
            art = SwingPoint(last, a_dir, level, buf.ts[li], last, buf.atr[li], True)
            out.append(self._event(art, "final", None))
            finals.append(art)
