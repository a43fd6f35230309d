"""Trend bias, strong/weak highs and lows, premium/discount zones and OTE levels (issue 15).

Driven by the swing-scope final swings, causally:

* **Bias** (LuxAlgo's swing trend): +1 after a close above the last final swing high, -1 after a
  close below the last final swing low; each swing level counts once. A ``trend`` event is
  emitted when the bias changes.
* **Trailing range** ``[bottom, top]``: ``top`` is the highest high since the last final swing
  high (from its bar on; reset when a new swing high becomes final), ``bottom`` mirrored. The
  top is *strong* when the bias is bearish (price broke down away from it: the high that must
  hold), else weak; the bottom is strong when the bias is bullish.
* **Zones**: premium above the equilibrium ``(top + bottom) / 2``, discount below it; OTE levels
  on the leg in the bias direction (bullish: ``top - f * (top - bottom)``, bearish:
  ``bottom + f * (top - bottom)``, f = 0.618 / 0.705 / 0.786; none while the bias is 0). A
  ``zones`` event is emitted whenever top, bottom or bias changes.

Both event kinds describe the state as of their bar, so they are final at once.
"""

from __future__ import annotations

import msgspec

from .buffer import BarBuffer
from .events import SmcEvent
from .swings import SwingPoint

__all__ = ["OTE_LEVELS", "ContextDetector"]

OTE_LEVELS = (0.618, 0.705, 0.786)


class ContextDetector(msgspec.Struct, array_like=True):
    """Swing bias and trailing range of one stream; emits ``trend`` and/or ``zones`` events."""

    trend: bool
    zones: bool
    bias: int = 0
    hi_index: int = -1  # last final swing high, its level and whether a close went above it
    hi_level: float = 0.0
    hi_crossed: bool = True
    lo_index: int = -1
    lo_level: float = 0.0
    lo_crossed: bool = True
    top: float | None = None
    bottom: float | None = None
    last: tuple[float, float, int] | None = None  # (top, bottom, bias) of the last zones event

    def on_bar(self, t: int, buf: BarBuffer, finals: list[SwingPoint], out: list[SmcEvent]) -> None:
        """Bar ``t`` after the swing detector: take new final swings, test the close, extend the range."""
        base = buf.base
        bi = t - base
        h = buf.h[bi]
        lo = buf.low[bi]
        for s in finals:
            seg_from = s.index - base
            if s.direction == 1:
                self.hi_index, self.hi_level, self.hi_crossed = s.index, s.level, False
                self.top = max(buf.h[seg_from:bi + 1])
            else:
                self.lo_index, self.lo_level, self.lo_crossed = s.index, s.level, False
                self.bottom = min(buf.low[seg_from:bi + 1])
        if self.top is not None and h > self.top:
            self.top = h
        if self.bottom is not None and lo < self.bottom:
            self.bottom = lo
        c = buf.c[bi]
        if not self.hi_crossed and c > self.hi_level:
            self.hi_crossed = True
            self._set_bias(1, t, buf.ts[bi], self.hi_level, self.hi_index, out)
        if not self.lo_crossed and c < self.lo_level:
            self.lo_crossed = True
            self._set_bias(-1, t, buf.ts[bi], self.lo_level, self.lo_index, out)
        if self.zones and self.top is not None and self.bottom is not None:
            state = (self.top, self.bottom, self.bias)
            if state != self.last:
                self.last = state
                out.append(self._zones_event(t, buf.ts[bi], self.top, self.bottom))

    def _set_bias(self, b: int, t: int, ts: int, level: float, swing: int, out: list[SmcEvent]) -> None:
        if b == self.bias:
            return
        self.bias = b
        if self.trend:
            out.append(
                SmcEvent(
                    pattern="trend",
                    action="formed",
                    direction=b,
                    index=t,
                    timestamp_ms=ts,
                    confirmed_at=t,
                    final_at=t,
                    level=level,
                    swing_index=swing,
                    bias=b,
                )
            )

    def _zones_event(self, t: int, ts: int, top: float, bottom: float) -> SmcEvent:
        b = self.bias
        rng = top - bottom
        ote: list[float | None]
        if b == 1:
            ote = [top - f * rng for f in OTE_LEVELS]
        elif b == -1:
            ote = [bottom + f * rng for f in OTE_LEVELS]
        else:
            ote = [None, None, None]
        return SmcEvent(
            pattern="zones",
            action="formed",
            direction=-1 if b < 0 else 1,
            index=t,
            timestamp_ms=ts,
            confirmed_at=t,
            final_at=t,
            top=top,
            bottom=bottom,
            equilibrium=(top + bottom) / 2.0,
            ote_618=ote[0],
            ote_705=ote[1],
            ote_786=ote[2],
            bias=b,
            strong_high=b == -1,
            strong_low=b == 1,
        )
