"""Failure isolation of plugins: each plugin object runs behind a guard (see ``plugins.py`` for
loading and the failure policy). A guard turns an exception from its plugin into ``PluginFailed``,
counts it in the plugin's ``PluginHealth``, and disables the plugin or raises ``PluginStopError``
after ``max_consecutive_failures`` failures in a row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from smc_runtime.analytics.interfaces import AlertRule, BarDetector, DetectorEvent, DetectorFactory, Enricher
from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.messages import Rejection

PluginKind = Literal["enricher", "detector", "alert_rule"]
OnFailure = Literal["disable", "stop"]


class PluginStopError(RuntimeError):
    """``on_failure: stop``: a plugin failed too often in a row; the processor must stop."""

    def __init__(self, plugin_id: str, failures: int, error: str) -> None:
        self.plugin_id = plugin_id
        self.failures = failures
        self.error = error
        super().__init__(f"plugin {plugin_id} failed {failures} times in a row (on_failure: stop): {error}")


@dataclass(slots=True)
class PluginHealth:
    """Failure bookkeeping of one loaded plugin (shared by all its guards)."""

    kind: PluginKind
    name: str
    on_failure: OnFailure
    max_consecutive_failures: int
    failures: int = 0
    consecutive: int = 0
    disabled: bool = False
    last_error: str = ""

    @property
    def plugin_id(self) -> str:
        return f"{self.kind}:{self.name}"

    def record_failure(self, exc: BaseException) -> PluginFailed:
        """Count a failure; returns what the pipeline reports, or raises ``PluginStopError``."""
        self.failures += 1
        self.consecutive += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        just_disabled = False
        if self.consecutive >= self.max_consecutive_failures:
            if self.on_failure == "stop":
                raise PluginStopError(self.plugin_id, self.consecutive, self.last_error) from exc
            self.disabled = just_disabled = True
        return PluginFailed(self, self.last_error, just_disabled)


class PluginFailed(Exception):
    """Raised by a guard when its plugin raised; the pipeline turns it into a dead letter."""

    def __init__(self, health: PluginHealth, error: str, just_disabled: bool) -> None:
        super().__init__(error)
        self.health = health
        self.error = error
        self.just_disabled = just_disabled


_encode_json = msgspec.json.Encoder().encode


class GuardedEnricher:
    """An enricher plugin behind failure isolation, state handling included (see the module docstring)."""

    def __init__(self, inner: Enricher[Any, Any], health: PluginHealth) -> None:
        self.inner = inner
        self.health = health
        self.name: str = inner.name
        self.kind = inner.kind

    def new_state(self) -> Any:
        """The plugin's fresh state; raises ``PluginFailed`` if it cannot make one (None once disabled)."""
        if self.health.disabled:
            return None
        try:
            return self.inner.new_state()
        except Exception as exc:
            raise self.health.record_failure(exc) from exc

    def update(self, state: Any, message: Any) -> Any | None:
        health = self.health
        if health.disabled:
            return None
        try:
            document = self.inner.update(state, message)
            if document is not None and not isinstance(document, Rejection):
                _encode_json(document)  # the pipeline encodes it: fail here, as the plugin's failure
        except Exception as exc:
            raise health.record_failure(exc) from exc
        health.consecutive = 0
        return document

    def dump_state(self, state: Any) -> bytes:
        """The plugin's state bytes; empty when it cannot dump them (it restarts from fresh state)."""
        if self.health.disabled and state is None:
            return b""
        return _guarded_bytes(lambda: self.inner.dump_state(state), "dump_state", self.health)

    def load_state(self, data: bytes) -> Any:
        """The plugin's state from ``data``; fresh state when the bytes are empty or do not load."""
        if data:
            try:
                return self.inner.load_state(data)
            except Exception as exc:
                self.health.record_failure(exc)
        try:
            return self.new_state()
        except PluginFailed:
            return None


class CheckedEvent:
    """A plugin event whose ``to_dict()`` already ran (and encoded) inside the plugin's guard."""

    __slots__ = ("_dict",)

    def __init__(self, event_dict: dict[str, object]) -> None:
        self._dict = event_dict

    def to_dict(self) -> Mapping[str, object]:
        return self._dict


class GuardedDetector:
    """One detector instance of a plugin behind failure isolation."""

    def __init__(self, inner: BarDetector | None, health: PluginHealth) -> None:
        self.inner = inner  # None: the plugin could not create one (a detector that does nothing)
        self.health = health

    def on_bar(self, bar: Bar) -> Sequence[DetectorEvent]:
        inner = self.inner
        return self._guarded(lambda: inner.on_bar(bar) if inner is not None else ())

    def finalize(self) -> Sequence[DetectorEvent]:
        inner = self.inner
        return self._guarded(inner.finalize if inner is not None else tuple)

    def _guarded(self, call: Callable[[], Sequence[DetectorEvent]]) -> Sequence[DetectorEvent]:
        health = self.health
        if health.disabled:
            return ()
        try:
            events = [CheckedEvent(dict(event.to_dict())) for event in call()]
            for event in events:
                _encode_json(event.to_dict())
        except Exception as exc:
            raise health.record_failure(exc) from exc
        health.consecutive = 0
        return events

    def snapshot(self) -> bytes:
        """The detector's state bytes; empty when it has none or cannot dump it."""
        if self.inner is None:
            return b""
        inner = self.inner
        return _guarded_bytes(lambda: inner.snapshot(), "snapshot", self.health)


def _guarded_bytes(call: Callable[[], object], what: str, health: PluginHealth) -> bytes:
    """A plugin's state bytes, or empty (counted as the plugin's failure) when the call raises or
    returns something else than bytes: the plugin then restarts from fresh state."""
    try:
        data = call()
        if not isinstance(data, bytes):
            raise TypeError(f"{what} returned {type(data).__name__}, not bytes")
        return data
    except Exception as exc:
        health.record_failure(exc)
        return b""


class GuardedDetectorFactory:
    """A detector-factory plugin whose detectors are guarded."""

    def __init__(self, inner: DetectorFactory, health: PluginHealth) -> None:
        self.inner = inner
        self.health = health
        self.name: str = inner.name

    def create(self) -> BarDetector:
        """A new guarded detector; raises ``PluginFailed`` if the plugin cannot create one."""
        if self.health.disabled:
            return GuardedDetector(None, self.health)
        try:
            return GuardedDetector(self.inner.create(), self.health)
        except Exception as exc:
            raise self.health.record_failure(exc) from exc

    def restore(self, data: bytes) -> BarDetector:
        """The detector from ``data``; a fresh one when the bytes are empty or do not load."""
        if data:
            try:
                return GuardedDetector(self.inner.restore(data), self.health)
            except Exception as exc:
                self.health.record_failure(exc)
        try:
            return self.create()
        except PluginFailed:
            return GuardedDetector(None, self.health)


class GuardedAlertRule:
    """An alert-rule plugin behind failure isolation."""

    def __init__(self, inner: AlertRule, health: PluginHealth) -> None:
        self.inner = inner
        self.health = health
        self.name: str = inner.name
        self.kinds: frozenset[str] = frozenset(inner.kinds)

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any, active: set[str]) -> list[Any]:
        health = self.health
        if health.disabled:
            return []
        try:
            alerts = list(self.inner.evaluate(kind, symbol, timestamp_ms, record, active))
            for alert in alerts:
                _encode_json(alert)
        except Exception as exc:
            raise health.record_failure(exc) from exc
        health.consecutive = 0
        return alerts
