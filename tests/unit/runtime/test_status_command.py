"""``smc-runtime status`` against the real health server (in-process, on an ephemeral port)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from smc_runtime import cli
from smc_runtime.service.health import HealthReport, HealthServer
from smc_runtime.service.status import ProcessorState, ProcessorStatus


@pytest.fixture
def service() -> Iterator[tuple[ProcessorStatus, int]]:
    status = ProcessorStatus(name="main", consumer_group="g", processing_mode="exactly_once",
                             input_topics=["in"], output_topics={"enriched_trades": "out"},
                             commit_interval_ms=100, batch_size=1000)
    server = HealthServer(HealthReport({"main": status}, {"processor_id": "p-0"}, started_at=0.0), 0,
                          host="127.0.0.1")
    server.start()
    try:
        yield status, server.port
    finally:
        server.stop()


def test_status_prints_the_document_and_exits_by_health(
    service: tuple[ProcessorStatus, int], capsys: pytest.CaptureFixture[str]
) -> None:
    status, port = service
    status.set_state(ProcessorState.RUNNING)
    status.assigned.add(("in", 0))
    status.beat(now=status.heartbeat)
    assert cli.main(["status", "--port", str(port)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"] == {"processor_id": "p-0"}
    assert doc["processors"]["main"]["assignment"] == ["in[0]"]

    assert cli.main(["status", "ready", "--port", str(port), "--compact"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ready": True, "processors": {"main": True}}

    status.set_state(ProcessorState.FAILED, "fenced")
    assert cli.main(["status", "health", "--port", str(port)]) == 1  # 503: printed, exit 1
    assert json.loads(capsys.readouterr().out)["healthy"] is False


def test_status_reads_the_port_from_the_environment_and_reports_no_answer(
    service: tuple[ProcessorStatus, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, port = service
    monkeypatch.setenv("HEALTH_CHECK_PORT", str(port))
    assert cli.main(["status", "ready"]) == 1  # nothing assigned yet: 503
    assert json.loads(capsys.readouterr().out)["ready"] is False
    monkeypatch.setenv("HEALTH_CHECK_PORT", "1")  # nothing listens there
    assert cli.main(["status"]) == 2
    assert "no answer from 127.0.0.1:1/status" in capsys.readouterr().err
