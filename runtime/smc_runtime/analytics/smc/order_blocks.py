"""Order blocks as a stream (SPEC 2.4, 4.4; default-mode changes 5.2 items 6-9).

The library decides bar ``i`` from the *final* swing set below ``i``, so a replay cursor trails
the live bar until that set is settled. Per direction we keep the last swing before the cursor,
whether it was crossed, and a running extreme of the candles since it, so creation is O(1).
Open OBs wait in heaps keyed by the price that mitigates / deletes them: O(log n) per change.
"""

from __future__ import annotations

import heapq

import msgspec

from .buffer import BarBuffer
from .events import SmcEvent
from .numeric import f32
from .swings import SwingPoint

__all__ = ["OrderBlockDetector"]


class _Ob(msgspec.Struct, array_like=True):
    """One order block and its life state."""

    direction: int
    candle: int
    created_at: int
    top: float
    bottom: float
    breaker: bool = False
    event: SmcEvent | None = None
    breaker_event: SmcEvent | None = None  # breaker_block events on (context)


class _Side(msgspec.Struct, array_like=True):
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
    obs: dict[int, _Ob] = {}  # by candle, creation order
    # (key, candle); an entry triggers when key < x (x oriented per side, see _update)
    unmitigated: list[tuple[float, int]] = []
    breakers: list[tuple[float, int]] = []
    # context: breakers waiting to trade fully on their new side, (-bottom, candle) bullish side /
    # (top, candle) bearish; then waiting for the retest, (bottom, candle) / (-top, candle)
    arming: list[tuple[float, int]] = []
    retests: list[tuple[float, int]] = []
    swing_ok: bool = True  # the swing bar passes the OB volatility filter


class OrderBlockDetector(msgspec.Struct, array_like=True):
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
    # context features (default mode): scope tag, ATR volatility filter, breaker_block events
    scope: str | None = None
    atr_filter: float = 0.0
    breaker_events: bool = False

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
            if self.atr_filter:
                side.swing_ok = buf.h[si] - buf.low[si] < self.atr_filter * buf.atr[si]
        o = buf.o[bi]
        h = buf.h[bi]
        lo = buf.low[bi]
        c = buf.c[bi]
        self._update(self.bull, i, t, h, min(o, c) if self.close_mitigation else lo, out)
        self._create(self.bull, i, t, c, buf, out)
        self._update(self.bear, i, t, lo, max(o, c) if self.close_mitigation else h, out)
        self._create(self.bear, i, t, c, buf, out)
        if self.atr_filter and h - lo >= self.atr_filter * buf.atr[bi]:
            return  # volatility filter: a bar this wide is never an OB candle
        # extend the running extreme (bars swing+1 .. i-1 at the next bar)
        bull = self.bull
        if bull.swing >= 0 and (bull.ext < 0 or lo <= bull.ext_val):
            bull.ext, bull.ext_val, bull.ext_other, bull.ext_ts = i, lo, h, buf.ts[bi]
        bear = self.bear
        if bear.swing >= 0 and (bear.ext < 0 or h >= bear.ext_val):
            bear.ext, bear.ext_val, bear.ext_other, bear.ext_ts = i, h, lo, buf.ts[bi]

    def _update(self, side: _Side, i: int, t: int, reclaim: float, mit: float, out: list[SmcEvent]) -> None:
        """Delete breakers reclaimed (``reclaim`` beyond the near edge), then mitigate (``mit``
        beyond the far edge); an OB mitigated on this bar is not tested for deletion until the next."""
        if not side.obs:
            return
        bull = side.d == 1
        brk = side.breakers
        x = reclaim if bull else -reclaim
        if brk and brk[0][0] < x:
            gone: list[int] = []
            while brk and brk[0][0] < x:
                gone.append(heapq.heappop(brk)[1])
            gone.sort()
            for candle in gone:
                ob = side.obs.pop(candle)
                assert ob.event is not None
                out.append(msgspec.structs.replace(ob.event, action="retracted", final_at=t))
                if ob.breaker_event is not None:
                    out.append(msgspec.structs.replace(ob.breaker_event, action="final", final_at=t))
                if self.compat and bull:
                    self.bull_mitigated[candle] = 0
            if self.breaker_events and len(side.arming) + len(side.retests) > 2 * len(side.obs) + 64:
                side.arming = [e for e in side.arming if e[1] in side.obs]
                side.retests = [e for e in side.retests if e[1] in side.obs]
                heapq.heapify(side.arming)
                heapq.heapify(side.retests)
        if self.breaker_events and (side.retests or side.arming):
            self._retest(side, i, t, reclaim, out)
        live = side.unmitigated
        x = -mit if bull else mit
        if live and live[0][0] < x:
            hit: list[int] = []
            while live and live[0][0] < x:
                hit.append(heapq.heappop(live)[1])
            hit.sort()
            mi = i - 1 if (self.compat and bull) else i
            for candle in hit:
                ob = side.obs[candle]
                assert ob.event is not None
                ob.breaker = True
                ob.event = msgspec.structs.replace(ob.event, action="mitigated", mitigated_index=mi)
                out.append(ob.event)
                heapq.heappush(brk, (ob.top if bull else -ob.bottom, candle))
                if self.compat and bull:
                    self.bull_mitigated[candle] = mi
                if self.breaker_events:
                    ob.breaker_event = SmcEvent(
                        pattern="breaker_block",
                        action="formed",
                        direction=-side.d,
                        index=candle,
                        timestamp_ms=ob.event.timestamp_ms,
                        confirmed_at=t,
                        top=ob.top,
                        bottom=ob.bottom,
                        mitigated_index=mi,
                        swing_index=ob.event.swing_index,
                        formed_at=i,
                        scope=self.scope,
                    )
                    out.append(ob.breaker_event)
                    heapq.heappush(side.arming, (-ob.bottom if bull else ob.top, candle))

    def _retest(self, side: _Side, i: int, t: int, reclaim: float, out: list[SmcEvent]) -> None:
        """Retest: the first bar that reaches back into the zone after price traded wholly on the
        breaker's new side (a bar that reclaimed the zone deleted the breaker just before). Then
        arm the breakers this bar left the zone for (``reclaim`` is the bar's high on the
        bullish-OB side, its low on the bearish one)."""
        bull = side.d == 1
        heap = side.retests
        x = reclaim if bull else -reclaim
        while heap and heap[0][0] <= x:
            candle = heapq.heappop(heap)[1]
            ob = side.obs.get(candle)
            if ob is None or ob.breaker_event is None:
                continue  # deleted (reclaimed) earlier: stale entry
            ob.breaker_event = msgspec.structs.replace(ob.breaker_event, action="retested", retest_index=i)
            out.append(ob.breaker_event)
        arm = side.arming
        while arm and arm[0][0] < -x:  # bullish side: high < bottom; bearish: low > top
            key, candle = heapq.heappop(arm)
            if candle in side.obs:
                heapq.heappush(heap, (-key, candle))

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
        elif self.atr_filter and not side.swing_ok:
            return  # every candle since the swing, and the swing bar, failed the volatility filter
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
            pattern="order_block",
            action="formed",
            direction=side.d,
            index=candle,
            timestamp_ms=ts,
            confirmed_at=t,
            top=top,
            bottom=bottom,
            volume=volume,
            percentage=pct,
            swing_index=side.swing,
            formed_at=i,
            scope=self.scope,
        )
        side.obs[candle] = _Ob(side.d, candle, i, top, bottom, False, ev)
        heapq.heappush(side.unmitigated, (-bottom if bull else top, candle))
        out.append(ev)
        if compat and not bull:
            self.bear_candles[candle] = i

    def resolve_compat(self, buf: BarBuffer, out: list[SmcEvent]) -> None:
        """SPEC 6.8 at end of stream: both passes wrote the same candle-indexed arrays."""
        n = buf.base + len(buf.h)
        for candle in [k for k in self.bull.obs if k in self.bear_candles]:
            ob = self.bull.obs.pop(candle)
            assert ob.event is not None
            out.append(msgspec.structs.replace(ob.event, action="retracted"))
        for candle in [k for k in self.bear.obs if k in self.bull_mitigated]:
            ob = self.bear.obs[candle]
            ev = ob.event
            assert ev is not None
            # the bearish OB inherits breaker=True: deleted on any later low below its bottom
            if any(buf.low[j - buf.base] < ob.bottom for j in range(ob.created_at + 1, n)):
                del self.bear.obs[candle]
                out.append(msgspec.structs.replace(ev, action="retracted"))
                continue
            inherited = self.bull_mitigated[candle]
            mi = inherited if inherited != 0 else None
            if ev.mitigated_index != mi:
                ob.event = msgspec.structs.replace(ev, action="updated", mitigated_index=mi)
                out.append(ob.event)

    def live_window_start(self) -> int:
        """Oldest bar the cursor still needs (volumes of ``i-2``)."""
        return self.cursor - 2
