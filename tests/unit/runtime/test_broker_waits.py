"""``BrokerWaits.until_broker_answers``: a call repeated through an outage, and the log that tells
an operator when the outage ended, also when the broker's first answer is an error (the exit for a
restart follows it, issue 12 item 8)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from smc_runtime.config import KafkaSettings
from smc_runtime.kafka import startup
from smc_runtime.kafka.breaker import CircuitBreaker
from smc_runtime.kafka.errors import AbortableKafkaError, FatalKafkaError
from smc_runtime.kafka.startup import BrokerWaits
from smc_runtime.kafka.telemetry import Telemetry
from smc_runtime.logs import get_logger
from smc_runtime.service.app import BrokerProbe
from smc_runtime.service.metrics import RuntimeMetrics
from smc_runtime.service.status import ProcessorState, ProcessorStatus


def _waits() -> BrokerWaits:
    status = ProcessorStatus("p", "g", "exactly_once", ["in"], {}, 100, 10_000)
    return BrokerWaits(Telemetry("p", RuntimeMetrics(), status), get_logger("test.waits"),
                       CircuitBreaker(), threading.Event())


def _call(outage_calls: int, then: KafkaError | None) -> Callable[[], None]:
    """Times out (retriable) ``outage_calls`` times, then raises ``then`` (None: succeeds)."""
    calls = [0]

    def op() -> None:
        calls[0] += 1
        if calls[0] <= outage_calls:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "timed out", retriable=True))
        if then is not None:
            raise KafkaException(then)
    return op


@pytest.fixture(autouse=True)
def short_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "OUTAGE_RETRY_S", 0.02)


def _answers(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("broker answers again")]


def test_success_after_an_outage_logs_its_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "test.waits")
    waits = _waits()
    assert waits.until_broker_answers(_call(40, None), "abort_transaction", ProcessorState.BREAKER_OPEN)
    assert any(r.getMessage().startswith("broker unreachable") for r in caplog.records)
    assert len(_answers(caplog)) == 1
    assert waits.status.state is ProcessorState.BREAKER_OPEN  # the outage was shown meanwhile


@pytest.mark.parametrize(("error", "raised"), [
    (KafkaError(KafkaError.INVALID_TXN_STATE, "invalid state", fatal=True), FatalKafkaError),
    (KafkaError(KafkaError._STATE, "abortable", txn_requires_abort=True), AbortableKafkaError),
])
def test_an_error_answer_after_an_outage_also_ends_it(caplog: pytest.LogCaptureFixture, error: KafkaError,
                                                       raised: type[Exception]) -> None:
    caplog.set_level(logging.INFO, "test.waits")
    with pytest.raises(raised):
        _waits().until_broker_answers(_call(40, error), "abort_transaction", ProcessorState.BREAKER_OPEN)
    assert len(_answers(caplog)) == 1


def test_no_outage_no_outage_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "test.waits")
    fatal = KafkaError(KafkaError.INVALID_TXN_STATE, "invalid state", fatal=True)
    with pytest.raises(FatalKafkaError):
        _waits().until_broker_answers(_call(0, fatal), "abort_transaction", ProcessorState.BREAKER_OPEN)
    assert _answers(caplog) == []
    assert _waits().until_broker_answers(_call(0, None), "init_transactions", ProcessorState.STARTING)


class ScriptedProbe(BrokerProbe):
    """A BrokerProbe whose metadata request answers as ``self.answers`` says (no client)."""

    def __init__(self, statuses: dict[str, ProcessorStatus]) -> None:
        super().__init__(KafkaSettings(), "test.probe", statuses, after_s=0.0, interval_s=0.01)
        self.answers = False

    def probe(self) -> bool:
        return self.answers


def _stalled_status() -> ProcessorStatus:
    status = ProcessorStatus("p", "g", "exactly_once", ["in"], {}, 100, 10_000)
    status.heartbeat = time.monotonic() - 60  # a loop blocked in a client call
    return status


def test_probe_marks_an_outage_and_its_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "smc_runtime.service.app")
    status = _stalled_status()
    probe = ScriptedProbe({"p": status})
    probe.start()
    try:
        _wait_for(lambda: status.broker_unreachable)
        assert status.stalled_for(time.monotonic()) < 5  # waiting on the outage, not wedged
        probe.answers = True
        _wait_for(lambda: not status.broker_unreachable)
    finally:
        probe.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("broker answers again") == 1
    assert any(m.startswith("broker not answering") for m in messages)


@pytest.mark.parametrize("answers_at_stop", [True, False])
def test_probe_stopped_during_an_outage_closes_it_in_the_log(caplog: pytest.LogCaptureFixture,
                                                             answers_at_stop: bool) -> None:
    """The loop got an error from the returning broker and exited before the next probe round."""
    caplog.set_level(logging.INFO, "smc_runtime.service.app")
    status = _stalled_status()
    probe = ScriptedProbe({"p": status})
    probe.interval_s = 60.0  # no round between the outage and the stop
    probe._reachable = False  # what the rounds before saw
    probe.start()
    probe.answers = answers_at_stop
    probe.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert ("broker answers again" in messages) is answers_at_stop
    assert ("stopping while the broker does not answer" in messages) is not answers_at_stop


def _wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
