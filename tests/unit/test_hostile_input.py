"""Hostile input (issue 12): each known poison pill becomes one dead letter with its reason, the
processor's state stays usable, and what cannot be made safe is refused at configuration time."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from smc_runtime.analytics.detectors import SmcDetectorFactory
from smc_runtime.analytics.interfaces import NonFiniteState
from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.analytics.smc.engine import SmcEngine
from smc_runtime.analytics.smc.params import SmcParams
from smc_runtime.config import (
    ConfigError,
    DetectionSettings,
    InputBounds,
    ProcessorSettings,
    parse_config,
    worst_case_snapshot_bytes,
)
from smc_runtime.messages import MAX_INT64, DepthSnapshot, Rejection, Trade, decode
from smc_runtime.pipeline import DEAD_LETTER_KEY_MAX, OutputRecord, Pipeline, dead_letter_value_cap
from smc_runtime.plugins import LoadedPlugins
from smc_runtime.sample_data import generate_market_data

TRADES = "market_data.binance.btcusdt.trades"
BOOK = "market_data.binance.btcusdt.orderbook"
KLINES = "market_data.binance.btcusdt.klines"
DAY = 86_400_000
T0 = 1_735_689_600_000  # 2025-01-01


def _settings(**overrides: Any) -> ProcessorSettings:
    raw: dict[str, Any] = {"consumer_group": "g", "input_topics": [TRADES, BOOK, KLINES]}
    raw.update(overrides)
    return ProcessorSettings.model_validate(raw)


def _trade(trade_id: int, price: Any = "100", qty: Any = "1", t: int = T0, symbol: str = "BTCUSDT") -> bytes:
    return json.dumps({"e": "trade", "E": t, "s": symbol, "t": trade_id, "p": price, "q": qty, "T": t,
                       "m": False}).encode()


def _kline(start: int, interval: str = "1m", closed: bool = True, symbol: str = "BTCUSDT") -> bytes:
    return json.dumps({"e": "kline", "E": start, "s": symbol, "k": {
        "t": start, "T": start + 59_999, "s": symbol, "i": interval, "o": "10", "h": "11", "l": "9",
        "c": "10.5", "v": "5", "n": 3, "x": closed, "q": "50", "V": "2", "Q": "20"}}).encode()


def _diff(first: int, final: int, bids: list[list[str]] | None = None, symbol: str = "BTCUSDT") -> bytes:
    return json.dumps({"e": "depthUpdate", "E": T0, "s": symbol, "U": first, "u": final,
                       "b": bids or [], "a": []}).encode()


def _snapshot(last: int) -> bytes:
    return json.dumps({"lastUpdateId": last, "bids": [["99", "1"]], "asks": [["101", "1"]]}).encode()


def _reason(value: bytes, **kw: Any) -> str:
    result = decode(value, **kw)
    assert isinstance(result, Rejection), result
    return str(result.reason)


def _run(pipeline: Pipeline, topic: str, values: list[bytes], start_offset: int = 0,
         key: bytes | None = None) -> list[list[OutputRecord]]:
    return [pipeline.process(v, topic=topic, partition=0, offset=start_offset + i, timestamp_ms=T0, key=key)
            for i, v in enumerate(values)]


def _dead_reasons(outputs: list[OutputRecord]) -> list[str]:
    return [dict(o.headers)["reason"].decode() for o in outputs if o.role == "dead_letters"]


# -- decode bounds --------------------------------------------------------------------------------

def test_deep_nesting_is_a_rejection_not_a_recursion_error() -> None:
    value = b'{"e":"trade","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert _reason(value, max_bytes=10**6) == "too_deep"


@pytest.mark.parametrize("field, number", [("t", 2**63), ("t", 10**30), ("t", -1), ("T", -5),
                                           ("T", 300_000 * 365 * DAY), ("E", 2**64)])
def test_ids_and_times_outside_int64_or_the_calendar_are_out_of_range(field: str, number: int) -> None:
    doc = json.loads(_trade(1))
    doc[field] = number
    assert _reason(json.dumps(doc).encode()) == "out_of_range"


def test_largest_int64_id_decodes() -> None:
    assert isinstance(decode(_trade(MAX_INT64)), Trade)


@pytest.mark.parametrize("price, reason", [("1e308", "out_of_range"), ("1e16", "out_of_range"),
                                           ("1e-30", "out_of_range"), ("5e-324", "out_of_range"),
                                           ("0", "non_positive"), ("-1", "non_positive"),
                                           ("nan", "non_finite"), ("inf", "non_finite"),
                                           (1e400, "non_finite")])
def test_prices_outside_the_bounds(price: Any, reason: str) -> None:
    value = _trade(1, price=price) if price != 1e400 else _trade(1).replace(b'"p": "100"', b'"p": 1e400')
    assert _reason(value) == reason


def test_bounds_are_configurable() -> None:
    pipeline = Pipeline(_settings(enrichment={"bounds": {"max_price": 1e20}}))
    [out] = pipeline.process(_trade(1, price="1e18"), topic=TRADES, partition=0, offset=0, timestamp_ms=T0)
    assert out.role == "enriched_trades" and json.loads(out.value)["price"] == 1e18


@pytest.mark.parametrize("symbol", ["Z|book", "BTC\nUSDT", "BTC\x00", "btcusdt", "", "A" * 33,
                                    "X" * 100_000, "BTC USDT", "ÄBC"])
def test_symbols_outside_the_pattern_are_rejected(symbol: str) -> None:
    assert _reason(_trade(1, symbol=symbol), max_bytes=10**6) == "invalid_symbol"


def test_symbols_of_the_pattern_are_accepted() -> None:
    for symbol in ("BTCUSDT", "1000SHIBUSDT", "BTC-PERP", "BTC_USD.P", "A" * 32):
        assert isinstance(decode(_trade(1, symbol=symbol)), Trade), symbol


def test_snapshot_symbol_from_a_hostile_key_is_rejected() -> None:
    assert _reason(_snapshot(5), key=b"Z|book") == "invalid_symbol"
    assert isinstance(decode(_snapshot(5), key=b"btcusdt"), DepthSnapshot)  # keys are upper-cased


def test_unknown_interval_is_rejected() -> None:
    assert _reason(_kline(0, interval="7x")) == "invalid_interval"


def test_too_many_levels_in_one_message() -> None:
    many = [[str(1 + i / 1000), "1"] for i in range(5001)]
    assert _reason(_diff(1, 2, bids=many), max_bytes=10**6) == "too_many_levels"
    assert not isinstance(decode(_diff(1, 2, bids=many[:5000]), max_bytes=10**6), Rejection)


def test_duplicate_keys_last_wins_but_a_second_type_tag_is_refused() -> None:
    value = b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":false,"p":"2"}'
    trade = decode(value)
    assert isinstance(trade, Trade) and trade.price == 2.0
    value = b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":false,"e":"kline"}'
    assert _reason(value) == "unknown_type"


# -- the pipeline: separator, jumps, guard, key cap, dead letters ----------------------------------

def test_a_symbol_with_the_separator_cannot_reach_another_keys_state() -> None:
    pipeline = Pipeline(_settings())
    pipeline.process(_snapshot(10), topic=BOOK, partition=0, offset=0, timestamp_ms=T0, key=b"Z")
    [dead] = pipeline.process(_trade(1, symbol="Z|book"), topic=TRADES, partition=0, offset=1,
                              timestamp_ms=T0)
    assert _dead_reasons([dead]) == ["invalid_symbol"]
    [metrics] = pipeline.process(_diff(11, 12, bids=[["99.5", "1"]], symbol="Z"), topic=BOOK, partition=0,
                                 offset=2, timestamp_ms=T0)
    assert metrics.role == "orderbook_metrics" and json.loads(metrics.value)["best_bid"] == 99.5


def test_trade_id_jump_is_dead_lettered_and_does_not_become_the_baseline() -> None:
    pipeline = Pipeline(_settings())
    outs = _run(pipeline, TRADES, [_trade(1), _trade(MAX_INT64 - 3), _trade(2)])
    assert outs[0][0].role == "enriched_trades"
    assert _dead_reasons(outs[1]) == ["id_jump"]
    assert outs[2][0].role == "enriched_trades"  # not "out_of_order": the jump was not kept


def test_trade_time_jump_is_dead_lettered() -> None:
    pipeline = Pipeline(_settings())
    outs = _run(pipeline, TRADES, [_trade(1), _trade(2, t=T0 + 400 * DAY), _trade(3, t=T0 + 1000)])
    assert _dead_reasons(outs[1]) == ["time_jump"]
    assert outs[2][0].role == "enriched_trades"


def test_a_far_past_trade_time_cannot_move_the_session_back_and_lock_the_key() -> None:
    pipeline = Pipeline(_settings())
    outs = _run(pipeline, TRADES, [_trade(1), _trade(2, t=T0 - 400 * DAY), _trade(3, t=T0 + 1000),
                                   _trade(4, t=T0 - 2 * DAY)])
    assert _dead_reasons(outs[1]) == ["time_jump"]
    assert outs[2][0].role == "enriched_trades"
    assert outs[3][0].role == "enriched_trades"  # a late trade within the bound is fine


def test_kline_time_jump_is_dead_lettered_and_the_stream_continues() -> None:
    pipeline = Pipeline(_settings(detection={"enabled": False}))
    year_9000 = 221_845_392_000_000
    outs = _run(pipeline, KLINES, [_kline(T0), _kline(year_9000), _kline(T0 + 60_000)])
    assert _dead_reasons(outs[1]) == ["time_jump"]
    assert [o.role for o in outs[2]] == ["kline_metrics"]


def test_monthly_klines_step_a_month_without_a_jump() -> None:
    pipeline = Pipeline(_settings(detection={"enabled": False},
                                  enrichment={"bounds": {"max_time_jump_ms": DAY}}))
    outs = _run(pipeline, KLINES,
                [_kline(T0, "1M"), _kline(T0 + 31 * DAY, "1M"), _kline(T0 + 40 * DAY, "1d")])
    assert [o.role for out in outs for o in out] == ["kline_metrics"] * 3


def test_depth_update_id_jump_keeps_the_book() -> None:
    pipeline = Pipeline(_settings())
    outs = _run(pipeline, BOOK, [_snapshot(10), _diff(11, 2**62), _diff(11, 12, bids=[["99.5", "2"]])],
                key=b"BTCUSDT")
    assert _dead_reasons(outs[1]) == ["id_jump"]
    doc = json.loads(outs[2][0].value)
    assert doc["best_bid"] == 99.5 and not doc["stale"]


class _Raising:
    """A trade enricher with a bug on one price (stands in for any unforeseen exception)."""

    name = "raising"
    kind = "trade"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def new_state(self) -> dict[str, int]:
        return {"n": 0}

    def update(self, state: dict[str, int], message: Any) -> dict[str, int]:
        state["n"] += 1
        if message.price == 13.0:
            raise self.exc
        return {"n": state["n"]}

    def dump_state(self, state: dict[str, int]) -> bytes:
        return msgspec.msgpack.encode(state)

    def load_state(self, data: bytes) -> dict[str, int]:
        return dict(msgspec.msgpack.decode(data))


@pytest.mark.parametrize("exc, reason", [(KeyError("boom"), "processing_error"),
                                         (NonFiniteState("ema is nan"), "non_finite_state"),
                                         (RecursionError("deep"), "processing_error")])
def test_an_exception_resets_the_key_with_one_dead_letter_and_an_alert(exc: Exception, reason: str) -> None:
    def run() -> list[list[OutputRecord]]:
        pipeline = Pipeline(_settings(), enrichers=[_Raising(exc)], detectors=[], alert_rules=[])
        outs = _run(pipeline, TRADES, [_trade(1), _trade(2), _trade(3, price="13"), _trade(4)])
        assert pipeline.snapshot(TRADES, 0, "BTCUSDT") is not None
        return outs

    outs = run()
    assert [json.loads(o.value)["n"] for o in outs[0] + outs[1]] == [1, 2]
    dead, alert = outs[2]
    headers = dict(dead.headers)
    assert dead.role == "dead_letters" and headers["reason"].decode() == reason
    assert headers["exception"] == type(exc).__name__.encode()
    assert type(exc).__name__ in headers["error"].decode()
    assert dead.value == _trade(3, price="13")
    assert alert.role == "alerts" and json.loads(alert.value)["rule"] == "state_reset"
    assert json.loads(outs[3][0].value)["n"] == 1  # the key starts afresh after the reset
    assert [[(o.role, o.value, o.headers) for o in out] for out in run()] == [
        [(o.role, o.value, o.headers) for o in out] for out in outs]  # replay decides the same


def test_a_reset_key_is_reported_touched_so_the_changelog_gets_a_tombstone() -> None:
    pipeline = Pipeline(_settings(), enrichers=[_Raising(ValueError("x"))], detectors=[], alert_rules=[])
    _run(pipeline, TRADES, [_trade(1)])
    pipeline.take_touched()
    _run(pipeline, TRADES, [_trade(2, price="13")], start_offset=1)
    assert pipeline.take_touched() == {(TRADES, 0, "BTCUSDT")}
    assert pipeline.snapshot(TRADES, 0, "BTCUSDT") is None


def test_state_key_cap_per_partition() -> None:
    pipeline = Pipeline(_settings(max_state_keys_per_partition=3))
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    outs = [pipeline.process(_trade(1, symbol=s), topic=TRADES, partition=0, offset=i, timestamp_ms=T0)
            for i, s in enumerate(symbols)]
    assert [o.role for o in outs[2]] == ["alerts", "enriched_trades"]  # the third key fills the cap
    assert json.loads(outs[2][0].value)["rule"] == "state_key_limit"
    assert _dead_reasons(outs[3]) == ["state_key_limit"] and len(outs[3]) == 1
    assert pipeline.state_key_count(TRADES, 0) == 3
    [again] = pipeline.process(_trade(2, symbol="AAA"), topic=TRADES, partition=0, offset=4, timestamp_ms=T0)
    assert again.role == "enriched_trades"  # existing keys carry on
    [other] = pipeline.process(_trade(1, symbol="DDD"), topic=TRADES, partition=1, offset=0, timestamp_ms=T0)
    assert other.role == "enriched_trades"  # the cap is per partition


def test_dead_letters_are_cut_to_fit_a_record() -> None:
    settings = _settings(max_record_bytes=65_536, enrichment={"max_message_bytes": 2_000_000},
                         detection={"enabled": False})
    pipeline = Pipeline(settings)
    value = b"{" + b"x" * 1_000_000
    key = b"k" * 10_000
    [dead] = pipeline.process(value, topic=TRADES, partition=0, offset=0, timestamp_ms=T0, key=key)
    headers = dict(dead.headers)
    cap = dead_letter_value_cap(65_536)
    assert dead.value == value[:cap] and dead.key == key[:DEAD_LETTER_KEY_MAX]
    assert headers["truncated"] == b"true" and headers["original_size"] == b"1000001"
    assert headers["original_key_size"] == b"10000"
    size = len(dead.value) + len(dead.key) + sum(len(k) + len(v) for k, v in dead.headers)
    assert size <= 65_536 - 4096


def test_small_dead_letters_are_echoed_whole_without_truncation_headers() -> None:
    [dead] = Pipeline(_settings()).process(b"not json", topic=TRADES, partition=0, offset=0, timestamp_ms=T0,
                                           key=b"BTCUSDT")
    assert dead.value == b"not json" and dead.key == b"BTCUSDT"
    assert "truncated" not in dict(dead.headers)


# -- plugins: every call guarded ----------------------------------------------------------------

class _PluginEnricher:
    name = "plugin_enricher"
    kind = "trade"

    def __init__(self, fail: str) -> None:
        self.fail = fail

    def new_state(self) -> dict[str, int]:
        if self.fail == "new_state":
            raise RuntimeError("no state for you")
        return {"n": 0}

    def update(self, state: dict[str, int], message: Any) -> Any:
        state["n"] += 1
        return {"n": object()} if self.fail == "document" else {"n": state["n"]}

    def dump_state(self, state: dict[str, int]) -> bytes:
        if self.fail == "dump_state":
            raise RuntimeError("cannot dump")
        return msgspec.msgpack.encode(state)

    def load_state(self, data: bytes) -> dict[str, int]:
        if self.fail == "load_state":
            raise RuntimeError("cannot load")
        return dict(msgspec.msgpack.decode(data))


def _plugin_pipeline(fail: str) -> Pipeline:
    plugins = LoadedPlugins.from_objects(enrichers=[_PluginEnricher(fail)], max_consecutive_failures=100)
    return Pipeline(_settings(), plugins=plugins, detectors=[])


@pytest.mark.parametrize("fail", ["new_state", "document"])
def test_plugin_failures_outside_update_are_plugin_errors(fail: str) -> None:
    pipeline = _plugin_pipeline(fail)
    outs = _run(pipeline, TRADES, [_trade(1), _trade(2)])
    # new_state: the first record costs the failed new_state and the update on no state
    assert _dead_reasons(outs[0]) == ["plugin_error"] * (2 if fail == "new_state" else 1)
    assert _dead_reasons(outs[1]) == ["plugin_error"]
    for out in outs:
        # the built-in's output stands: only the plugin failed
        assert [json.loads(o.value)["trade_id"] for o in out if o.role == "enriched_trades"] == [
            outs.index(out) + 1]


@pytest.mark.parametrize("fail", ["dump_state", "load_state"])
def test_plugin_state_that_cannot_be_saved_or_loaded_restarts_fresh(fail: str) -> None:
    pipeline = _plugin_pipeline(fail)
    _run(pipeline, TRADES, [_trade(1), _trade(2)])
    data = pipeline.snapshot(TRADES, 0, "BTCUSDT")
    assert data is not None
    restored = _plugin_pipeline(fail)
    restored.restore(TRADES, 0, "BTCUSDT", data)
    out = restored.process(_trade(3), topic=TRADES, partition=0, offset=2, timestamp_ms=T0)
    plugin_docs = [json.loads(o.value) for o in out if o.role == "enriched_trades"
                   and "n" in json.loads(o.value)]
    assert plugin_docs == [{"n": 1}]  # fresh plugin state; the built-in state came back
    assert [json.loads(o.value)["window_trades"] for o in out
            if o.role == "enriched_trades" and "n" not in json.loads(o.value)] == [3]


# -- configuration ----------------------------------------------------------------------------------

def test_settings_whose_snapshot_cannot_fit_a_record_are_refused_with_every_problem() -> None:
    raw = {"stream_processors": {"p": {
        "consumer_group": "g", "input_topics": [TRADES],
        "enrichment": {"trades": {"vwap_window": 100_000}, "orderbook": {"max_levels": 100_000}},
        "detection": {"mode": "compat"},
        "kafka_clients": {"producer": {"message.max.bytes": 500_000}}}}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    text = str(info.value)
    for expected in ("vwap_window", "max_levels", "compat", "message.max.bytes"):
        assert expected in text, expected


def test_default_settings_fit_and_a_larger_record_allows_larger_windows() -> None:
    with pytest.raises(ConfigError):
        parse_config({"stream_processors": {"p": {"consumer_group": "g", "input_topics": [TRADES],
                                                  "enrichment": {"trades": {"vwap_window": 40_000}}}}})
    parse_config({"stream_processors": {"p": {"consumer_group": "g", "input_topics": [TRADES],
                                              "max_record_bytes": 4_000_000,
                                              "enrichment": {"trades": {"vwap_window": 40_000}}}}})


def test_input_bounds_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="min_price"):
        InputBounds(min_price=10, max_price=1)
    with pytest.raises(ValueError, match="max_price / min_price"):
        InputBounds(min_price=1e-200, max_price=1e100)


def test_worst_case_estimate_bounds_real_snapshots_at_their_limits() -> None:
    # trade rings of 30,000, a book of 1,000 levels per side, a kline key with SMC state after a
    # day of 1m bars: every real snapshot stays within the estimate config validation relies on
    settings = _settings(enrichment={"trades": {"vwap_window": 30_000}, "orderbook": {"max_levels": 1000}})
    estimate = worst_case_snapshot_bytes(settings)
    pipeline = Pipeline(settings)
    for i in range(30_050):
        pipeline.process(_trade(i + 1, price=str(100 + (i % 97) * 0.01), t=T0 + i), topic=TRADES, partition=0,
                         offset=i, timestamp_ms=T0)
    bids = [[f"{50 + i * 0.01:.2f}", "1.5"] for i in range(1000)]
    asks = [[f"{150 + i * 0.01:.2f}", "2.5"] for i in range(1000)]
    pipeline.process(json.dumps({"lastUpdateId": 1, "bids": bids, "asks": asks}).encode(), topic=BOOK,
                     partition=0, offset=0, timestamp_ms=T0, key=b"BTCUSDT")
    for i, record in enumerate(generate_market_data(["BTCUSDT"], trades_per_symbol=20_000, seed=3)):
        if record.topic.endswith("klines"):
            pipeline.process(record.value, topic=KLINES, partition=0, offset=i, timestamp_ms=T0)
    sizes = {kind: len(pipeline.snapshot(topic, 0, key) or b"") for kind, topic, key in (
        ("trade", TRADES, "BTCUSDT"), ("orderbook", BOOK, "BTCUSDT|book"), ("kline", KLINES, "BTCUSDT|1m"))}
    assert sizes["trade"] > 30_000 * 32 and sizes["orderbook"] > 2000 * 18 and sizes["kline"] > 1000
    for kind, size in sizes.items():
        assert size <= estimate[kind], (kind, size, estimate[kind])


def _uptrend(n: int) -> list[Bar]:
    # every bar's low is above the high two bars back: one bullish FVG per bar, never mitigated
    return [Bar(T0 + i * 60_000, 10.0 * i, 10.0 * i + 2, 10.0 * i - 1, 10.0 * i + 1, 1.0)
            for i in range(1, n)]


def test_open_fvgs_are_capped_and_the_oldest_given_up_as_final() -> None:
    capped = SmcEngine(SmcParams(swing_length=3, max_open_fvgs=5))
    free = SmcEngine(SmcParams(swing_length=3))
    finals = []
    for bar in _uptrend(400):
        finals += [e for e in capped.on_bar(bar) if e.pattern == "fvg" and e.action == "final"]
        free.on_bar(bar)
    open_capped = [e for e in capped.alive() if e.pattern == "fvg"]
    open_free = [e for e in free.alive() if e.pattern == "fvg"]
    assert len(open_free) > 300 and len(open_capped) == 5
    assert [e.index for e in open_capped] == [e.index for e in open_free][-5:]  # the newest stay
    assert len(finals) == len(open_free) - 5
    assert all(e.final_at is not None and e.mitigated_index is None for e in finals)
    assert len(capped.snapshot()) < len(free.snapshot()) / 10
    restored = SmcEngine.restore(capped.snapshot())
    assert restored.snapshot() == capped.snapshot()


def test_fvg_cap_defaults_on_in_processors_and_off_for_compat() -> None:
    assert _settings().detection.max_open_fvgs == 200
    with pytest.raises(ValueError, match="compat"):
        SmcParams(compat=True, max_open_fvgs=5)


class _RaisingDetector:
    def __init__(self) -> None:
        self.bars = 0

    def on_bar(self, bar: Bar) -> list[Any]:
        self.bars += 1
        if self.bars == 2:
            raise IndexError("detector bug")
        return []

    def finalize(self) -> list[Any]:
        return []

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(self.bars)


class _RaisingDetectorFactory:
    name = "raising_detector"

    def create(self) -> _RaisingDetector:
        return _RaisingDetector()

    def restore(self, data: bytes) -> _RaisingDetector:
        detector = _RaisingDetector()
        detector.bars = msgspec.msgpack.decode(data)
        return detector


class _RaisingRule:
    name = "raising_rule"
    kinds = frozenset({"kline"})

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any, active: set[str]) -> list[Any]:
        if record.close == 13.0:
            raise ZeroDivisionError("rule bug")
        return []


@pytest.mark.parametrize("where", ["detector", "alert_rule"])
def test_the_guard_covers_detection_and_alerting(where: str) -> None:
    detectors: list[Any] = [_RaisingDetectorFactory()] if where == "detector" else []
    rules: list[Any] = [_RaisingRule()] if where == "alert_rule" else []
    pipeline = Pipeline(_settings(), detectors=detectors, alert_rules=rules)
    second = json.loads(_kline(T0 + 60_000))
    second["k"]["c"] = "13" if where == "alert_rule" else "10.5"
    second["k"]["h"] = "13"
    outs = _run(pipeline, KLINES, [_kline(T0), json.dumps(second).encode(), _kline(T0 + 120_000)])
    assert [o.role for o in outs[0]] == ["kline_metrics"]
    dead, alert = outs[1]
    assert _dead_reasons([dead]) == ["processing_error"]
    assert json.loads(alert.value)["rule"] == "state_reset"
    # the key was reset: the next kline is its first again (no previous close, so no log return)
    [metrics] = outs[2]
    assert json.loads(metrics.value)["log_return"] is None


def test_restored_engines_take_the_current_fvg_cap() -> None:
    # a snapshot written without a cap (or before the setting existed) is capped after restore
    free = SmcEngine(SmcParams(swing_length=3))
    bars = _uptrend(300)
    for bar in bars[:-1]:
        free.on_bar(bar)
    factory = SmcDetectorFactory(DetectionSettings(swing_length=3, max_open_fvgs=10))
    restored = factory.restore(free.snapshot())
    events = restored.on_bar(bars[-1])
    assert isinstance(restored, SmcEngine)
    assert len([e for e in restored.alive() if e.pattern == "fvg"]) == 10
    assert len([e for e in events if e.pattern == "fvg" and e.action == "final"]) > 250
