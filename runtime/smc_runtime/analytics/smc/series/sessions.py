"""Trading sessions and kill zones, per bar (SPEC 2.7, 4.6; default mode 5.2 item 12).

Compat reproduces the library: UTC session hours, both ends inclusive, ``time_zone`` taken as
the zone of the *bars* with the Etc/GMT sign inversion (``UTC+2`` acts as UTC-2: 6.12), and
float32 running extremes over consecutive active rows (0 when inactive; a gap never ends a run).
Default mode reads the session hours as wall-clock times in ``time_zone`` (an IANA name, so DST
moves the session with the local clock, or ``UTC±HH[:MM]`` with the ISO sign), ends exclusive,
and float64 extremes per session *occurrence*, so a gap into the next day's session starts afresh.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import msgspec

from ..numeric import f32

__all__ = ["SESSIONS", "Session", "parse_session"]

# The library's sessions (UTC hours), by its names.
SESSIONS: dict[str, tuple[str, str]] = {
    "Sydney": ("21:00", "06:00"),
    "Tokyo": ("00:00", "09:00"),
    "London": ("07:00", "16:00"),
    "New York": ("13:00", "22:00"),
    "Asian kill zone": ("00:00", "04:00"),
    "London open kill zone": ("6:00", "9:00"),
    "New York kill zone": ("11:00", "14:00"),
    "london close kill zone": ("14:00", "16:00"),
}
_BY_LOWER = {k.lower(): k for k in SESSIONS}
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
_OFFSET = re.compile(r"^(?:UTC|GMT)([+-])(\d{1,2})(?::?(\d{2}))?$")
_MIN = 60_000
_DAY_MIN = 1440


def _minutes(text: str) -> int:
    m = _HHMM.match(text.strip())
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"session time must be HH:MM (got {text!r})")
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_session(spec: str) -> tuple[str, int, int]:
    """``"London"`` / ``"Custom:06:00-09:00"`` -> (canonical name, start minute, end minute)."""
    if spec.startswith("Custom:") or spec.startswith("custom:"):
        start, sep, end = spec[7:].partition("-")
        if not sep:
            raise ValueError(f"custom session must be Custom:HH:MM-HH:MM (got {spec!r})")
        return f"Custom:{spec[7:]}", _minutes(start), _minutes(end)
    name = _BY_LOWER.get(spec.strip().lower())
    if name is None:
        raise ValueError(f"unknown session {spec!r}; one of {', '.join(SESSIONS)} or Custom:HH:MM-HH:MM")
    start, end = SESSIONS[name]
    return name, _minutes(start), _minutes(end)


def _zone(name: str, compat: bool) -> tzinfo:
    """The zone object for ``name`` in this mode (``ValueError`` if unknown)."""
    if compat:
        # the library: GMT/UTC -> Etc/GMT, so the sign inverts (Etc/GMT+2 is UTC-2)
        iana = name.replace("GMT", "Etc/GMT").replace("UTC", "Etc/GMT")
        try:
            return ZoneInfo(iana)
        except (ValueError, OSError, KeyError) as exc:
            raise ValueError(f"unknown time zone {name!r} ({iana!r})") from exc
    m = _OFFSET.match(name)
    if m is not None:
        hours, minutes = int(m.group(2)), int(m.group(3) or "0")
        if hours > 14 or minutes > 59:
            raise ValueError(f"UTC offset out of range: {name!r}")
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(delta if m.group(1) == "+" else -delta)
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


class Session(msgspec.Struct, array_like=True):
    """One session window's calculator; ``update`` returns ``(active, high, low)``."""

    name: str
    compat: bool
    start: int  # minutes of the day
    end: int
    time_zone: str = "UTC"
    prev_high: float = 0.0  # compat: the stored float32 values of the previous row (0 inactive)
    prev_low: float = 0.0
    occurrence: int | None = None  # default: the current occurrence (its start date's ordinal)
    high: float = 0.0
    low: float = 0.0

    @classmethod
    def create(cls, spec: str, compat: bool, time_zone: str = "UTC") -> Session:
        name, start, end = parse_session(spec)
        tz = time_zone or "UTC"
        if tz != "UTC":
            _zone(tz, compat)  # validate now, not at the first bar
        return cls(name=name, compat=compat, start=start, end=end, time_zone=tz)

    def _clock(self, ts: int) -> tuple[int, int]:
        """(minute of the day, day number) of bar ``ts`` as the mode reads it."""
        tz = self.time_zone
        if tz == "UTC":
            mins = ts // _MIN
            return mins % _DAY_MIN, mins // _DAY_MIN
        zone = _zone(tz, self.compat)
        naive = datetime.fromtimestamp(ts / 1000, tz=UTC).replace(tzinfo=None)
        if self.compat:
            # the bar's clock is wall time in ``zone``; the library converts it to UTC
            d = naive.replace(tzinfo=zone).astimezone(UTC)
        else:
            d = datetime.fromtimestamp(ts / 1000, tz=zone)
        return d.hour * 60 + d.minute, d.toordinal()

    def update(self, ts: int, h: float, lo: float) -> tuple[int, float | None, float | None]:
        """Feed bar ``ts`` (UTC ms); return ``(active, high, low)`` (``None``: default-mode null)."""
        m, day = self._clock(ts)
        s, e = self.start, self.end
        if self.compat:
            active = (s <= m <= e) if s < e else (m >= s or m <= e)
            if not active:
                self.prev_high = 0.0
                self.prev_low = 0.0
                return 0, 0.0, 0.0
            ph = self.prev_high
            hi = f32(ph if ph > h else h)
            pl = self.prev_low
            lo_ = f32(lo if pl == 0 or not pl < lo else pl)
            self.prev_high = hi
            self.prev_low = lo_
            return 1, hi, lo_
        if s < e:
            active = s <= m < e
            occ = day
        else:  # wraps midnight (or, if equal, the whole day from ``start``)
            active = s == e or m >= s or m < e
            occ = day if m >= s else day - 1
        if not active:
            return 0, None, None
        if occ != self.occurrence:
            self.occurrence = occ
            self.high = h
            self.low = lo
        else:
            if h > self.high:
                self.high = h
            if lo < self.low:
                self.low = lo
        return 1, self.high, self.low
