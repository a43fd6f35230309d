"""Health documents, structured logs, the run command's config errors and the demo's quantiles."""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path

import pytest

from smc_runtime import logs, run_command
from smc_runtime.config import ENV_OVERRIDE_VARIABLES
from smc_runtime.demo import quantile
from smc_runtime.service.health import HealthReport
from smc_runtime.service.status import STALL_AFTER_S, ProcessorState, ProcessorStatus


def _status(name: str = "main") -> ProcessorStatus:
    return ProcessorStatus(name=name, consumer_group="g", processing_mode="exactly_once", input_topics=["in"],
                           output_topics={"enriched_trades": "out"}, commit_interval_ms=100, batch_size=1000)


def test_health_has_the_seed_shape_and_turns_503_when_a_loop_stalls() -> None:
    status = _status()
    status.set_state(ProcessorState.RUNNING)
    status.assigned.add(("in", 0))
    status.beat(now=100.0)
    status.record_batch(processed=10, failed=2, outputs=8, per_message_ms=0.5)
    status.beat(now=101.0)
    report = HealthReport({"main": status}, {"processor_id": "p"}, started_at=90.0)
    code, doc = report.health(now=101.0, wall=0.0)
    assert code == 200 and doc["healthy"] is True and doc["uptime_seconds"] == 11.0
    metrics = doc["processors"]["main"]["metrics"]
    assert metrics == {"messages_processed": 10, "messages_failed": 2, "processing_latency_ms": 0.1,
                       "throughput_per_second": 10.0}
    assert doc["timestamp"] == "1970-01-01T00:00:00Z"
    code, doc = report.health(now=101.0 + STALL_AFTER_S + 1, wall=0.0)
    assert code == 503 and doc["processors"]["main"]["checks"]["loop_alive"] is False


def test_ready_needs_assignment_and_finished_restore() -> None:
    status = _status()
    report = HealthReport({"main": status}, {}, started_at=0.0)
    status.set_state(ProcessorState.RUNNING)
    assert report.ready()[0] == 503  # nothing assigned yet
    status.assigned.add(("in", 0))
    status.restoring.add(("in", 0))
    assert report.ready()[0] == 503  # still restoring
    status.restoring.clear()
    assert report.ready() == (200, {"ready": True, "processors": {"main": True}})


def test_breaker_open_is_live_but_not_ready_and_failed_is_unhealthy() -> None:
    # an open breaker means the broker is out: a restart would only restart into the same outage
    status = _status()
    status.set_state(ProcessorState.BREAKER_OPEN)
    assert status.is_healthy(now=status.heartbeat)
    assert not status.is_ready()
    status.set_state(ProcessorState.FAILED, "fenced")
    report = HealthReport({"main": status}, {}, started_at=0.0)
    assert report.status(now=status.heartbeat, wall=0.0)[1]["processors"]["main"]["last_error"] == "fenced"


def test_json_logs_carry_context_and_redact_secrets() -> None:
    stream = io.StringIO()
    logs.configure("INFO", stream=stream)
    log = logs.get_logger("smc_runtime.test", processor="main")
    log.info("committed", partition=3, sasl_password="hunter2", conf={"sasl.password": "x", "acks": "all"})
    log.debug("hidden")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["msg"] == "committed" and doc["processor"] == "main" and doc["partition"] == 3
    assert doc["sasl_password"] == logs.REDACTED
    assert doc["conf"] == {"sasl.password": logs.REDACTED, "acks": "all"}
    assert doc["level"] == "INFO"
    logging.getLogger("smc_runtime").handlers.clear()


def test_run_with_an_invalid_config_lists_every_problem_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_OVERRIDE_VARIABLES:  # the file alone is under test, not the test bed's env
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "bad.yaml"
    config.write_text("kafka: {bootstrap_servers: 'nohost'}\nstream_processors:\n"
                      "  main: {consumer_group: g, input_topics: [], batch_size: 0}\n")
    args = argparse.Namespace(config=str(config), bind_address="127.0.0.1",
                              pipeline=run_command.DEFAULT_PIPELINE)
    assert run_command.main(args) == run_command.EXIT_CONFIG
    err = capsys.readouterr().err
    for path in ("kafka.bootstrap_servers", "stream_processors.main.input_topics",
                 "stream_processors.main.batch_size"):
        assert path in err


def test_quantiles_from_histogram_deltas_interpolate_within_buckets() -> None:
    before = {0.1: 0.0, 0.2: 0.0, float("inf"): 0.0}
    after = {0.1: 50.0, 0.2: 100.0, float("inf"): 100.0}
    assert quantile(before, after, 0.5) == pytest.approx(0.1)
    assert quantile(before, after, 0.75) == pytest.approx(0.15)
    assert quantile(after, after, 0.5) is None
