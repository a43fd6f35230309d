"""Plugin state across crashes: the crash test (``test_runtime_crash.py``) with the example plugin
enabled (enricher, detector and alert rule, each with state), shorter: kill -9 the runtime
``KILLS`` times while it processes a live feed, restart it each time, and require the committed
outputs to equal the oracle's (the Pipeline, plugins included, over the committed input)."""

from __future__ import annotations

import concurrent.futures
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from smc_runtime.config import parse_config
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MESSAGES = 60_000
KILLS = 3
FEED_RATE = 2_000.0  # records/s: the feed lasts ~30 s, longer than the crash cycles


def _plugins(inputs: list[tuple[str, bytes, bytes]]) -> dict[str, Any]:
    """The example plugin, with price levels the feed is sure to cross (median trade prices)."""
    prices: dict[str, list[float]] = {}
    for kind, _, value in inputs:
        if kind == "trades":
            doc = json.loads(value)
            prices.setdefault(doc["s"], []).append(float(doc["p"]))
    return {
        "enrichers": {"trade_streak": {"min_streak": 3}},
        "detectors": {"range_breakout": {"lookback": 5}},
        "alert_rules": {"price_level": {"levels": {s: [statistics.median(p)] for s, p in prices.items()}}},
    }


def test_plugin_outputs_are_exact_after_kill_9(kafka_bootstrap: str, make_topic: MakeTopic,
                                               tmp_path: Path) -> None:
    topology = rs.make_topology(make_topic, input_partitions=3, output_partitions=2)
    inputs = rs.market_data(MESSAGES, symbols=6, seed=77)
    config = tmp_path / "streams-config.yaml"
    processor = topology.processor(plugins=_plugins(inputs),
                                   enrichment={"klines": {"bars_from_trades": True,
                                                          "trade_bar_interval_ms": 10_000}})
    doc = rs.write_config(config, kafka_bootstrap, {"main": processor}, processor_id="plugin-crash-0")
    log = tmp_path / "runtime.log"
    rng = random.Random(707)
    kills: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fed = pool.submit(rs.feed, kafka_bootstrap, topology, inputs, FEED_RATE)
        runtime = rs.RuntimeProcess(config, log).start()
        try:
            for i in range(KILLS):
                runtime.wait_ready(timeout=90)
                time.sleep(rng.uniform(0.5, 3.0))
                lag = rs.group_lag(kafka_bootstrap, topology)
                assert lag > 0 or not fed.done(), f"input fully processed before kill {i + 1}"
                runtime.kill()
                kills.append(f"kill {i + 1}, group lag {lag}")
                runtime = rs.RuntimeProcess(config, log).start()
            assert fed.result() == MESSAGES
            rs.wait_until("all input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0,
                          timeout=240, interval=1.0)
            assert runtime.terminate() == 0, runtime.log_tail()
        finally:
            runtime.kill()
    assert len(kills) == KILLS

    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(kafka_bootstrap, topology))
    docs = [json.loads(value) for role in ("enriched_trades", "smc_signals", "alerts")
            for _, value, _ in expected[role]]
    assert any(d.get("type") == "trade_streak" for d in docs)
    assert any(d.get("detector") == "range_breakout" for d in docs)
    assert any(d.get("rule") == "price_level" for d in docs)
    actual = rs.actual_outputs(kafka_bootstrap, topology)
    assert rs.compare(expected, actual) == [], "\n".join(kills)
