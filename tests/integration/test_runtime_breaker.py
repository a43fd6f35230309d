"""Repeated output failures open the circuit breaker: consumption stops (no work piles up), /ready
turns 503 while /health stays 200 (a restart would not help: issue 12 item 8); after the cooldown a
half-open probe transaction succeeds, the breaker closes and the committed outputs are still exact.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from smc_runtime.config import parse_config
from smc_runtime.kafka.breaker import BreakerState, CircuitBreaker
from smc_runtime.pipeline import Pipeline
from smc_runtime.service.app import RuntimeApp
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

FAILING_COMMITS = {5, 6, 7}  # three in a row: the breaker's threshold


class FailingCommits(Producer):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.commits = 0

    def commit_transaction(self, *args: Any) -> None:
        self.commits += 1
        if self.commits in FAILING_COMMITS:
            raise KafkaException(KafkaError(KafkaError._STATE, "injected", txn_requires_abort=True))
        super().commit_transaction(*args)


def test_breaker_opens_stops_consumption_and_recovers(kafka_bootstrap: str, make_topic: MakeTopic,
                                                      tmp_path: Path) -> None:
    topology = rs.make_topology(make_topic)
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {"main": topology.processor()},
                          processor_id="breaker-0")
    config = parse_config(doc)
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=3.0)
    app = RuntimeApp(config, Pipeline, bind_address="127.0.0.1", wedged_after_s=None,
                     runner_kwargs={"producer_factory": FailingCommits, "breaker": breaker})
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    status = app.statuses["main"]
    seen_open: list[tuple[int, int, int]] = []
    try:
        feeder = threading.Thread(target=rs.feed, daemon=True, args=(
            kafka_bootstrap, topology, rs.market_data(30_000, symbols=4, seed=13), 3_000.0))
        feeder.start()
        deadline = time.monotonic() + 60
        while breaker.state is not BreakerState.OPEN and time.monotonic() < deadline:
            time.sleep(0.02)
        assert breaker.state is BreakerState.OPEN
        processed_at_open = status.messages_processed
        time.sleep(2.0)  # inside the 3 s cooldown
        code, _ = app.report.health(time.monotonic(), time.time())
        ready, _ = app.report.ready()
        seen_open.append((code, ready, status.messages_processed - processed_at_open))
        feeder.join(60)
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 90)
    finally:
        app.stop()
        thread.join(60)
    assert seen_open == [(200, 503, 0)], "while open: alive, not ready, nothing consumed"
    assert breaker.state is BreakerState.CLOSED and breaker.times_opened == 1
    assert status.transactions_aborted == len(FAILING_COMMITS)
    inputs = rs.read_inputs(kafka_bootstrap, topology)
    expected = rs.reference_outputs(config.stream_processors["main"], inputs)
    assert rs.compare(expected, rs.actual_outputs(kafka_bootstrap, topology)) == []
