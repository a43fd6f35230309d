"""The series in the streaming pipeline: ``detection.series`` adds the ``smc_series`` detector,
its events reach ``smc_signals``, the series alert rules fire, and its state survives a
snapshot/restore of the key; invalid series specs are config errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from smc_runtime.config import DetectionSettings, ProcessorSettings
from smc_runtime.pipeline import OutputRecord, Pipeline

KLINES = "market_data.binance.btcusdt.klines"
HOUR = 3_600_000
T0 = 1704067200000  # 2024-01-01 00:00 UTC


def settings(**detection: Any) -> ProcessorSettings:
    return ProcessorSettings.model_validate(
        {"consumer_group": "g", "input_topics": [KLINES], "detection": {"swing_length": 2, **detection}})


def kline(i: int) -> bytes:
    # a day-long rise: each bar a bit higher, so day 2 breaks day 1's high
    o = 100.0 + i * 0.5
    c = o + 0.4
    return json.dumps({"e": "kline", "E": T0 + i * HOUR, "s": "BTCUSDT", "k": {
        "t": T0 + i * HOUR, "T": T0 + (i + 1) * HOUR - 1, "s": "BTCUSDT", "i": "1h", "o": str(o),
        "h": str(c + 0.1), "l": str(o - 0.1), "c": str(c), "v": "5", "n": 3, "x": True, "q": "50", "V": "2",
        "Q": "20"}}).encode()


def run(pipeline: Pipeline, start: int, stop: int) -> list[OutputRecord]:
    out: list[OutputRecord] = []
    for i in range(start, stop):
        out += pipeline.process(kline(i), topic=KLINES, partition=0, offset=i, timestamp_ms=T0 + i * HOUR)
    return out


def test_series_events_and_alerts_in_the_pipeline() -> None:
    pipeline = Pipeline(settings(series=["previous_high_low:1D", "sessions:London"]))
    out = run(pipeline, 0, 50)
    signals = [json.loads(o.value) for o in out if o.role == "smc_signals"]
    series = [s for s in signals if s["detector"] == "smc_series"]
    kinds = {(s["event"]["pattern"], s["event"]["action"]) for s in series}
    assert {("previous_high_low", "updated"), ("previous_high_low", "broken"), ("session", "opened"),
            ("session", "closed")} <= kinds
    names = ("previous_high_low:1D", "sessions:London")
    assert all(s["interval"] == "1h" and s["event"]["series"] in names for s in series)
    opened = [s["event"] for s in series if s["event"]["action"] == "opened"]
    assert opened[0]["timestamp_ms"] == T0 + 7 * HOUR  # London opens 07:00 UTC
    alerts = [json.loads(o.value) for o in out if o.role == "alerts"]
    rules = [a["rule"] for a in alerts]
    assert "previous_level_broken" in rules and "session" in rules
    broken = next(a for a in alerts if a["rule"] == "previous_level_broken")
    assert broken["message"].startswith("BTCUSDT 1h broke the previous 1D high")


def test_without_series_nothing_changes() -> None:
    out = run(Pipeline(settings()), 0, 30)
    assert all(json.loads(o.value)["detector"] == "smc" for o in out if o.role == "smc_signals")


def test_series_state_survives_snapshot_restore() -> None:
    cfg = settings(series=["previous_high_low:1D", "sessions:London", "retracements"])
    ref = Pipeline(cfg)
    expected = run(ref, 0, 60)
    first = Pipeline(cfg)
    head = run(first, 0, 31)
    snap = first.snapshot(KLINES, 0, "BTCUSDT|1h")
    assert snap is not None
    second = Pipeline(cfg)
    second.restore(KLINES, 0, "BTCUSDT|1h", snap)
    assert head + run(second, 31, 60) == expected


@pytest.mark.parametrize("bad", [["sessions:Paris"], ["previous_high_low:7h"],
                                 ["retracements", "retracements"], ["sessions:London@Nowhere/City"]])
def test_bad_series_config_is_rejected(bad: list[str]) -> None:
    with pytest.raises(ValidationError):
        settings(series=bad)


def test_compat_accepts_the_librarys_time_frames() -> None:
    compat = DetectionSettings(mode="compat", series=["previous_high_low:7h"])
    assert compat.series == ["previous_high_low:7h"]
    with pytest.raises(ValidationError):
        DetectionSettings(series=["previous_high_low:7h"])  # default bins must divide the day
