"""Plugins: real entry-point discovery (a throw-away distribution on sys.path), configuration
errors at start-up, and isolation of plugins that raise (dead letters, disable with alert, stop)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smc_runtime.config import ConfigError, PluginSettings, ProcessorSettings
from smc_runtime.pipeline import OutputRecord, Pipeline
from smc_runtime.plugins import PluginConfigError, PluginStopError, available, load_plugins

TRADES = "market_data.binance.btcusdt.trades"
KLINES = "market_data.binance.btcusdt.klines"

FAKE_MODULE = '''
import msgspec
from pydantic import BaseModel, ConfigDict, Field

class _Count(msgspec.Struct):
    n: int = 0

class Counter:
    """Counts trades per symbol (state) and emits the count."""
    name = "counter"
    kind = "trade"
    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        step: int = Field(1, ge=1)
    def __init__(self, params):
        self.step = params.step
    def new_state(self):
        return _Count()
    def update(self, state, message):
        state.n += self.step
        return {"type": "count", "n": state.n}
    def dump_state(self, state):
        return msgspec.msgpack.encode(state)
    def load_state(self, data):
        return msgspec.msgpack.decode(data, type=_Count)

class Exploder:
    """Raises on trades priced above a threshold."""
    name = "exploder"
    kind = "trade"
    class Params(BaseModel):
        above: float
    def __init__(self, params):
        self.above = params.above
    def new_state(self):
        return None
    def update(self, state, message):
        if message.price > self.above:
            raise RuntimeError(f"price {message.price} too high")
        return None
    def dump_state(self, state):
        return b""
    def load_state(self, data):
        return None

class _BadDetector:
    def on_bar(self, bar):
        raise ZeroDivisionError("bad bar maths")
    def finalize(self):
        return []
    def snapshot(self):
        return b""

class BadDetectorFactory:
    name = "bad_detector"
    def create(self):
        return _BadDetector()
    def restore(self, data):
        return _BadDetector()

class BadRule:
    name = "bad_rule"
    kinds = frozenset({"trade"})
    def evaluate(self, kind, symbol, timestamp_ms, record, active):
        raise KeyError("missing field")

class NoParams:
    name = "noparams"
    kind = "trade"
    def new_state(self): return None
    def update(self, state, message): return None
    def dump_state(self, state): return b""
    def load_state(self, data): return None

class Misnamed(NoParams):
    name = "something_else"

class Shadow(NoParams):
    name = "trade_indicators"

class NotARule:
    name = "not_a_rule"
    kinds = frozenset({"weather"})

def failing_factory():
    raise OSError("model file missing")
failing_factory.name = "failing_init"
'''

ENTRY_POINTS = """
[smc_stream.enrichers]
counter = fake_smc_plugins:Counter
exploder = fake_smc_plugins:Exploder
noparams = fake_smc_plugins:NoParams
misnamed = fake_smc_plugins:Misnamed
trade_indicators = fake_smc_plugins:Shadow
broken = fake_smc_missing_module:Thing
failing_init = fake_smc_plugins:failing_factory

[smc_stream.detectors]
bad_detector = fake_smc_plugins:BadDetectorFactory

[smc_stream.alert_rules]
bad_rule = fake_smc_plugins:BadRule
not_a_rule = fake_smc_plugins:NotARule
"""


@pytest.fixture(autouse=True)
def fake_distribution(tmp_path_factory: pytest.TempPathFactory,
                      monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed-looking distribution: module + dist-info with entry_points.txt on sys.path."""
    site = tmp_path_factory.mktemp("site")
    (site / "fake_smc_plugins.py").write_text(textwrap.dedent(FAKE_MODULE))
    dist = site / "fake_smc_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-smc-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(__import__("sys").modules, "fake_smc_plugins", raising=False)
    yield site


def _settings(plugins: dict[str, Any], **overrides: Any) -> ProcessorSettings:
    raw: dict[str, Any] = {"consumer_group": "g", "input_topics": [TRADES, KLINES], "plugins": plugins}
    raw.update(overrides)
    return ProcessorSettings.model_validate(raw)


def _trade(trade_id: int, price: float) -> bytes:
    return json.dumps({"e": "trade", "E": trade_id, "s": "BTCUSDT", "t": trade_id, "p": str(price),
                       "q": "1.0", "T": trade_id, "m": False}).encode()


def _kline(start: int) -> bytes:
    return json.dumps({"e": "kline", "E": start, "s": "BTCUSDT", "k": {
        "t": start, "T": start + 59_999, "s": "BTCUSDT", "i": "1m", "o": "10", "h": "11", "l": "9",
        "c": "10.5", "v": "5", "n": 3, "x": True, "q": "50", "V": "2", "Q": "20"}}).encode()


def _feed_trades(pipeline: Pipeline, prices: list[float]) -> list[list[OutputRecord]]:
    return [pipeline.process(_trade(i, p), topic=TRADES, partition=0, offset=i, timestamp_ms=1000 + i,
                             key=b"BTCUSDT") for i, p in enumerate(prices)]


def _headers(record: OutputRecord) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


def _plugin_dead_letters(outputs: list[OutputRecord]) -> list[dict[str, str]]:
    return [_headers(o) for o in outputs
            if o.role == "dead_letters" and _headers(o).get("reason") == "plugin_error"]


# -- discovery and configuration errors --------------------------------------------------------

def test_discovery_finds_installed_entry_points() -> None:
    assert {"counter", "exploder", "noparams"} <= set(available("enricher"))
    assert "bad_detector" in available("detector")
    assert "bad_rule" in available("alert_rule")


def test_configured_plugin_runs_with_its_params_and_state() -> None:
    pipeline = Pipeline(_settings({"enrichers": {"counter": {"step": 5}}}))
    outputs = _feed_trades(pipeline, [100.0, 101.0, 102.0])
    counts = [json.loads(o.value)["n"] for out in outputs for o in out
              if o.role == "enriched_trades" and json.loads(o.value).get("type") == "count"]
    assert counts == [5, 10, 15]


def test_unknown_name_fails_with_the_installed_names() -> None:
    with pytest.raises(PluginConfigError) as err:
        load_plugins(PluginSettings(enrichers={"countr": {}}))
    [(path, reason)] = err.value.problems
    assert path == "plugins.enrichers.countr"
    assert "unknown enricher plugin 'countr'" in reason and "counter" in reason
    assert isinstance(err.value, ConfigError)


def test_every_problem_is_reported_at_once() -> None:
    settings = PluginSettings(
        enrichers={"counter": {"step": 0, "extra": 1}, "noparams": {"x": 1}, "broken": {},
                   "misnamed": {}, "failing_init": {}, "exploder": {}},
        alert_rules={"not_a_rule": {}})
    with pytest.raises(PluginConfigError) as err:
        load_plugins(settings)
    by_path: dict[str, list[str]] = {}
    for path, reason in err.value.problems:
        by_path.setdefault(path, []).append(reason)
    assert any("params.step" in r for r in by_path["plugins.enrichers.counter"])
    assert any("params.extra" in r for r in by_path["plugins.enrichers.counter"])
    assert any("params.above" in r and "required" in r.lower() for r in by_path["plugins.enrichers.exploder"])
    assert "takes no parameters" in by_path["plugins.enrichers.noparams"][0]
    assert "ModuleNotFoundError" in by_path["plugins.enrichers.broken"][0]
    assert "differs from its entry-point name" in by_path["plugins.enrichers.misnamed"][0]
    assert "OSError: model file missing" in by_path["plugins.enrichers.failing_init"][0]
    reasons = " ".join(by_path["plugins.alert_rules.not_a_rule"])
    assert "missing evaluate()" in reasons and "kinds must be" in reasons


def test_plugin_may_not_shadow_a_builtin() -> None:
    with pytest.raises(PluginConfigError, match="trade_indicators"):
        Pipeline(_settings({"enrichers": {"trade_indicators": {}}}))


def test_plugin_names_are_checked_by_the_config_model() -> None:
    with pytest.raises(ValueError, match="plugin names must match"):
        PluginSettings(enrichers={"bad name!": {}})


def test_replay_exits_2_on_unknown_plugin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from smc_runtime import replay_command

    config = tmp_path / "streams-config.yaml"
    config.write_text(json.dumps({"stream_processors": {"p": {
        "consumer_group": "g", "input_topics": [TRADES], "plugins": {"detectors": {"nope": {}}}}}}))
    (tmp_path / "in.jsonl").write_bytes(_trade(1, 100.0) + b"\n")
    parser = argparse.ArgumentParser()
    replay_command.add_arguments(parser)
    args = parser.parse_args(["--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out"),
                              "--config", str(config)])
    assert replay_command.main(args) == 2
    assert "unknown detector plugin 'nope'" in capsys.readouterr().err


# -- isolation ---------------------------------------------------------------------------------

def test_raising_enricher_dead_letters_the_message_and_the_rest_still_runs() -> None:
    pipeline = Pipeline(_settings({"enrichers": {"exploder": {"above": 100.0}, "counter": {}}}))
    outputs = _feed_trades(pipeline, [99.0, 101.0, 98.0])
    assert [len(_plugin_dead_letters(out)) for out in outputs] == [0, 1, 0]
    failed = outputs[1]
    [dead] = [o for o in failed if o.role == "dead_letters"]
    headers = _headers(dead)
    assert headers["plugin"] == "exploder" and headers["plugin_kind"] == "enricher"
    assert headers["error"] == "RuntimeError: price 101.0 too high"
    assert headers["source_offset"] == "1" and headers["source_topic"] == TRADES
    assert dead.value == _trade(1, 101.0) and dead.key == b"BTCUSDT"
    # the built-in enricher and the later plugin still produced their documents for that message
    types = [json.loads(o.value).get("type") for o in failed if o.role == "enriched_trades"]
    assert types == ["enriched_trade", "count"]
    assert pipeline.plugin_failures() == {"enricher:exploder": 1, "enricher:counter": 0}


def test_plugin_is_disabled_after_n_consecutive_failures_with_an_alert() -> None:
    pipeline = Pipeline(_settings({"enrichers": {"exploder": {"above": 100.0}},
                                   "max_consecutive_failures": 3}))
    # fail, ok, fail, fail (2 in a row), ok -> never 3 in a row; then 3 in a row disables it
    prices = [101.0, 99.0, 101.0, 101.0, 99.0, 101.0, 101.0, 101.0, 101.0, 101.0]
    outputs = _feed_trades(pipeline, prices)
    assert [len(_plugin_dead_letters(out)) for out in outputs] == [1, 0, 1, 1, 0, 1, 1, 1, 0, 0]
    alerts = [(i, json.loads(o.value)) for i, out in enumerate(outputs) for o in out if o.role == "alerts"
              and json.loads(o.value)["rule"] == "plugin_disabled"]
    assert [i for i, _ in alerts] == [7]
    alert = alerts[0][1]
    assert alert["severity"] == "critical" and alert["details"]["plugin"] == "exploder"
    assert alert["details"]["consecutive_failures"] == 3 and alert["timestamp_ms"] == 1007
    assert pipeline.disabled_plugins() == ["enricher:exploder"]
    assert pipeline.plugin_failures() == {"enricher:exploder": 6}


def test_stop_policy_raises_a_fatal_error() -> None:
    pipeline = Pipeline(_settings({"enrichers": {"exploder": {"above": 100.0}},
                                   "max_consecutive_failures": 2, "on_failure": "stop"}))
    first = _feed_trades(pipeline, [101.0])
    assert len(_plugin_dead_letters(first[0])) == 1
    with pytest.raises(PluginStopError) as err:
        pipeline.process(_trade(1, 102.0), topic=TRADES, partition=0, offset=1, timestamp_ms=2,
                         key=b"BTCUSDT")
    assert err.value.plugin_id == "enricher:exploder" and err.value.failures == 2


def test_raising_detector_and_rule_are_isolated() -> None:
    pipeline = Pipeline(_settings({"detectors": {"bad_detector": {}}, "alert_rules": {"bad_rule": {}}},
                                  detection={"swing_length": 1}))
    klines = [pipeline.process(_kline(60_000 * i), topic=KLINES, partition=0, offset=i,
                               timestamp_ms=60_000 * i + 59_999, key=b"BTCUSDT") for i in range(3)]
    kinds = [[h["plugin_kind"] for h in _plugin_dead_letters(out)] for out in klines]
    assert kinds == [["detector"]] * 3
    assert all(any(o.role == "kline_metrics" for o in out) for out in klines)
    trades = _feed_trades(pipeline, [100.0])
    [headers] = _plugin_dead_letters(trades[0])
    assert headers["plugin"] == "bad_rule" and headers["error"] == "KeyError: 'missing field'"
    assert pipeline.plugin_failures() == {"detector:bad_detector": 3, "alert_rule:bad_rule": 1}


def test_no_plugins_configured_means_none_loaded() -> None:
    loaded = load_plugins(PluginSettings())
    assert (loaded.enrichers, loaded.detectors, loaded.alert_rules) == ((), (), ())


def test_run_exits_2_on_bad_plugin_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from smc_runtime import run_command

    config = tmp_path / "streams-config.yaml"
    config.write_text(json.dumps({"stream_processors": {"p": {
        "consumer_group": "g", "input_topics": [TRADES],
        "plugins": {"enrichers": {"counter": {"step": -1}}}}}}))
    parser = argparse.ArgumentParser()
    run_command.add_arguments(parser)
    assert run_command.main(parser.parse_args(["--config", str(config)])) == 2
    assert "plugins.enrichers.counter" in capsys.readouterr().err


def test_smc_plugins_env_sets_every_processors_plugins() -> None:
    from smc_runtime.config import parse_config

    raw = {"stream_processors": {"a": {"consumer_group": "ga", "input_topics": [TRADES]},
                                 "b": {"consumer_group": "gb", "input_topics": [TRADES]}}}
    config = parse_config(raw, {"SMC_PLUGINS": '{"enrichers": {"counter": {"step": 2}}}'})
    assert [p.plugins.enrichers for p in config.stream_processors.values()] == [{"counter": {"step": 2}}] * 2
    with pytest.raises(ConfigError, match="SMC_PLUGINS"):
        parse_config(raw, {"SMC_PLUGINS": "[1, 2]"})


def test_make_demo_flag_enables_the_installed_example_plugin() -> None:
    """`make demo DEMO_PLUGINS=1` exports the Makefile's EXAMPLE_PLUGINS as SMC_PLUGINS."""
    from smc_runtime.config import parse_config

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    [line] = [ln for ln in makefile.splitlines() if ln.startswith("EXAMPLE_PLUGINS :=")]
    raw = {"stream_processors": {"a": {"consumer_group": "ga", "input_topics": [TRADES]}}}
    settings = parse_config(raw, {"SMC_PLUGINS": line.split(":=", 1)[1].strip()}).stream_processors["a"]
    loaded = load_plugins(settings.plugins)
    assert [e.name for e in loaded.enrichers] == ["trade_streak"]
    assert [d.name for d in loaded.detectors] == ["range_breakout"]
    assert [r.name for r in loaded.alert_rules] == ["price_level"]
