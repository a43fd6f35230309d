"""Plugin state takes part in snapshot/restore exactly like built-in state: with the example
plugin (examples/smc-example-plugin, installed by ``make setup``) enabled, splitting the input
anywhere, snapshotting every key and restoring into a fresh Pipeline gives byte-identical outputs."""

from __future__ import annotations

import functools
import json
import statistics
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smc_runtime.config import ProcessorSettings
from smc_runtime.pipeline import OutputRecord, Pipeline
from smc_runtime.sample_data import MarketRecord, generate_market_data

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@functools.cache
def _records(seed: int) -> tuple[MarketRecord, ...]:
    return tuple(generate_market_data(SYMBOLS, trades_per_symbol=150, seed=seed, mean_trade_gap_ms=1500,
                                      depth_every=3, snapshot_every=20, book_levels=5, malformed_every=41))


def _median_prices(records: tuple[MarketRecord, ...]) -> dict[str, list[float]]:
    """Levels the price is sure to cross: the median trade price of each symbol."""
    prices: dict[str, list[float]] = {}
    for r in records:
        try:
            doc = json.loads(r.value)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("e") == "trade" and isinstance(doc.get("p"), str):
            prices.setdefault(doc["s"], []).append(float(doc["p"]))
    return {symbol: [statistics.median(values)] for symbol, values in prices.items()}


def _settings(seed: int) -> ProcessorSettings:
    raw: dict[str, Any] = {
        "consumer_group": "g",
        "input_topics": ["in"],
        "detection": {"swing_length": 2},
        "enrichment": {"klines": {"bars_from_trades": True, "trade_bar_interval_ms": 5000}},
        "plugins": {
            "enrichers": {"trade_streak": {"min_streak": 2}},
            "detectors": {"range_breakout": {"lookback": 3}},
            "alert_rules": {"price_level": {"levels": _median_prices(_records(seed))}},
        },
    }
    return ProcessorSettings.model_validate(raw)


def _partition(record: MarketRecord) -> int:
    return record.key[0] % 2


def _feed(pipeline: Pipeline, records: tuple[MarketRecord, ...], start: int) -> list[OutputRecord]:
    out: list[OutputRecord] = []
    for offset, r in enumerate(records, start=start):
        out += pipeline.process(r.value, topic=r.topic, partition=_partition(r), offset=offset,
                                timestamp_ms=r.timestamp_ms, key=r.key)
    return out


@functools.cache
def _unsplit(seed: int) -> tuple[OutputRecord, ...]:
    return tuple(_feed(Pipeline(_settings(seed)), _records(seed), 0))


def test_the_example_plugins_all_produce_outputs() -> None:
    outputs = _unsplit(0)
    docs = [json.loads(o.value) for o in outputs if o.role != "dead_letters"]
    assert any(d.get("type") == "trade_streak" for d in docs)
    assert any(d.get("detector") == "range_breakout" for d in docs)
    assert any(d.get("rule") == "price_level" for d in docs)
    assert not [o for o in outputs if dict(o.headers).get("reason") == b"plugin_error"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 3), data=st.data())
def test_split_and_restore_with_plugins_matches_unsplit(seed: int, data: st.DataObject) -> None:
    records = _records(seed)
    split = data.draw(st.integers(0, len(records)), label="split")
    first = Pipeline(_settings(seed))
    outputs = _feed(first, records[:split], 0)
    second = Pipeline(_settings(seed))
    for topic, partition in sorted({(r.topic, _partition(r)) for r in records[:split]}):
        for key in first.state_keys(topic, partition):
            snapshot = first.snapshot(topic, partition, key)
            assert snapshot is not None
            second.restore(topic, partition, key, snapshot)
    outputs += _feed(second, records[split:], split)
    assert outputs == list(_unsplit(seed))
