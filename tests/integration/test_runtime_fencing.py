"""A second instance with the same PROCESSOR_ID (a restarted pod whose predecessor still runs, e.g.
after a network partition) fences the first through the shared transactional.id: the zombie exits
non-zero instead of committing, and the outputs stay exact.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from smc_runtime.config import parse_config
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EXIT_FATAL = 3


def test_same_processor_id_fences_the_older_instance(kafka_bootstrap: str, make_topic: MakeTopic,
                                                     tmp_path: Path) -> None:
    topology = rs.make_topology(make_topic)
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {"main": topology.processor()},
                          processor_id="fence-0")
    first = rs.RuntimeProcess(tmp_path / "config.yaml", tmp_path / "first.log").start()
    ports = {"HEALTH_CHECK_PORT": str(rs.free_port()), "METRICS_PORT": str(rs.free_port())}
    second = rs.RuntimeProcess(tmp_path / "config.yaml", tmp_path / "second.log", env=ports)
    try:
        first.wait_ready()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            inputs = rs.market_data(30_000, symbols=6, seed=4)
            fed = pool.submit(rs.feed, kafka_bootstrap, topology, inputs, 3_000.0)
            rs.wait_until("first is processing", lambda: first.http_processed() > 1_000, 30)
            second.start()
            assert first.proc is not None
            first.proc.wait(timeout=60)
            assert first.proc.returncode == EXIT_FATAL, first.log_tail()
            assert fed.result() == 30_000
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 120)
        assert second.terminate() == 0, second.log_tail()
    finally:
        first.kill()
        second.kill()
    assert "fenced" in first.log.read_text().lower()
    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(kafka_bootstrap, topology))
    assert rs.compare(expected, rs.actual_outputs(kafka_bootstrap, topology)) == []
