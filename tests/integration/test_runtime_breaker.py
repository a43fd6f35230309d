"""Repeated output failures open the circuit breaker: consumption stops (no work piles up), /ready
turns 503 while /health stays 200 (a restart would not help: issue 12 item 8); after the cooldown a
half-open probe transaction succeeds, the breaker closes and the committed outputs are still exact.

Two ways in: commit failures injected into the producer in-process, and a real broker that refuses an
output topic's batches (its ``max.message.bytes`` lowered through the admin API while the runtime, a
subprocess, processes a live stream) and then accepts them again.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

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


def _set_topic_config(admin: Any, topic: str, key: str, value: str | None) -> None:
    """Set (or, with None, delete back to the broker default) one topic config, incrementally."""
    op = AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
    entry = ConfigEntry(key, value or "", incremental_operation=op)
    for future in admin.incremental_alter_configs([ConfigResource("TOPIC", topic,
                                                                  incremental_configs=[entry])]).values():
        future.result(30)


def _breaker(runtime: rs.RuntimeProcess) -> tuple[int, int, str | None]:
    """(/health code, /ready code, the processor's checks.circuit_breaker) of the subprocess."""
    try:
        code, doc = rs.http_json(runtime.url("/health"))
        ready, _ = rs.http_json(runtime.url("/ready"))
        return code, ready, doc["processors"]["main"]["checks"]["circuit_breaker"]
    except (OSError, KeyError, TypeError):
        return 0, 0, None


def test_a_topic_refusing_output_opens_the_breaker_until_it_accepts_again(
        kafka_bootstrap: str, kafka_admin: Any, make_topic: MakeTopic, tmp_path: Path) -> None:
    """The broker refuses every batch for one output topic (MESSAGE_TOO_LARGE, an abortable error of the
    transaction): the runtime aborts and rewinds, and after three failed transactions opens the breaker
    within seconds; no exit, no restart. It stays not closed while the topic refuses, although the
    transactions that touch only other topics commit in between (other input partitions); once the
    topic accepts again the probe closes it, the input drains and the outputs are exact."""
    topology = rs.make_topology(make_topic)
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {"main": topology.processor()},
                          processor_id="refused-0")
    refused = topology.outputs["enriched_trades"]
    inputs = rs.market_data(36_000, symbols=4, seed=21)
    states: list[tuple[float, int, int, str | None]] = []
    with rs.running(tmp_path / "config.yaml", tmp_path / "runtime.log") as runtime:
        runtime.wait_ready()
        feeder = threading.Thread(target=rs.feed, args=(kafka_bootstrap, topology, inputs, 1_500.0),
                                  daemon=True)
        feeder.start()
        rs.wait_until("outputs committed", lambda: rs.committed_count(kafka_bootstrap, topology) > 0, 30)
        _set_topic_config(kafka_admin, refused, "max.message.bytes", "200")  # below any one record
        refused_at = time.monotonic()

        def watch(until: Any, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                states.append((round(time.monotonic() - refused_at, 1), *_breaker(runtime)))
                if until(states[-1]):
                    return
                time.sleep(0.25)
            raise AssertionError(f"timed out: {states[-12:]}\n{runtime.log_tail(30)}")

        watch(lambda s: s[3] == "open", 20)
        opened_after = states[-1][0]
        watch(lambda s: s[0] >= opened_after + 8, 12)  # past a cooldown (5 s) and a failed probe
        while_refused = states[:]
        _set_topic_config(kafka_admin, refused, "max.message.bytes", None)
        restored_at = time.monotonic()
        watch(lambda s: s[3] == "closed", 45)
        closed_after = time.monotonic() - restored_at
        feeder.join(60)
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 90)
        assert runtime.alive(), runtime.log_tail()
        assert runtime.terminate() == 0, runtime.log_tail()
    print(f"\nbreaker open {opened_after:.1f}s after the topic refused; closed {closed_after:.1f}s after "
          f"it accepted again")
    log = (tmp_path / "runtime.log").read_text()
    assert log.count('"msg":"runtime started"') == 1, "restarted"
    after_open = [s for s in while_refused if s[0] >= opened_after]
    assert {s[3] for s in after_open} <= {"open", "half_open"}, after_open  # never closed while refused
    assert all(s[1] == 200 for s in after_open), after_open  # alive: no restart into the same refusal
    assert any(s[2] == 503 for s in after_open), after_open  # not ready while open
    assert log.count('"msg":"delivery failed"') < 20, "one line per refused record"
    why = [json.loads(line) for line in log.splitlines() if "the broker refuses records" in line]
    assert why and why[0]["topic_max_message_bytes"] == {refused: 200}, why  # says which topic and why
    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(kafka_bootstrap, topology))
    assert rs.compare(expected, rs.actual_outputs(kafka_bootstrap, topology)) == []
