"""The series engine as a pipeline detector (``smc_series``), and its alert rules.

A separate detector (own snapshot entry) rather than a part of ``SmcEngine``: streams without
series pay nothing, and adding or removing series never invalidates the five-pattern snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from smc_runtime.analytics.interfaces import Alert, AlertRule, BarDetector

from .engine import SeriesEngine, SeriesSpec, parse_series

__all__ = [
    "LevelBrokenRule",
    "SeriesDetectorFactory",
    "SessionRule",
    "parse_series_list",
    "series_alert_rules",
]


def parse_series_list(specs: Sequence[str], compat: bool, swing_length: int) -> list[SeriesSpec]:
    """Parse and build every configured series once (``ValueError`` names the bad one)."""
    parsed: list[SeriesSpec] = []
    for text in specs:
        try:
            spec = parse_series(text)
            SeriesEngine([spec], compat=compat, swing_length=swing_length)
        except ValueError as exc:
            raise ValueError(f"series {text!r}: {exc}") from None
        parsed.append(spec)
    SeriesEngine(parsed, compat=compat, swing_length=swing_length)  # duplicates
    return parsed


class SeriesDetectorFactory:
    """Creates/restores ``SeriesEngine``s for the configured ``detection.series``."""

    name = "smc_series"

    def __init__(self, specs: Sequence[str], *, compat: bool, swing_length: int) -> None:
        self._specs = parse_series_list(specs, compat, swing_length)
        self._compat = compat
        self._swing_length = swing_length

    def create(self) -> BarDetector:
        return SeriesEngine(self._specs, compat=self._compat, swing_length=self._swing_length)

    def restore(self, data: bytes) -> BarDetector:
        return SeriesEngine.restore(data)


def _series_event(kind: str, record: Any, pattern: str) -> Mapping[str, Any] | None:
    if kind != "signal" or not isinstance(record, Mapping):
        return None
    event = record.get("event")
    if not isinstance(event, Mapping) or event.get("pattern") != pattern:
        return None
    return event


class LevelBrokenRule:
    """Price traded through a previous period's high or low (e.g. the previous day's high)."""

    name = "previous_level_broken"
    kinds = frozenset({"signal"})

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any,
                 active: set[str]) -> list[Alert]:
        event = _series_event(kind, record, "previous_high_low")
        if event is None or event.get("action") != "broken":
            return []
        side = "high" if event.get("direction", 0) > 0 else "low"
        tf = str(event.get("series", "")).partition(":")[2]
        interval = record.get("interval")
        return [Alert(self.name, "info", symbol, timestamp_ms,
                      f"{symbol} {interval} broke the previous {tf} {side} {event.get('level')}",
                      {"interval": interval, "series": event.get("series"),
                       "direction": event.get("direction"), "level": event.get("level"),
                       "index": event.get("index")})]


class SessionRule:
    """A trading session or kill zone opened or closed (with the closed session's range)."""

    name = "session"
    kinds = frozenset({"signal"})

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any,
                 active: set[str]) -> list[Alert]:
        event = _series_event(kind, record, "session")
        if event is None:
            return []
        session = str(event.get("series", "")).partition(":")[2]
        action = event.get("action")
        text = f"{session} session {action} on {symbol}"
        if action == "closed":
            text += f": high {event.get('high')}, low {event.get('low')}"
        return [Alert(self.name, "info", symbol, timestamp_ms, text,
                      {"interval": record.get("interval"), "series": event.get("series"), "action": action,
                       "high": event.get("high"), "low": event.get("low"), "index": event.get("index")})]


def series_alert_rules(levels_broken: bool, sessions: bool) -> list[AlertRule]:
    """The series rules switched on (``alerts.previous_levels_broken`` / ``alerts.sessions``)."""
    rules: list[AlertRule] = []
    if levels_broken:
        rules.append(LevelBrokenRule())
    if sessions:
        rules.append(SessionRule())
    return rules
