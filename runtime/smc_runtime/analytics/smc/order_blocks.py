"""Order blocks as a stream (SPEC 2.4, 4.4; default-mode changes 5.2 items 6-9).

The library decides bar ``i`` from the *final* swing set below ``i``, so a replay cursor trails
the live bar until that set is settled. Per direction we keep the last swing before the cursor,
whether it was crossed, and a running extreme of the candles since it, so creation is O(1).
"""

from __future__ import annotations

import msgspec

from .buffer import BarBuffer
from .events import SmcEvent
from .numeric import f32
from .swings import SwingPoint

__all__ = ["OrderBlockDetector"]


class _Ob(msgspec.Struct):
    """One order block and its life state."""

    direction: int
    candle: int
    created_at: int
    top: float
    bottom: float
    breaker: bool = False
    event: SmcEvent | None = None


class _Side(msgspec.Struct):
    """Bullish (``d = 1``: swing highs, lowest-low candle) or bearish mirror state."""

    d: int
    swing: int = -1  # last final swing of this side before the cursor
    swing_level: float = 0.0
    swing_high: float = 0.0
    swing_low: float = 0.0
    swing_ts: int = 0
    crossed: bool = False
    ext: int = -1  # candle with the extreme since the swing (last on ties)
    ext_val: float = 0.0
    ext_other: float = 0.0
    ext_ts: int = 0
    active: list[_Ob] = []


class OrderBlockDetector(msgspec.Struct):
    """Replay-cursor OB detector; compat also records what SPEC 6.8's shared arrays need."""

    compat: bool
    close_mitigation: bool
    length: int
    cursor: int = 0
    queue: list[SwingPoint] = []  # final swings not yet passed by the cursor
    bull: _Side = msgspec.field(default_factory=lambda: _Side(1))
    bear: _Side = msgspec.field(default_factory=lambda: _Side(-1))
    # compat only (6.8): candles that ever held a bearish OB; bullish candles ever mitigated ->
    # the library's shared MitigatedIndex at the end of the bullish pass (0 if deleted)
    bear_candles: dict[int, int] = {}
    bull_mitigated: dict[int, int] = {}

    def ready(self, t: int, pending_index: int | None, seen_candidate: bool) -> bool:
        """Whether bar ``cursor`` can be decided: every swing below it is final (SPEC 4.4)."""
        i = self.cursor
        if i > t or t < i - 1 + self.length:
            return False
        if self.compat and not seen_candidate:
            return False
        return pending_index is None or pending_index >= i

    def advance(
        self, t: int, buf: BarBuffer, pending_index: int | None, seen_candidate: bool, out: list[SmcEvent]
    ) -> None:
        """Process every bar the cursor may decide as of live bar ``t``."""
        while self.ready(t, pending_index, seen_candidate):
            self._process(self.cursor, t, buf, out)
            self.cursor += 1

    def replay_to_end(self, n: int, buf: BarBuffer, out: list[SmcEvent]) -> None:
        """End of stream: all swings are final, process the remaining bars."""
        while self.cursor < n:
            self._process(self.cursor, n - 1, buf, out)
            self.cursor += 1

    def _process(self, i: int, t: int, buf: BarBuffer, out: list[SmcEvent]) -> None:
        base = buf.base
        bi = i - base
        q = self.queue
        while q and q[0].index < i:
            s = q.pop(0)
            side = self.bull if s.direction == 1 else self.bear
            si = s.index - base
            side.swing = s.index
            side.swing_level = s.level
            side.swing_high = buf.h[si]
            side.swing_low = buf.low[si]
            side.swing_ts = buf.ts[si]
            side.crossed = False
            side.ext = -1
        o = buf.o[bi]
        h = buf.h[bi]
        lo = buf.low[bi]
        c = buf.c[bi]
        self._update(self.bull, i, t, h, min(o, c) if self.close_mitigation else lo, out)
        self._create(self.bull, i, t, c, buf, out)
        self._update(self.bear, i, t, lo, max(o, c) if self.close_mitigation else h, out)
        self._create(self.bear, i, t, c, buf, out)
        # extend the running extreme (bars swing+1 .. i-1 at the next bar)
        bull = self.bull
        if bull.swing >= 0 and (bull.ext < 0 or lo <= bull.ext_val):
            bull.ext, bull.ext_val, bull.ext_other, bull.ext_ts = i, lo, h, buf.ts[bi]
        bear = self.bear
        if bear.swing >= 0 and (bear.ext < 0 or h >= bear.ext_val):
            bear.ext, bear.ext_val, bear.ext_other, bear.ext_ts = i, h, lo, buf.ts[bi]

    def _update(self, side: _Side, i: int, t: int, reclaim: float, mit: float, out: list[SmcEvent]) -> None:
        """Mitigate (``mit`` beyond the far edge) or delete breakers (``reclaim`` beyond the near edge)."""
        if not side.active:
            return
        bull = side.d == 1
        removed = False
        for ob in side.active:
            ev = ob.event
            assert ev is not None
            if ob.breaker:
                if (reclaim > ob.top) if bull else (reclaim < ob.bottom):
                    out.append(msgspec.structs.replace(ev, action="retracted", final_at=t))
                    ob.event = None
                    removed = True
                    if self.compat and bull and ob.candle in self.bull_mitigated:
                        self.bull_mitigated[ob.candle] = 0
            elif (mit < ob.bottom) if bull else (mit > ob.top):
                ob.breaker = True
                mi = i - 1 if (self.compat and bull) else i
                ev = msgspec.structs.replace(ev, action="mitigated", mitigated_index=mi)
                ob.event = ev
                out.append(ev)
                if self.compat and bull:
                    self.bull_mitigated[ob.candle] = mi
        if removed:
            side.active = [ob for ob in side.active if ob.event is not None]

    def _create(self, side: _Side, i: int, t: int, c: float, buf: BarBuffer, out: list[SmcEvent]) -> None:
        if side.swing < 0 or side.crossed:
            return
        bull = side.d == 1
        if not ((c > side.swing_level) if bull else (c < side.swing_level)):
            return
        side.crossed = True
        compat = self.compat
        if side.ext >= 0:
            candle, ts = side.ext, side.ext_ts
            top, bottom = (side.ext_other, side.ext_val) if bull else (side.ext_val, side.ext_other)
        else:  # i == swing + 1: the swing bar itself (library swaps it for bullish, 6.7)
            candle, ts = side.swing, side.swing_ts
            if bull and compat:
                top, bottom = side.swing_low, side.swing_high
            else:
                top, bottom = side.swing_high, side.swing_low
        base = buf.base
        vs = buf.v
        v0 = vs[i - base]
        v1 = vs[i - 1 - base] if i >= 1 else 0.0
        v2 = vs[i - 2 - base] if i >= 2 else 0.0
        if compat:
            top, bottom = f32(top), f32(bottom)
            volume = f32(v0 + v1 + v2)
            hv = f32(v0 + v1)
            lv = f32(v2)
            mx = max(hv, lv)
            pct = f32(f32(min(hv, lv) / mx) * 100.0) if mx != 0 else 100.0
        else:
            volume = v0 + v1 + v2
            hv = v0 + v1
            mx = max(hv, v2)
            pct = min(hv, v2) / mx * 100.0 if mx != 0 else 100.0
        ev = SmcEvent(
            pattern="order_block", action="formed", direction=side.d, index=candle, timestamp_ms=ts,
            confirmed_at=t, top=top, bottom=bottom, volume=volume, percentage=pct, swing_index=side.swing,
        )
        side.active.append(_Ob(side.d, candle, i, top, bottom, False, ev))
        out.append(ev)
        if compat and not bull:
            self.bear_candles[candle] = i

    def resolve_compat(self, buf: BarBuffer, out: list[SmcEvent]) -> None:
        """SPEC 6.8 at end of stream: both passes wrote the same candle-indexed arrays."""
        n = buf.base + len(buf.h)
        if self.bear_candles:
            keep: list[_Ob] = []
            for ob in self.bull.active:
                if ob.candle in self.bear_candles and ob.event is not None:
                    out.append(msgspec.structs.replace(ob.event, action="retracted"))
                else:
                    keep.append(ob)
            self.bull.active = keep
        if self.bull_mitigated:
            keep = []
            lows = buf.low
            for ob in self.bear.active:
                ev = ob.event
                assert ev is not None
                if ob.candle not in self.bull_mitigated:
                    keep.append(ob)
                    continue
                # the bearish OB inherits breaker=True: deleted on any later low below its bottom
                if any(lows[j - buf.base] < ob.bottom for j in range(ob.created_at + 1, n)):
                    out.append(msgspec.structs.replace(ev, action="retracted"))
                    continue
                inherited = self.bull_mitigated[ob.candle]
                mi = inherited if inherited != 0 else None
                if ev.mitigated_index != mi:
                    ev = msgspec.structs.replace(ev, action="updated", mitigated_index=mi)
                    out.append(ev)
                    ob.event = ev
                keep.append(ob)
            self.bear.active = keep

    def live_window_start(self) -> int:
        """Oldest bar the cursor still needs (volumes of ``i-2``)."""
        return self.cursor - 2
