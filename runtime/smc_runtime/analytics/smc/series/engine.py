"""The per-bar series of one stream: previous high/low, sessions, retracements.

``SeriesEngine`` is a bar detector of its own (beside ``SmcEngine``, with its own snapshot), so
it can be switched on per stream without touching the five-pattern path. Per bar it updates
every configured calculator and emits a *compact* event stream: a ``SeriesEvent`` only when
something a trader acts on changes (new reference levels, a level broken, a session opening or
closing, a new retracement leg, a retracement level crossed), never one per bar. With
``keep_rows=True`` it also keeps every bar's row for ``smc-runtime detect --series``.

Retracements need final swings: the engine runs its own ``SwingDetector`` (same rules as
``SmcEngine``'s) and a cursor that feeds bar ``i`` once its swing status is final.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from ..bars import Bar, validate_bar
from ..buffer import BarBuffer
from ..state_codec import StateCodec
from ..swings import SwingDetector, SwingPoint
from .previous_high_low import PreviousHighLow
from .retracements import Retracements, Row, compat_rows
from .sessions import Session

__all__ = ["RETRACEMENT_LEVELS", "SeriesEngine", "SeriesEvent", "SeriesSpec", "parse_series"]

_SNAPSHOT_VERSION = 1
# deepest-retracement levels that raise a ``crossed`` event (once per leg): the usual OTE band
RETRACEMENT_LEVELS: Final = (50.0, 61.8, 70.5, 78.6, 100.0)
ROW_COLUMNS: Final = {
    "previous_high_low": ("previous_high", "previous_low", "broken_high", "broken_low"),
    "sessions": ("active", "high", "low"),
    "retracements": ("direction", "current_retracement", "deepest_retracement"),
}


class SeriesSpec(msgspec.Struct, frozen=True, array_like=True):
    """One configured series: ``kind`` (a key of ``ROW_COLUMNS``), its parameter, its zone."""

    kind: str
    param: str = ""
    time_zone: str = "UTC"

    @property
    def name(self) -> str:
        """The spec as written: ``previous_high_low:1D``, ``sessions:London``, ``retracements``."""
        base = f"{self.kind}:{self.param}" if self.param else self.kind
        return base if self.time_zone == "UTC" else f"{base}@{self.time_zone}"


def parse_series(spec: str, time_zone: str = "UTC") -> SeriesSpec:
    """``NAME[:PARAM][@ZONE]`` -> ``SeriesSpec`` (``ValueError`` if malformed; the parameter
    itself is checked when the calculator is built). ``@ZONE`` overrides ``time_zone``."""
    text, at, zone = spec.partition("@")
    kind, _, param = text.strip().partition(":")
    if kind not in ROW_COLUMNS:
        raise ValueError(f"unknown series {kind!r}; one of {', '.join(ROW_COLUMNS)}")
    if kind == "retracements" and param:
        raise ValueError("retracements takes no parameter (it uses the swing length)")
    if kind == "previous_high_low" and not param:
        param = "1D"
    if kind == "sessions" and not param:
        raise ValueError("sessions needs a session: sessions:London, sessions:Custom:06:00-09:00")
    return SeriesSpec(kind, param, (zone.strip() if at else time_zone) or "UTC")


class SeriesEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One ``smc_signals`` event of a per-bar series (docs/schemas.md, "Series events").

    ``pattern``: ``previous_high_low`` | ``session`` | ``retracement``; ``series`` names the
    configured series (``previous_high_low:1D``); ``index``/``timestamp_ms``: the bar it
    describes; ``confirmed_at``: the bar at which it was known. Series events never change
    once emitted (``final_at == confirmed_at``).
    """

    pattern: str
    action: str
    series: str
    direction: int
    index: int
    timestamp_ms: int
    confirmed_at: int
    final_at: int
    high: float | None = None
    low: float | None = None
    level: float | None = None
    current: float | None = None
    deepest: float | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict with every field, in declaration order."""
        return {f: getattr(self, f) for f in self.__struct_fields__}


class _Phl(msgspec.Struct, array_like=True):
    spec: SeriesSpec
    calc: PreviousHighLow
    last: tuple[float | None, float | None, int, int] = (None, None, 0, 0)
    ref: int = -1  # which bin the levels come from (a new one: an ``updated`` event, flags start over)


class _Sess(msgspec.Struct, array_like=True):
    spec: SeriesSpec
    calc: Session
    open_index: int = -1  # first bar of the current occurrence (-1: inactive)
    last_index: int = -1
    last_ts: int = 0
    last_high: float | None = None
    last_low: float | None = None
    occurrence: int | None = None


class _Ret(msgspec.Struct, array_like=True):
    spec: SeriesSpec
    calc: Retracements
    buf: BarBuffer
    swings: SwingDetector
    cursor: int = 0
    swing_at: dict[int, tuple[int, float]] = {}  # final swings at or after the cursor
    last_dir: int = 0
    crossed: int = 0  # RETRACEMENT_LEVELS already crossed in this leg


class _State(msgspec.Struct, array_like=True):
    version: int
    compat: bool
    swing_length: int
    keep_rows: bool
    phl: list[_Phl]
    sess: list[_Sess]
    ret: _Ret | None
    n: int = 0
    last_ts: int | None = None
    finalized: bool = False
    rows: dict[str, list[Any]] = {}


_CODEC = StateCodec(_State, _SNAPSHOT_VERSION, "series")


class SeriesEngine:
    """The configured series of one (symbol, interval) stream, in one mode."""

    __slots__ = ("_s",)

    def __init__(self, specs: Sequence[SeriesSpec], *, compat: bool, swing_length: int = 10,
                 keep_rows: bool = False) -> None:
        if swing_length < 1:
            raise ValueError("swing_length must be >= 1")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"series configured twice: {names}")
        phl = [_Phl(s, PreviousHighLow.create(s.param, compat))
               for s in specs if s.kind == "previous_high_low"]
        sess = [_Sess(s, Session.create(s.param, compat, s.time_zone))
                for s in specs if s.kind == "sessions"]
        rets = [s for s in specs if s.kind == "retracements"]
        ret = (_Ret(rets[0], Retracements(compat), BarBuffer(), SwingDetector(swing_length, compat))
               if rets else None)
        self._s = _State(_SNAPSHOT_VERSION, compat, swing_length, keep_rows, phl, sess, ret,
                         rows={s.name: [] for s in specs} if keep_rows else {})

    # -- the BarDetector interface ----------------------------------------------------------
    def on_bar(self, bar: Bar) -> list[SeriesEvent]:
        """Feed the next closed bar; return the series events it raised (``ValueError`` for a bad bar)."""
        s = self._s
        if s.finalized:
            raise RuntimeError("on_bar after finalize()")
        reason = validate_bar(bar, s.last_ts, ohlc_consistency=not s.compat)
        if reason is not None:
            raise ValueError(reason)
        i = s.n
        s.n = i + 1
        s.last_ts = ts = bar.timestamp_ms
        h, lo = bar.high, bar.low
        out: list[SeriesEvent] = []
        rows = s.rows if s.keep_rows else None
        for p in s.phl:
            row = p.calc.update(ts, h, lo)
            self._phl_events(p, row, i, ts, out)
            if rows is not None:
                rows[p.spec.name].append(row)
        for q in s.sess:
            srow = q.calc.update(ts, h, lo)
            self._session_events(q, srow, i, ts, out)
            if rows is not None:
                rows[q.spec.name].append(srow)
        if s.ret is not None:
            self._ret_bar(s.ret, i, bar, out)
        return out

    def finalize(self) -> list[SeriesEvent]:
        """End of stream: settle the pending swing and feed the bars it held back."""
        s = self._s
        if s.finalized:
            return []
        s.finalized = True
        out: list[SeriesEvent] = []
        r = s.ret
        if r is not None and s.n:
            finals: list[SwingPoint] = []
            r.swings.finalize(s.n, r.buf, [], finals)
            for f in finals:
                r.swing_at[f.index] = (f.direction, f.level)
            self._ret_advance(r, s.n - 1, s.n, out)
        return out

    def snapshot(self) -> bytes:
        """Full state as deterministic msgpack bytes."""
        return _CODEC.encode(self._s)

    @classmethod
    def restore(cls, data: bytes) -> SeriesEngine:
        """Rebuild an engine from ``snapshot()`` bytes."""
        eng = cls.__new__(cls)
        eng._s = _CODEC.decode(data)
        return eng

    # -- rows (smc-runtime detect --series) -------------------------------------------------
    def rows(self, spec: SeriesSpec) -> list[tuple[Any, ...]]:
        """Every bar's row of ``spec`` (needs ``keep_rows``; retracements complete after ``finalize``)."""
        s = self._s
        rows = [tuple(r) for r in s.rows[spec.name]]
        if spec.kind == "retracements" and s.compat:
            return list(compat_rows(rows))
        return rows

    # -- previous high / low ----------------------------------------------------------------
    def _phl_events(self, p: _Phl, row: tuple[float | None, float | None, int, int], i: int, ts: int,
                    out: list[SeriesEvent]) -> None:
        ph, pl, bh, bl = row
        last = p.last
        name = p.spec.name
        calc = p.calc
        ref = calc.group if calc.compat else calc.completed
        if ph is not None and ref != p.ref:
            p.ref = ref
            out.append(SeriesEvent(pattern="previous_high_low", action="updated", series=name, direction=0,
                                   index=i, timestamp_ms=ts, confirmed_at=i, final_at=i, high=ph, low=pl))
            last = (None, None, 0, 0)  # new levels: the broken flags start over
        if bh and not last[2]:
            out.append(SeriesEvent(pattern="previous_high_low", action="broken", series=name, direction=1,
                                   index=i, timestamp_ms=ts, confirmed_at=i, final_at=i, level=ph))
        if bl and not last[3]:
            out.append(SeriesEvent(pattern="previous_high_low", action="broken", series=name, direction=-1,
                                   index=i, timestamp_ms=ts, confirmed_at=i, final_at=i, level=pl))
        p.last = row

    # -- sessions ---------------------------------------------------------------------------
    def _session_events(self, q: _Sess, row: tuple[int, float | None, float | None], i: int, ts: int,
                        out: list[SeriesEvent]) -> None:
        active = row[0]
        occ = q.calc.occurrence  # default mode: a new occurrence while active also closes the old
        new_run = active and (q.open_index < 0 or (not q.calc.compat and occ != q.occurrence))
        if q.open_index >= 0 and (not active or new_run):
            out.append(SeriesEvent(pattern="session", action="closed", series=q.spec.name, direction=0,
                                   index=q.last_index, timestamp_ms=q.last_ts, confirmed_at=i, final_at=i,
                                   high=q.last_high, low=q.last_low))
            q.open_index = -1
        if new_run:
            q.open_index = i
            q.occurrence = occ
            out.append(SeriesEvent(pattern="session", action="opened", series=q.spec.name, direction=0,
                                   index=i, timestamp_ms=ts, confirmed_at=i, final_at=i,
                                   high=row[1], low=row[2]))
        if active:
            q.last_index = i
            q.last_ts = ts
            q.last_high = row[1]
            q.last_low = row[2]

    # -- retracements -----------------------------------------------------------------------
    def _ret_bar(self, r: _Ret, t: int, bar: Bar, out: list[SeriesEvent]) -> None:
        buf = r.buf
        buf.append(bar.timestamp_ms, bar.open, bar.high, bar.low, bar.close, bar.volume, 0.0)
        finals: list[SwingPoint] = []
        sw = r.swings
        sw.on_bar(t, buf, [], finals)
        for f in finals:
            r.swing_at[f.index] = (f.direction, f.level)
        if self._s.compat and not sw.seen_candidate:
            return  # the artificial swing at bar 0 is decided by the first candidate
        limit = t - sw.length + 1
        pend = sw.pending
        if pend is not None and pend.index < limit:
            limit = pend.index
        self._ret_advance(r, t, limit, out)
        keep = min(r.cursor, t - 2 * sw.length) - 1
        if keep > 0:
            buf.prune(keep)

    def _ret_advance(self, r: _Ret, t: int, limit: int, out: list[SeriesEvent]) -> None:
        """Feed bars ``cursor .. limit-1`` (their swing status is final) to the calculator."""
        s = self._s
        buf = r.buf
        base = buf.base
        rows = s.rows.get(r.spec.name) if s.keep_rows else None
        calc = r.calc
        compat = s.compat
        while r.cursor < limit:
            i = r.cursor
            r.cursor = i + 1
            sw = r.swing_at.pop(i, None)
            k = i - base
            row = calc.update(buf.h[k], buf.low[k], sw[0] if sw else 0, sw[1] if sw else 0.0)
            if rows is not None:
                rows.append(row)
            # compat: the library shows this row at bar i+1 (6.13); it exists once bar i+1 did
            at = i + 1 if compat else i
            if at > t:
                continue
            self._ret_events(r, row, at, buf.ts[at - base], t, out)

    def _ret_events(self, r: _Ret, row: Row, at: int, ts: int, t: int, out: list[SeriesEvent]) -> None:
        d, cur, deep = row
        name = r.spec.name
        if d != r.last_dir and d != 0:
            r.last_dir = d
            r.crossed = 0
            calc = r.calc
            out.append(SeriesEvent(pattern="retracement", action="formed", series=name, direction=d,
                                   index=at, timestamp_ms=ts, confirmed_at=t, final_at=t, high=calc.top,
                                   low=calc.bottom, current=cur, deepest=deep))
        if deep is None or d == 0:
            return
        while r.crossed < len(RETRACEMENT_LEVELS) and deep >= RETRACEMENT_LEVELS[r.crossed]:
            out.append(SeriesEvent(pattern="retracement", action="crossed", series=name, direction=d,
                                   index=at, timestamp_ms=ts, confirmed_at=t, final_at=t,
                                   level=RETRACEMENT_LEVELS[r.crossed], current=cur, deepest=deep))
            r.crossed += 1


def series_event_types() -> list[str]:
    """``pattern/action`` pairs a series engine emits (for docs and the demo summary)."""
    return ["previous_high_low/updated", "previous_high_low/broken", "session/opened", "session/closed",
            "retracement/formed", "retracement/crossed"]

