"""Wires the SMC detectors for one stream: ``on_bar`` per closed bar, ``finalize`` at the end.

The engine owns the bar buffer and the per-bar order of the detectors, folds every emitted
event into the alive set, and snapshots its whole state to deterministic msgpack bytes so a
restored engine continues with byte-identical outputs (exactly-once recovery).
"""

from __future__ import annotations

import msgspec

from .bars import Bar, validate_bar
from .buffer import BarBuffer
from .context import ContextDetector
from .events import SmcEvent, event_key, sort_key
from .fvg import FvgDetector
from .liquidity import LiquidityDetector
from .order_blocks import OrderBlockDetector
from .params import SmcParams, parse_fvg_min_size
from .state_codec import StateCodec
from .structure import StructureDetector
from .swings import SwingDetector, SwingPoint

__all__ = ["InvalidBarError", "SmcEngine"]

_SNAPSHOT_VERSION = 1
_ATR_PERIOD = 14


class InvalidBarError(ValueError):
    """A bar that failed ``validate_bar``; ``reason`` says why. It was not fed to any detector."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _State(msgspec.Struct, array_like=True):
    """Everything an engine needs to continue: the snapshot payload."""

    version: int
    params: SmcParams
    keep_final: bool
    buf: BarBuffer
    swings: SwingDetector
    fvg: FvgDetector
    structure: StructureDetector
    ob: OrderBlockDetector
    liq: LiquidityDetector
    n: int = 0
    last_ts: int | None = None
    finalized: bool = False
    atr: float = 0.0
    tr_sum: float = 0.0
    prev_close: float = 0.0
    book: dict[int, SmcEvent] = {}
    # context features (issue 15), appended with defaults so older snapshots still decode
    atr_on: bool = False  # ATR14 needed by a context feature (liquidity atr: computes it anyway)
    iswings: SwingDetector | None = None  # internal structure: swings, BOS/CHoCH, OBs
    istructure: StructureDetector | None = None
    iob: OrderBlockDetector | None = None
    ctx: ContextDetector | None = None  # trend bias and zones


_CODEC = StateCodec(_State, _SNAPSHOT_VERSION, "SMC")


class SmcEngine:
    """All SMC detectors of one (symbol, interval) stream, in one mode.

    ``keep_final=False`` (the live default) forgets events once final, keeping memory and
    snapshots bounded; ``keep_final=True`` keeps them so ``alive()`` is the whole conformance
    set (``smc-runtime detect``).
    """

    __slots__ = ("_s",)

    def __init__(self, params: SmcParams, *, keep_final: bool = False) -> None:
        kind, value = params.liquidity_tolerance()
        scope = "swing" if params.internal_length else None
        length = params.swing_length
        min_kind, min_value = parse_fvg_min_size(params.fvg_min_size)
        self._s = _State(
            version=_SNAPSHOT_VERSION,
            params=params,
            keep_final=keep_final,
            buf=BarBuffer(),
            swings=SwingDetector(length, params.compat, scope=scope),
            fvg=FvgDetector(
                params.join_fvg,
                max_open=params.max_open_fvgs,
                min_kind=min_kind,
                min_value=min_value,
                mitigation=params.fvg_mitigation,
                inverse=params.inverse_fvg,
            ),
            structure=StructureDetector(params.compat, params.close_break, scope=scope),
            ob=self._ob(params, length, scope),
            liq=LiquidityDetector(params.compat, kind, value, outcomes=params.sweep_outcome),
            atr_on=params.needs_atr(),
        )
        il = params.internal_length
        if il:
            s = self._s
            s.iswings = SwingDetector(il, False, scope="internal")
            s.istructure = StructureDetector(
                False, params.close_break, scope="internal", confluence=params.internal_confluence
            )
            s.iob = self._ob(params, il, "internal")
        if params.trend or params.zones:
            self._s.ctx = ContextDetector(params.trend, params.zones)

    @staticmethod
    def _ob(params: SmcParams, length: int, scope: str | None) -> OrderBlockDetector:
        return OrderBlockDetector(
            params.compat,
            params.close_mitigation,
            length,
            scope=scope,
            atr_filter=params.ob_atr_filter,
            breaker_events=params.breakers,
        )

    @property
    def params(self) -> SmcParams:
        """The parameters the engine was built with."""
        return self._s.params

    @property
    def bars_seen(self) -> int:
        """Number of bars accepted so far (the next bar gets this index)."""
        return self._s.n

    def on_bar(self, bar: Bar) -> list[SmcEvent]:
        """Feed the next closed bar; return the events it formed, changed, finalized or retracted.

        Raises ``InvalidBarError`` (state unchanged) for a bar ``validate_bar`` rejects.
        """
        s = self._s
        if s.finalized:
            raise RuntimeError("on_bar after finalize()")
        compat = s.params.compat
        reason = validate_bar(bar, s.last_ts, ohlc_consistency=not compat)
        if reason is not None:
            raise InvalidBarError(reason)
        t = s.n
        s.n = t + 1
        s.last_ts = bar.timestamp_ms
        h = bar.high
        lo = bar.low
        liq = s.liq
        atr = _next_atr(s, t, bar) if liq.kind == "atr" or s.atr_on else 0.0
        buf = s.buf
        buf.append(bar.timestamp_ms, bar.open, h, lo, bar.close, bar.volume, atr)

        out: list[SmcEvent] = []
        s.fvg.on_bar(t, buf, out)
        structure = s.structure
        structure.on_bar_breaks(t, buf, out)
        liq.on_bar(t, h, lo, out, bar.close)
        swings = s.swings
        finals: list[SwingPoint] = []
        swings.on_bar(t, buf, out, finals)
        if finals:
            structure.on_finals(finals, t, buf, out)
            liq.on_finals(finals, t, buf, out)
            s.ob.queue.extend(finals)
        pend = swings.pending
        pend_idx = pend.index if pend is not None else None
        length = swings.length
        structure.check_final(t, length, pend_idx, out)
        liq.check_final(t, length, pend_idx, out)
        ob = s.ob
        ob.advance(t, buf, pend_idx, swings.seen_candidate, out)
        if s.ctx is not None:
            s.ctx.on_bar(t, buf, finals, out)
        if not compat:
            keep = t - 2 * length
            cur = ob.cursor - 2
            if s.iob is not None:
                self._internal(t, buf, out)
                icur = s.iob.cursor - 2
                if icur < cur:
                    cur = icur
            buf.prune(cur if cur < keep else keep)
        if out:
            self._fold(out)
        return out

    def _internal(self, t: int, buf: BarBuffer, out: list[SmcEvent]) -> None:
        """Internal-scope swings, BOS/CHoCH and OBs on bar ``t`` (same steps as the swing scope)."""
        s = self._s
        sw, st, ob = s.iswings, s.istructure, s.iob
        assert sw is not None and st is not None and ob is not None
        st.on_bar_breaks(t, buf, out)
        finals: list[SwingPoint] = []
        sw.on_bar(t, buf, out, finals)
        if finals:
            st.on_finals(finals, t, buf, out)
            ob.queue.extend(finals)
        pend = sw.pending
        pend_idx = pend.index if pend is not None else None
        st.check_final(t, sw.length, pend_idx, out)
        ob.advance(t, buf, pend_idx, sw.seen_candidate, out)

    def finalize(self) -> list[SmcEvent]:
        """End of stream (SPEC 4.0): settle pending swings, runs, groups and the OB tail."""
        s = self._s
        if s.finalized:
            return []
        s.finalized = True
        n = s.n
        out: list[SmcEvent] = []
        if n == 0:
            return out
        buf = s.buf
        s.fvg.finalize(n, out)
        finals: list[SwingPoint] = []
        s.swings.finalize(n, buf, out, finals)
        s.structure.on_finals(finals, n - 1, buf, out)
        s.structure.finalize()
        s.liq.on_finals(finals, n - 1, buf, out)
        s.liq.finalize(buf, out)
        s.ob.queue.extend(finals)
        s.ob.replay_to_end(n, buf, out)
        if s.iswings is not None and s.istructure is not None and s.iob is not None:
            ifinals: list[SwingPoint] = []
            s.iswings.finalize(n, buf, out, ifinals)
            s.istructure.on_finals(ifinals, n - 1, buf, out)
            s.istructure.finalize()
            s.iob.queue.extend(ifinals)
            s.iob.replay_to_end(n, buf, out)
        if s.params.compat:
            s.ob.resolve_compat(buf, out)
        self._fold(out)
        return out

    def _fold(self, events: list[SmcEvent]) -> None:
        book = self._s.book
        keep_final = self._s.keep_final
        for ev in events:
            key = event_key(ev)
            if ev.action == "retracted" or (ev.final_at is not None and not keep_final):
                book.pop(key, None)
            else:
                book[key] = ev

    def limit_open_fvgs(self, max_open: int) -> None:
        """Apply the current ``max_open_fvgs`` to a restored engine (its snapshot may predate the
        setting or carry another value); takes effect at the next gap formed. Not in compat mode."""
        if not self._s.params.compat:
            self._s.fvg.max_open = max_open

    def alive(self) -> list[SmcEvent]:
        """Events alive now (latest version of each), in SPEC 7 order.

        Without ``keep_final`` this omits events that already became final.
        """
        return sorted(self._s.book.values(), key=sort_key)

    def ghosts(self) -> list[tuple[int, int]]:
        """Compat: the library's bos_choch ghost rows ``(index, broken_index)`` (SPEC 6.4)."""
        return sorted(self._s.structure.ghosts)

    def snapshot(self) -> bytes:
        """Full state as deterministic msgpack bytes."""
        return _CODEC.encode(self._s)

    @classmethod
    def restore(cls, data: bytes) -> SmcEngine:
        """Rebuild an engine from ``snapshot()`` bytes."""
        eng = cls.__new__(cls)
        eng._s = _CODEC.decode(data)
        return eng


def _next_atr(s: _State, t: int, bar: Bar) -> float:
    """Wilder's ATR after bar ``t`` (the reference's: a plain mean of the true ranges until the
    period is full, then the smoothed one); updates ``s``."""
    h, lo = bar.high, bar.low
    if t == 0:
        tr = h - lo
    else:
        pc = s.prev_close
        tr = (h if h > pc else pc) - (lo if lo < pc else pc)
    if t < _ATR_PERIOD:
        s.tr_sum += tr
        atr = s.tr_sum / (t + 1)
    else:
        atr = (s.atr * (_ATR_PERIOD - 1) + tr) / _ATR_PERIOD
    s.atr = atr
    s.prev_close = bar.close
    return atr
