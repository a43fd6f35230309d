"""Previous high / low of a higher time frame, per bar (SPEC 2.6, 4.6; default mode 5.2 item 11).

Both modes keep only the last two completed non-empty bins and the own bin, so a bar costs O(1)
and the state is a handful of numbers. Compat reproduces the library's pandas resample: start
labels for minute/hour/day bins (origin = the first bar's UTC midnight), end labels for W/M/Q/Y,
and "previous" = bin ``K-2`` with K = labels strictly before the bar (which makes a bar at a
bin's start, and most bars of end-labelled bins, see two bins back: 6.11). Default mode uses
half-open UTC bins and always the last completed bin.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

import msgspec

from ..numeric import f32

__all__ = ["PreviousHighLow", "parse_time_frame"]

_MIN = 60_000
_DAY = 86_400_000
_WEEK = 7 * _DAY
_MONDAY0 = 4 * _DAY  # 1970-01-05, the first Monday after the epoch
_TF_RE = re.compile(r"^(\d*)(min|h|D|W|M|ME|Q|QE|Y|YE)$")
_CANON = {"ME": "M", "QE": "Q", "YE": "Y"}


def parse_time_frame(spec: str, compat: bool) -> tuple[int, str]:
    """``"4h"`` -> ``(4, "h")``; units ``min h D W M Q Y`` (``ME QE YE`` as pandas spells them).

    Raise ``ValueError`` for what the mode cannot represent: calendar units only with count 1;
    default-mode intraday bins must divide the day (so they align to 00:00 UTC) and days are 1D.
    """
    m = _TF_RE.match(spec.strip())
    if m is None:
        raise ValueError(f"time frame must look like 15min, 4h, 1D, W, M (got {spec!r})")
    count = int(m.group(1) or "1")
    unit = _CANON.get(m.group(2), m.group(2))
    if count < 1:
        raise ValueError(f"time frame count must be >= 1 (got {spec!r})")
    if unit in ("W", "M", "Q", "Y") and count != 1:
        raise ValueError(f"calendar time frames take no multiple (got {spec!r})")
    if not compat:
        if unit in ("min", "h") and _DAY % (count * _unit_ms(unit)) != 0:
            raise ValueError(f"intraday time frame must divide 24h (got {spec!r})")
        if unit == "D" and count != 1:
            raise ValueError(f"default mode has 1D bins only (got {spec!r})")
    return count, unit


def _unit_ms(unit: str) -> int:
    return {"min": _MIN, "h": 60 * _MIN, "D": _DAY}[unit]


def _calendar_bin(ts: int, unit: str) -> tuple[int, int]:
    """(bin key, end label in ms: 00:00 of the bin's last day) for M / Q / Y."""
    d = datetime.fromtimestamp(ts / 1000, tz=UTC)
    if unit == "M":
        y, last_month = d.year, d.month
        key = y * 12 + d.month - 1
    elif unit == "Q":
        y, last_month = d.year, ((d.month - 1) // 3) * 3 + 3
        key = y * 4 + (d.month - 1) // 3
    else:
        y, last_month = d.year, 12
        key = y
    last_day = calendar.monthrange(y, last_month)[1]
    label = int(datetime(y, last_month, last_day, tzinfo=UTC).timestamp()) * 1000
    return key, label


class PreviousHighLow(msgspec.Struct, array_like=True):
    """One time frame's calculator; ``update`` returns the bar's row.

    Row: ``(previous_high, previous_low, broken_high, broken_low)``; ``None`` for NaN/null.
    """

    time_frame: str
    compat: bool
    count: int = 1
    unit: str = "D"
    origin: int | None = None  # compat fixed bins: the first bar's UTC midnight
    completed: int = 0  # non-empty bins before the own one
    prev1: tuple[float, float] | None = None  # last completed bin (high, low)
    prev2: tuple[float, float] | None = None  # the one before
    cur_key: int | None = None
    cur_label: int = 0
    cur_high: float = 0.0
    cur_low: float = 0.0
    group: int = -(2**62)  # compat: K-2 of the previous bar (the library's broken-flag group)
    run_high: float = 0.0
    run_low: float = 0.0

    @classmethod
    def create(cls, time_frame: str, compat: bool) -> PreviousHighLow:
        count, unit = parse_time_frame(time_frame, compat)
        return cls(time_frame=time_frame, compat=compat, count=count, unit=unit)

    def _bin(self, ts: int) -> tuple[int, int]:
        unit = self.unit
        if unit in ("min", "h", "D"):
            step = self.count * _unit_ms(unit)
            if self.compat:
                if self.origin is None:
                    self.origin = ts - ts % _DAY
                key = (ts - self.origin) // step
                return key, self.origin + key * step  # start label
            key = ts // step
            return key, key * step
        if unit == "W":
            key = (ts - _MONDAY0) // _WEEK
            return key, _MONDAY0 + key * _WEEK + 6 * _DAY  # end label: the week's Sunday 00:00
        return _calendar_bin(ts, unit)

    def _track_run(self, h: float, lo: float, *, restart: bool) -> None:
        """The high/low of the bars since the current comparison window began."""
        if restart:
            self.run_high, self.run_low = h, lo
            return
        if h > self.run_high:
            self.run_high = h
        if lo < self.run_low:
            self.run_low = lo

    def update(self, ts: int, h: float, lo: float) -> tuple[float | None, float | None, int, int]:
        """Feed bar ``ts`` (UTC ms) with its high and low; return its row."""
        key, label = self._bin(ts)
        if key != self.cur_key:
            if self.cur_key is not None:
                self.completed += 1
                self.prev2 = self.prev1
                self.prev1 = (self.cur_high, self.cur_low)
            self.cur_key = key
            self.cur_label = label
            self.cur_high = h
            self.cur_low = lo
            new_bin = True
        else:
            if h > self.cur_high:
                self.cur_high = h
            if lo < self.cur_low:
                self.cur_low = lo
            new_bin = False
        if not self.compat:
            self._track_run(h, lo, restart=new_bin)
            p = self.prev1
            if p is None:
                return None, None, 0, 0
            return p[0], p[1], int(self.run_high > p[0]), int(self.run_low < p[1])
        own = self.cur_label < ts
        k2 = self.completed + (1 if own else 0) - 2
        restart = k2 != self.group
        self.group = k2
        self._track_run(h, lo, restart=restart)
        if k2 < 0:
            return None, None, 0, 0
        p = self.prev1 if own else self.prev2
        assert p is not None
        ph = f32(p[0])
        pl = f32(p[1])
        return ph, pl, int(self.run_high > ph), int(self.run_low < pl)
