"""BOS / CHoCH as a stream (SPEC 2.3, 4.3; default-mode changes 5.2 items 4-5).

Every final swing tracks the first bar (from ``index + 2``) that breaks beyond its level, so
when it turns out to be the ``x3`` of a pattern the break is already known. A detection is
emitted only once broken; a later-positioned detection that breaks no later retracts it.
"""

from __future__ import annotations

import heapq

import msgspec

from .buffer import BarBuffer
from .events import SmcEvent
from .numeric import f32
from .swings import SwingPoint

__all__ = ["StructureDetector"]


class _Tracked(msgspec.Struct, array_like=True):
    """A final swing (``kind == ""``) or a detection, with its break search state."""

    index: int
    direction: int  # break side: 1 above (swing high / bullish), -1 below
    level: float  # float64 swing level (pattern tests)
    cmp: float  # level the break is tested against (f32 in compat)
    timestamp_ms: int
    broken: int = -1
    kind: str = ""
    detected_at: int = -1
    emitted: bool = False
    ok: bool = True  # the break bar passes the confluence filter (always, when it is off)


class StructureDetector(msgspec.Struct, array_like=True):
    """Pattern test on the last four final swings, break tracking, retraction, finality."""

    compat: bool
    close_break: bool
    recent: list[_Tracked] = []  # last <= 4 final swings
    n_final: int = 0
    alive: list[_Tracked] = []  # detections not retracted and not final, increasing index
    # compat: detections retracted before their break, still tracked for ghost rows:
    # (level, index) broken when above level; (-level, index) broken when below level
    ghost_up: list[tuple[float, int]] = []
    ghost_down: list[tuple[float, int]] = []
    ghosts: list[tuple[int, int]] = []  # compat: (index, broken_index) rows with NaN BOS/CHOCH/Level
    scope: str | None = None  # "internal" | "swing" when internal structure runs (context)
    confluence: bool = False  # suppress events whose break bar's wicks contradict the break

    def _confirms(self, direction: int, buf: BarBuffer, j: int) -> bool:
        """Confluence filter (LuxAlgo's, with its operand fixed): a bullish break bar's upper wick
        is not longer than its lower wick (it closed near its high), a bearish one mirrored."""
        bi = j - buf.base
        o = buf.o[bi]
        c = buf.c[bi]
        upper = buf.h[bi] - (o if o > c else c)
        lower = (c if o > c else o) - buf.low[bi]
        return upper <= lower if direction == 1 else lower <= upper

    # -- per bar -------------------------------------------------------------------------------
    def on_bar_breaks(self, t: int, buf: BarBuffer, out: list[SmcEvent]) -> None:
        """Test bar ``t`` against every unbroken level; apply retractions for new breaks."""
        bi = t - buf.base
        if self.close_break:
            up = down = buf.c[bi]
        else:
            up = buf.h[bi]
            down = buf.low[bi]
        for s in self.recent:
            if s.broken < 0 and t >= s.index + 2 and ((up > s.cmp) if s.direction == 1 else (down < s.cmp)):
                s.broken = t
                if self.confluence:
                    s.ok = self._confirms(s.direction, buf, t)
        top_new: _Tracked | None = None
        for d in self.alive:
            if d.broken < 0 and t >= d.index + 2 and ((up > d.cmp) if d.direction == 1 else (down < d.cmp)):
                d.broken = t
                if self.confluence:
                    d.ok = self._confirms(d.direction, buf, t)
                top_new = d  # alive is index-ordered: the last one is the highest index
        # retracted at a bar >= index + 2, so every later bar is in their break range
        gu = self.ghost_up
        while gu and gu[0][0] < up:
            self.ghosts.append((heapq.heappop(gu)[1], t))
        gd = self.ghost_down
        while gd and gd[0][0] < -down:
            self.ghosts.append((heapq.heappop(gd)[1], t))
        if top_new is not None:
            self._retract_before(top_new, t, t, out)
            for d in self.alive:
                if d.broken == t and not d.emitted:
                    self._emit(d, t, "formed", out)

    def _emit(
        self, d: _Tracked, t: int, action: str, out: list[SmcEvent], final_at: int | None = None
    ) -> None:
        if not d.ok:
            return  # confluence filter: the structure stands, the event is not reported
        d.emitted = True
        out.append(
            SmcEvent(
                pattern=d.kind,
                action=action,
                direction=d.direction,
                index=d.index,
                timestamp_ms=d.timestamp_ms,
                confirmed_at=max(d.detected_at, d.broken),
                final_at=final_at,
                level=d.cmp,
                broken_index=d.broken if d.broken >= 0 else None,
                scope=self.scope,
            )
        )

    def _retract_before(self, killer: _Tracked, j: int, t: int, out: list[SmcEvent]) -> None:
        """Retract alive detections positioned before ``killer`` not broken before bar ``j``."""
        keep: list[_Tracked] = []
        for k in self.alive:
            if k.index < killer.index and (k.broken < 0 or k.broken >= j):
                if k.emitted:
                    self._emit(k, t, "retracted", out, final_at=t)
                if self.compat:
                    if k.broken >= 0:
                        self.ghosts.append((k.index, k.broken))
                    else:
                        heap = self.ghost_up if k.direction == 1 else self.ghost_down
                        heapq.heappush(heap, (k.cmp if k.direction == 1 else -k.cmp, k.index))
            else:
                keep.append(k)
        self.alive = keep

    # -- new final swings ----------------------------------------------------------------------
    def on_finals(self, finals: list[SwingPoint], t: int, buf: BarBuffer, out: list[SmcEvent]) -> None:
        """Append newly final swings (known through bar ``t``) and test the pattern on each."""
        for s in finals:
            tr = _Tracked(
                s.index, s.direction, s.level, f32(s.level) if self.compat else s.level, s.timestamp_ms
            )
            self._scan_break(tr, t, buf)
            self.recent.append(tr)
            if len(self.recent) > 4:
                del self.recent[0]
            self.n_final += 1
            if self.n_final >= 4:
                self._test(t, out)

    def _scan_break(self, tr: _Tracked, t: int, buf: BarBuffer) -> None:
        """First break of ``tr`` among the buffered bars ``index+2 .. t``."""
        base = buf.base
        start = tr.index + 2
        if start > t:
            return
        src = buf.c if self.close_break else (buf.h if tr.direction == 1 else buf.low)
        lvl = tr.cmp
        seg = src[start - base : t + 1 - base]
        if tr.direction == 1:
            for k, x in enumerate(seg):
                if x > lvl:
                    tr.broken = start + k
                    break
        else:
            for k, x in enumerate(seg):
                if x < lvl:
                    tr.broken = start + k
                    break
        if self.confluence and tr.broken >= 0:
            tr.ok = self._confirms(tr.direction, buf, tr.broken)

    def _test(self, t: int, out: list[SmcEvent]) -> None:
        s4, s3, s2, s1 = self.recent[-4:]
        x4, x3, x2, x1 = s4.level, s3.level, s2.level, s1.level
        kind = ""
        d = s3.direction
        if s4.direction == -1 and d == 1 and s2.direction == -1 and s1.direction == 1:
            if x4 < x2 < x3 < x1:
                kind = "bos"
            elif x1 > x3 > x4 > x2:
                kind = "choch"
        elif s4.direction == 1 and d == -1 and s2.direction == 1 and s1.direction == -1:
            if x4 > x2 > x3 > x1:
                kind = "bos"
            elif x1 < x3 < x4 < x2:
                kind = "choch"
        if not kind:
            return
        det = _Tracked(s3.index, d, s3.level, s3.cmp, s3.timestamp_ms, s3.broken, kind, t, ok=s3.ok)
        if det.broken >= 0:
            self._retract_before(det, det.broken, t, out)
            self._emit(det, t, "formed", out)
        self.alive.append(det)

    # -- finality ------------------------------------------------------------------------------
    def check_final(self, t: int, length: int, pending_index: int | None, out: list[SmcEvent]) -> None:
        """Retire broken detections no future detection can retract (SPEC 4.3)."""
        if not self.alive:
            return
        keep: list[_Tracked] = []
        second_last = self.recent[-2].index if len(self.recent) >= 2 else -1
        for d in self.alive:
            b = d.broken
            if (
                b >= 0
                and t >= b - 2 + length
                and second_last > b - 2
                and (pending_index is None or pending_index > b - 2)
            ):
                self._emit(d, t, "final", out, final_at=t)
            else:
                keep.append(d)
        self.alive = keep

    def finalize(self) -> None:
        """End of stream: unbroken detections vanish (never emitted, no ghost row)."""
        self.alive = [d for d in self.alive if d.broken >= 0]
        self.ghost_up = []
        self.ghost_down = []
