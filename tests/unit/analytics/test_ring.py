"""Ring snapshot bytes: exact round trip, a fixed little-endian layout, foreign sizes refused
(as a ``SnapshotError`` at the pipeline)."""

from __future__ import annotations

import struct

import pytest

from smc_runtime.analytics.enrichers import TradeEnricher
from smc_runtime.analytics.ring import new_ring, rings_bytes, rings_from_bytes
from smc_runtime.config import ProcessorSettings, TradeEnrichment
from smc_runtime.messages import Trade
from smc_runtime.pipeline import Pipeline
from smc_runtime.state import SnapshotError


def test_rings_round_trip_exactly_in_little_endian_float64() -> None:
    a, b = new_ring(3), new_ring(3)
    a[0], a[1], a[2] = 0.1, -2.5e-300, float("inf")
    b[1] = 1.0 / 3.0
    data = rings_bytes([a, b])
    assert data == struct.pack("<6d", 0.1, -2.5e-300, float("inf"), 0.0, 1.0 / 3.0, 0.0)
    assert rings_from_bytes(data, 2, 3) == [a, b]


def test_rings_from_bytes_refuses_another_size() -> None:
    with pytest.raises(ValueError, match="expected 2 x 4"):
        rings_from_bytes(bytes(8 * 6), 2, 4)


def _trade(trade_id: int, price: float) -> Trade:
    return Trade("BTCUSDT", trade_id, price, 0.5 + trade_id % 3, 1_700_000_000_000 + trade_id,
                 trade_id % 2 == 0)


def test_trade_state_snapshot_restores_identical_state_and_outputs() -> None:
    enricher = TradeEnricher(TradeEnrichment(sma_windows=[3, 5], vwap_window=4, volume_window=4,
                                             volatility_window=3, momentum_window=2))
    state = enricher.new_state()
    for i in range(1, 12):  # wraps the ring (size 5) twice
        enricher.update(state, _trade(i, 100.0 + (i * 7) % 5))
    data = enricher.dump_state(state)
    restored = enricher.load_state(data)
    assert restored == state and enricher.dump_state(restored) == data
    assert enricher.update(restored, _trade(12, 101.0)) == enricher.update(state, _trade(12, 101.0))


def test_trade_state_from_another_window_configuration_is_refused() -> None:
    small = TradeEnricher(TradeEnrichment(sma_windows=[3], vwap_window=4, volume_window=4,
                                          volatility_window=3, momentum_window=2))
    default = TradeEnricher(TradeEnrichment())
    with pytest.raises(ValueError):
        default.load_state(small.dump_state(small.new_state()))


def test_pipeline_restore_of_a_snapshot_from_other_trade_windows_is_a_snapshot_error() -> None:
    topic = "market_data.binance.btcusdt.trades"
    value = (b'{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"100.5","q":"0.25","T":1,"m":false}')
    small = Pipeline(ProcessorSettings.model_validate(
        {"consumer_group": "g", "input_topics": ["in"], "enrichment": {"trades": {"sma_windows": [3]}}}))
    [out] = small.process(value, topic=topic, partition=0, offset=0, timestamp_ms=1)
    assert out.role == "enriched_trades"
    data = small.snapshot(topic, 0, "BTCUSDT")
    assert data is not None
    default = Pipeline(ProcessorSettings(consumer_group="g", input_topics=["in"]))
    with pytest.raises(SnapshotError, match="does not load"):
        default.restore(topic, 0, "BTCUSDT", data)
