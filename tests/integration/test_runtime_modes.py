"""Several ``stream_processors`` run side by side in one process, each with its own group, consumer,
producer and changelog: one exactly-once, one at-least-once. Without failures both produce exactly
the oracle's outputs, and /health reports both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from smc_runtime.config import parse_config
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_exactly_once_and_at_least_once_processors_side_by_side(kafka_bootstrap: str, make_topic: MakeTopic,
                                                                tmp_path: Path) -> None:
    eos = rs.make_topology(make_topic, input_partitions=2)
    alo = rs.make_topology(make_topic, input_partitions=2)
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {
        "eos": eos.processor(),
        "alo": alo.processor(processing_mode="at_least_once"),
    }, processor_id="modes-0")
    with rs.running(tmp_path / "config.yaml", tmp_path / "runtime.log") as runtime:
        runtime.wait_ready()
        rs.feed(kafka_bootstrap, eos, rs.market_data(15_000, symbols=4, seed=21))
        rs.feed(kafka_bootstrap, alo, rs.market_data(15_000, symbols=4, seed=22))
        rs.wait_until("both groups committed", lambda: rs.group_lag(kafka_bootstrap, eos) == 0
                      and rs.group_lag(kafka_bootstrap, alo) == 0, 90)
        code, health = rs.http_json(runtime.url("/health"))
        assert code == 200
        assert {name: p["metrics"]["messages_processed"] for name, p in health["processors"].items()} == {
            "eos": 15_000, "alo": 15_000}
        assert runtime.terminate() == 0

    config = parse_config(doc)
    for name, topology in (("eos", eos), ("alo", alo)):
        inputs = rs.read_inputs(kafka_bootstrap, topology)
        expected = rs.reference_outputs(config.stream_processors[name], inputs)
        assert rs.compare(expected, rs.actual_outputs(kafka_bootstrap, topology)) == [], name
