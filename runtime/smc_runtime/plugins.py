"""Plugins: discovery through entry points, parameter validation, and failure isolation.

A plugin is an enricher, a bar detector factory or an alert rule (the interfaces in
``analytics/interfaces.py``, the same ones the built-ins implement) published under an entry
point of group ``smc_stream.enrichers``, ``smc_stream.detectors`` or ``smc_stream.alert_rules``.
The entry point names a factory (usually the class). If the factory has a ``Params`` attribute
that is a pydantic model, the configured parameters are validated with it and passed as the one
argument; otherwise the factory takes no argument and no parameters are accepted.

Loading collects every problem (unknown name, import error, bad parameters, broken interface)
into one ``PluginConfigError`` (a ``ConfigError``, so ``run``/``replay`` exit 2).

At run time each plugin is wrapped in a guard (``plugin_guards.py``). The built-ins are not wrapped
(no cost for them).
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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from smc_runtime.analytics.interfaces import AlertRule, DetectorFactory, Enricher
from smc_runtime.config import ConfigError, PluginSettings
from smc_runtime.plugin_guards import (
    GuardedAlertRule,
    GuardedDetectorFactory,
    GuardedEnricher,
    OnFailure,
    PluginHealth,
    PluginKind,
)
from smc_runtime.plugin_guards import PluginStopError as PluginStopError  # part of this module's API

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


class PluginConfigError(ConfigError):
    """Plugins could not be loaded as configured (problems are ``(config path, reason)``)."""


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
