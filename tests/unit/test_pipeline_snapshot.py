"""Snapshot/restore property: split the input anywhere, snapshot every key, restore into a fresh
Pipeline (and once in a fresh process), and the outputs equal an unsplit run byte for byte."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smc_runtime.config import ProcessorSettings
from smc_runtime.pipeline import OutputRecord, Pipeline
from smc_runtime.sample_data import MarketRecord, generate_market_data

SETTINGS_RAW: dict[str, Any] = {
    "consumer_group": "g",
    "input_topics": ["in"],
    "detection": {"swing_length": 2},
    "enrichment": {"klines": {"bars_from_trades": True, "trade_bar_interval_ms": 5000},
                   "trades": {"sma_windows": [3, 7], "vwap_window": 5, "volume_window": 6,
                              "volatility_window": 4, "momentum_window": 3, "ema_span": 4}},
}


def _settings() -> ProcessorSettings:
    return ProcessorSettings.model_validate(SETTINGS_RAW)


@functools.cache
def _records(seed: int) -> tuple[MarketRecord, ...]:
    return tuple(generate_market_data(["BTCUSDT", "ETHUSDT"], trades_per_symbol=120, seed=seed,
                                      mean_trade_gap_ms=1500, depth_every=2, snapshot_every=15,
                                      book_levels=8, malformed_every=37))


def _partition(record: MarketRecord) -> int:
    return record.key[0] % 2  # two source partitions, as the Kafka key hash would spread them


def _feed(pipeline: Pipeline, records: tuple[MarketRecord, ...], start: int) -> list[OutputRecord]:
    out: list[OutputRecord] = []
    for offset, r in enumerate(records, start=start):
        out += pipeline.process(r.value, topic=r.topic, partition=_partition(r), offset=offset,
                                timestamp_ms=r.timestamp_ms, key=r.key)
    return out


def _snapshot_all(pipeline: Pipeline, records: tuple[MarketRecord, ...]) -> dict[str, bytes]:
    snaps: dict[str, bytes] = {}
    for topic, partition in sorted({(r.topic, _partition(r)) for r in records}):
        for key in pipeline.state_keys(topic, partition):
            data = pipeline.snapshot(topic, partition, key)
            assert data is not None
            snaps[json.dumps([topic, partition, key])] = data
    return snaps


def _unsplit(seed: int) -> list[OutputRecord]:
    records = _records(seed)
    pipeline = Pipeline(_settings())
    return _feed(pipeline, records, 0) + pipeline.finalize()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 3), split=st.floats(0.0, 1.0))
def test_split_snapshot_restore_equals_unsplit(seed: int, split: float) -> None:
    records = _records(seed)
    cut = int(len(records) * split)
    first = Pipeline(_settings())
    outputs = _feed(first, records[:cut], 0)
    snaps = _snapshot_all(first, records)
    second = Pipeline(_settings())
    for name, data in snaps.items():
        topic, partition, key = json.loads(name)
        second.restore(topic, partition, key, data)
    # restored state snapshots to the same bytes
    assert _snapshot_all(second, records) == snaps
    outputs += _feed(second, records[cut:], cut) + second.finalize()
    assert outputs == _unsplit(seed)


def test_restore_in_a_fresh_process(tmp_path: Path) -> None:
    seed = 1
    records = _records(seed)
    cut = len(records) // 2
    first = Pipeline(_settings())
    outputs = _feed(first, records[:cut], 0)
    (tmp_path / "state.msgpack").write_bytes(msgspec.msgpack.encode(_snapshot_all(first, records)))
    script = textwrap.dedent(f"""
        import json, sys, msgspec
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.unit.test_pipeline_snapshot import _records, _feed, _settings
        from smc_runtime.pipeline import Pipeline
        snaps = msgspec.msgpack.decode(open(sys.argv[1], "rb").read())
        pipeline = Pipeline(_settings())
        for name, data in snaps.items():
            topic, partition, key = json.loads(name)
            pipeline.restore(topic, partition, key, data)
        records = _records({seed})
        out = _feed(pipeline, records[{cut}:], {cut}) + pipeline.finalize()
        rows = [[o.role, o.key, o.value, list(o.headers)] for o in out]
        sys.stdout.buffer.write(msgspec.msgpack.encode(rows))
    """)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "state.msgpack")],
                            capture_output=True, check=True, timeout=120)
    rest = [OutputRecord(role, key, value, tuple((n, v) for n, v in headers))
            for role, key, value, headers in msgspec.msgpack.decode(result.stdout)]
    unsplit = _unsplit(seed)
    assert outputs + rest == unsplit
    assert any(o.role == "smc_signals" for o in unsplit[cut:])  # the detectors' state was exercised
