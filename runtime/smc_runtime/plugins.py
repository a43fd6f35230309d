"""Plugins: discovery through entry points, parameter validation, and failure isolation.

A plugin is an enricher, a bar detector factory or an alert rule (the interfaces in
``analytics/interfaces.py``, the same ones the built-ins implement) published under an entry
point of group ``smc_stream.enrichers``, ``smc_stream.detectors`` or ``smc_stream.alert_rules``.
The entry point names a factory (usually the class). If the factory has a ``Params`` attribute
that is a pydantic model, the configured parameters are validated with it and passed as the one
argument; otherwise the factory takes no argument and no parameters are accepted.

Loading collects every problem (unknown name, import error, bad parameters, broken interface)
into one ``PluginConfigError`` (a ``ConfigError``, so ``run``/``replay`` exit 2).

At run time each plugin is wrapped in a guard. The built-ins are not wrapped (no cost for them).
A guard turns an exception from the plugin into ``PluginFailed`` (the pipeline dead-letters the
message and continues); after ``max_consecutive_failures`` failures in a row the plugin is
disabled (``on_failure: disable``; the guard then does nothing) or ``PluginStopError`` is raised
(``on_failure: stop``; fatal for the processor). Failure counters are operational state, kept
in memory and not in snapshots: a restarted processor gives a disabled plugin another chance.

Every call into a plugin goes through its guard: ``new_state``/``create`` (a failure is the plugin's
failure on the record that needed the new key; the plugin then has no state or a detector that does
nothing for that key, and the built-ins run as usual), ``update``/``on_bar``/``evaluate`` and their
results (a document, an event's ``to_dict()`` or an alert that cannot be encoded as JSON is the
plugin's failure, not the pipeline's), ``dump_state``/``snapshot`` (a failure stores empty bytes)
and ``load_state``/``restore`` (empty or unloadable bytes give the plugin fresh state: its state is
lost, the processor's is not).
Plugins are trusted code: they run in the processor's process, with its memory and permissions; the
guards contain their exceptions, not a plugin that loops forever, exhausts memory or exits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ValidationError

from smc_runtime.analytics.interfaces import AlertRule, BarDetector, DetectorEvent, DetectorFactory, Enricher
from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.config import ConfigError, PluginSettings
from smc_runtime.messages import Rejection

PluginKind = Literal["enricher", "detector", "alert_rule"]
PLUGIN_KINDS: tuple[PluginKind, ...] = ("enricher", "detector", "alert_rule")
ENTRY_POINT_GROUPS: dict[PluginKind, str] = {
    "enricher": "smc_stream.enrichers",
    "detector": "smc_stream.detectors",
    "alert_rule": "smc_stream.alert_rules",
}
_SETTINGS_FIELD: dict[PluginKind, str] = {"enricher": "enrichers", "detector": "detectors",
                                          "alert_rule": "alert_rules"}
_MESSAGE_KINDS = frozenset({"trade", "orderbook", "kline"})
_RULE_KINDS = _MESSAGE_KINDS | {"signal"}
_REQUIRED_METHODS: dict[PluginKind, tuple[str, ...]] = {
    "enricher": ("new_state", "update", "dump_state", "load_state"),
    "detector": ("create", "restore"),
    "alert_rule": ("evaluate",),
}
OnFailure = Literal["disable", "stop"]


class PluginConfigError(ConfigError):
    """Plugins could not be loaded as configured (problems are ``(config path, reason)``)."""


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


@dataclass(frozen=True)
class LoadedPlugins:
    """Guarded plugin objects ready for the ``Pipeline``, in configuration order."""

    enrichers: tuple[GuardedEnricher, ...] = ()
    detectors: tuple[GuardedDetectorFactory, ...] = ()
    alert_rules: tuple[GuardedAlertRule, ...] = ()
    health: tuple[PluginHealth, ...] = field(default=())

    @classmethod
    def from_objects(cls, *, enrichers: Iterable[Enricher[Any, Any]] = (),
                     detectors: Iterable[DetectorFactory] = (), alert_rules: Iterable[AlertRule] = (),
                     on_failure: OnFailure = "disable", max_consecutive_failures: int = 5) -> LoadedPlugins:
        """Guard already-built plugin objects (what ``load_plugins`` does after loading)."""
        health: list[PluginHealth] = []

        def track(kind: PluginKind, name: str) -> PluginHealth:
            item = PluginHealth(kind, name, on_failure, max_consecutive_failures)
            health.append(item)
            return item

        return cls(
            enrichers=tuple(GuardedEnricher(e, track("enricher", e.name)) for e in enrichers),
            detectors=tuple(GuardedDetectorFactory(d, track("detector", d.name)) for d in detectors),
            alert_rules=tuple(GuardedAlertRule(r, track("alert_rule", r.name)) for r in alert_rules),
            health=tuple(health),
        )

    def failures(self) -> dict[str, int]:
        """Total failures per plugin id (``kind:name``), since start."""
        return {h.plugin_id: h.failures for h in self.health}

    def disabled(self) -> list[str]:
        return [h.plugin_id for h in self.health if h.disabled]


def available(kind: PluginKind) -> dict[str, EntryPoint]:
    """Installed plugins of one kind, by entry-point name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUPS[kind])}


def _params_model(factory: Any) -> type[BaseModel] | None:
    params = getattr(factory, "Params", None)
    return params if isinstance(params, type) and issubclass(params, BaseModel) else None


def build_plugin(kind: PluginKind, name: str, factory: Any,
                 params: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """Validate ``params`` and call the factory; returns ``(plugin, [])`` or ``(None, problems)``."""
    model = _params_model(factory)
    try:
        if model is not None:
            try:
                validated = model.model_validate(dict(params))
            except ValidationError as exc:
                return None, [f"params.{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                              for err in exc.errors()]
            plugin = factory(validated)
        elif params:
            return None, [f"takes no parameters (its factory declares no Params model), got {sorted(params)}"]
        else:
            plugin = factory()
    except Exception as exc:  # a plugin's constructor is foreign code: report, do not crash
        return None, [f"failed to initialise: {type(exc).__name__}: {exc}"]
    return plugin, interface_problems(kind, name, plugin)


def interface_problems(kind: PluginKind, name: str, plugin: Any) -> list[str]:
    """What is missing for ``plugin`` to be a ``kind`` plugin named ``name``."""
    problems = [f"does not implement {kind}: missing {method}()" for method in _REQUIRED_METHODS[kind]
                if not callable(getattr(plugin, method, None))]
    plugin_name = getattr(plugin, "name", None)
    if plugin_name != name:
        problems.append(f"its name attribute {plugin_name!r} differs from its entry-point name {name!r}")
    message_kind = getattr(plugin, "kind", None)
    if kind == "enricher" and message_kind not in _MESSAGE_KINDS:
        problems.append(f"kind must be one of {sorted(_MESSAGE_KINDS)}, got {message_kind!r}")
    if kind == "alert_rule":
        kinds = getattr(plugin, "kinds", None)
        if not isinstance(kinds, frozenset | set) or not kinds or not set(kinds) <= _RULE_KINDS:
            problems.append(f"kinds must be a non-empty set of {sorted(_RULE_KINDS)}, got {kinds!r}")
    return problems


def load_plugins(settings: PluginSettings, *, config_path: str = "plugins") -> LoadedPlugins:
    """Load and guard every configured plugin; raise ``PluginConfigError`` listing all problems.

    No configured plugin means no entry-point scan at all."""
    if settings.is_empty():
        return LoadedPlugins()
    problems: list[tuple[str, str]] = []
    built: dict[PluginKind, list[Any]] = {kind: [] for kind in PLUGIN_KINDS}
    for kind in PLUGIN_KINDS:
        configured: dict[str, dict[str, Any]] = getattr(settings, _SETTINGS_FIELD[kind])
        if not configured:
            continue
        installed = available(kind)
        for name, params in configured.items():
            path = f"{config_path}.{_SETTINGS_FIELD[kind]}.{name}"
            entry_point = installed.get(name)
            if entry_point is None:
                known = ", ".join(sorted(installed)) or "none installed"
                problems.append((path, f"unknown {kind} plugin {name!r} (entry-point group "
                                       f"{ENTRY_POINT_GROUPS[kind]}: {known})"))
                continue
            try:
                factory = entry_point.load()
            except Exception as exc:  # broken plugin package: report it with the others
                problems.append((path, f"cannot load {entry_point.value}: {type(exc).__name__}: {exc}"))
                continue
            plugin, plugin_problems = build_plugin(kind, name, factory, params)
            problems.extend((path, problem) for problem in plugin_problems)
            if not plugin_problems:
                built[kind].append(plugin)
    if problems:
        raise PluginConfigError(problems)
    return LoadedPlugins.from_objects(
        enrichers=built["enricher"], detectors=built["detector"], alert_rules=built["alert_rule"],
        on_failure=settings.on_failure, max_consecutive_failures=settings.max_consecutive_failures)


def check_unique_names(kind: PluginKind, names: Sequence[str], *, config_path: str = "plugins") -> None:
    """Plugin and built-in names share one namespace per kind (snapshots and outputs are keyed by it)."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PluginConfigError([(f"{config_path}.{_SETTINGS_FIELD[kind]}",
                                  f"{kind} name(s) {duplicates} already taken by a built-in or "
                                  "another plugin")])
