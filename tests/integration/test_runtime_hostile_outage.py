"""Liveness versus outages (issue 12, item 8).

A broker that is down for longer than every retry deadline must not make the runtime exit or fail
its liveness probe: a restarted pod would only start into the same outage (and crash-loop). During
the outage the loop keeps retrying (readiness false, liveness true), whether it was idle or blocked
inside a transactional call. Once the broker is back the runtime resumes; a librdkafka client left
stuck by the outage (a wedged send_offsets_to_transaction, an abort that never reaches the new
coordinator) is detected then (wedge watchdog: exit 5; abort: exit 3) and a restart, now into a
working broker, finishes with exact outputs. A loop truly wedged with the broker up fails liveness.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from smc_runtime.config import parse_config
from smc_runtime.pipeline import Pipeline
from smc_runtime.service import status as status_module
from smc_runtime.service.app import RuntimeApp
from tests.integration import runtime_support as rs
from tests.testbed import common
from tests.testbed import kafka as testbed_kafka
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

OUTAGE_S = 80.0  # longer than RETRY_DEADLINE_S (60 s) plus the abort flush: the old loop exited here


class StoppableBroker:
    """A private single-node broker (the test bed's Kafka module in a temporary directory) that
    can be stopped and started again on the same data and port."""

    def __init__(self, state: dict[str, object]) -> None:
        self.bootstrap = str(state["bootstrap"])
        self.port = int(str(state["port"]))
        self.argv: list[str] = []

    def stop(self) -> None:
        service = common.read_service(testbed_kafka.NAME)
        assert service is not None
        raw = Path(f"/proc/{service.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        self.argv = [a.decode() for a in raw]
        assert common.stop_service(testbed_kafka.NAME, grace=30)

    def start(self) -> None:
        common.spawn(testbed_kafka.NAME, self.argv, common.logs_dir() / "kafka.restart.log")
        common.wait_for("restarted kafka", lambda: testbed_kafka.probe(self.port, timeout=2.0), 90)


@pytest.fixture
def stoppable_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StoppableBroker]:
    monkeypatch.setenv("SMC_TESTBED_DIR", str(tmp_path / "bed"))
    state = testbed_kafka.start()
    try:
        yield StoppableBroker(state)
    finally:
        testbed_kafka.stop()


def test_broker_outage_keeps_liveness_and_recovers(stoppable_broker: StoppableBroker,
                                                   tmp_path: Path) -> None:
    bootstrap = stoppable_broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def make_topic(partitions: int = 1, config: object = None, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
        return name

    topology = rs.make_topology(make_topic)
    doc = rs.write_config(tmp_path / "config.yaml", bootstrap, {"main": topology.processor()},
                          processor_id="outage-0")
    log = tmp_path / "runtime.log"
    runtime = rs.RuntimeProcess(tmp_path / "config.yaml", log).start()
    probes: list[tuple[float, int, int, str]] = []  # (t, /health code, /ready code, state)
    restarts: list[int] = []

    def supervise() -> bool:
        """A restartPolicy, after the outage: a runtime that exited is started again."""
        nonlocal runtime
        if not runtime.alive():
            assert runtime.proc is not None
            restarts.append(runtime.proc.returncode)
            runtime = rs.RuntimeProcess(tmp_path / "config.yaml", log).start()
        return rs.group_lag(bootstrap, topology) == 0

    def probe_once() -> None:
        try:
            health_code, health = rs.http_json(runtime.url("/health"), timeout=2.0)
            ready_code, _ = rs.http_json(runtime.url("/ready"), timeout=2.0)
            probes.append((time.monotonic(), health_code, ready_code,
                           str(health["processors"]["main"]["state"])))
        except OSError as exc:
            probes.append((time.monotonic(), 0, 0, f"no answer: {exc}"))

    try:
        runtime.wait_ready()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # ~100 s of input at 300/s: records arrive before, during (buffered) and after the outage.
            inputs = rs.market_data(30_000, symbols=6, seed=5)
            fed = pool.submit(rs.feed, bootstrap, topology, inputs, 300.0)
            time.sleep(5)
            assert runtime.http_processed() > 0
            stoppable_broker.stop()
            down_at = time.monotonic()
            while time.monotonic() - down_at < OUTAGE_S:
                probe_once()
                assert runtime.alive(), f"runtime exited during the outage:\n{runtime.log_tail(60)}"
                time.sleep(1.0)
            during = list(probes)
            stoppable_broker.start()
            assert fed.result() == 30_000
        rs.wait_until("input committed", supervise, 240, 1.0)
        rs.wait_until("ready again", runtime.ready, 60)
        assert runtime.terminate() == 0, runtime.log_tail()
    finally:
        runtime.kill()
    # At most one restart, after the broker was back, for a client the outage left stuck.
    assert len(restarts) <= 1 and set(restarts) <= {3, 5}, restarts

    # Liveness held for the whole outage; readiness went false while the broker did not answer.
    assert during and all(code == 200 for _, code, _, _ in during), during
    assert any(ready == 503 for _, _, ready, _ in during), during
    text = log.read_text(errors="replace")
    assert '"broker not answering: an outage, not a wedge (liveness holds, readiness false)"' in text
    assert '"broker answers again"' in text
    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(bootstrap, topology))
    assert rs.compare(expected, rs.actual_outputs(bootstrap, topology)) == []


class OutageInSendOffsets(Producer):
    """Once ``armed``, the next send_offsets_to_transaction first stops the broker (and schedules
    its return after OUTAGE_S): the outage starts with a transaction in flight, the case where
    librdkafka blocks inside the call until the broker is back."""

    armed = threading.Event()
    broker: StoppableBroker | None = None
    restarted = threading.Event()

    def send_offsets_to_transaction(self, *args: Any) -> None:
        if self.armed.is_set():
            self.armed.clear()
            broker = self.broker
            assert broker is not None
            broker.stop()

            def back() -> None:
                time.sleep(OUTAGE_S)
                broker.start()
                self.restarted.set()

            threading.Thread(target=back, daemon=True).start()
        super().send_offsets_to_transaction(*args)


def test_outage_inside_a_transactional_call_is_waiting_not_wedged(stoppable_broker: StoppableBroker,
                                                                  tmp_path: Path) -> None:
    bootstrap = stoppable_broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def make_topic(partitions: int = 1, config: object = None, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
        return name

    topology = rs.make_topology(make_topic)
    doc = rs.write_config(tmp_path / "config.yaml", bootstrap, {"main": topology.processor()},
                          processor_id="outage-1")
    OutageInSendOffsets.broker = stoppable_broker
    OutageInSendOffsets.armed.clear()
    OutageInSendOffsets.restarted.clear()
    app = RuntimeApp(parse_config(doc), Pipeline, bind_address="127.0.0.1", wedged_after_s=None,
                     runner_kwargs={"producer_factory": OutageInSendOffsets})
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    status = app.statuses["main"]
    restarted_app: RuntimeApp | None = None
    inputs = rs.market_data(9_000, symbols=4, seed=17)
    seen: list[tuple[int, int, float]] = []  # (/health code, /ready code, stalled seconds)
    try:
        rs.wait_until("ready", lambda: app.report.ready()[0] == 200, 60)
        rs.feed(bootstrap, topology, inputs[:3_000])
        rs.wait_until("first input committed", lambda: rs.group_lag(bootstrap, topology) == 0, 60)
        OutageInSendOffsets.armed.set()
        rs.feed(bootstrap, topology, inputs[3_000:6_000])
        rs.wait_until("outage started", lambda: not OutageInSendOffsets.armed.is_set(), 30)
        while not OutageInSendOffsets.restarted.is_set():
            now = time.monotonic()
            seen.append((app.report.health(now, time.time())[0], app.report.ready()[0],
                         status.stalled_for(now)))
            time.sleep(1.0)
        rs.feed(bootstrap, topology, inputs[6_000:])

        def finished_or_stuck() -> bool:
            return (rs.group_lag(bootstrap, topology) == 0 or not thread.is_alive()
                    or status.stalled_for(time.monotonic()) > 30)

        rs.wait_until("input committed, the processor exited or stuck", finished_or_stuck, 180, 1.0)
        if rs.group_lag(bootstrap, topology) != 0:
            # What the watchdog and the orchestrator do: a fresh instance (its init_transactions
            # fences the stuck producer) finishes the input.
            assert app.exit_codes.get("main") in (None, 3), status.last_error
            redo = rs.write_config(tmp_path / "config2.yaml", bootstrap, {"main": topology.processor()},
                                   processor_id="outage-1")
            restarted_app = RuntimeApp(parse_config(redo), Pipeline, bind_address="127.0.0.1",
                                       wedged_after_s=None)
            threading.Thread(target=restarted_app.run, daemon=True).start()
            rs.wait_until("input committed after the restart",
                          lambda: rs.group_lag(bootstrap, topology) == 0, 180, 1.0)
    finally:
        app.stop()
        if restarted_app is not None:
            restarted_app.stop()
        thread.join(30)
    assert len(seen) >= OUTAGE_S - 10
    assert all(health == 200 for health, _, _ in seen), seen  # liveness held
    assert any(ready == 503 for _, ready, _ in seen), seen  # readiness did not
    # The watchdog (WEDGED_AFTER_S = 30 s) would not have fired: an outage counts as progress.
    assert max(stalled for _, _, stalled in seen) < 15, seen
    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(bootstrap, topology))
    assert rs.compare(expected, rs.actual_outputs(bootstrap, topology)) == []


class BlockingCommit(Producer):
    """commit_transaction blocks for good once ``block`` is set: the wedge librdkafka #5456 causes."""

    block = threading.Event()
    release = threading.Event()

    def commit_transaction(self, *args: Any) -> None:
        if self.block.is_set():
            self.release.wait(120)
        super().commit_transaction(*args)


def test_wedged_loop_fails_liveness(kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_module, "STALL_AFTER_S", 3.0)
    topology = rs.make_topology(make_topic)
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {"main": topology.processor()},
                          processor_id="wedge-0")
    BlockingCommit.block.clear()
    BlockingCommit.release.clear()
    app = RuntimeApp(parse_config(doc), Pipeline, bind_address="127.0.0.1", wedged_after_s=None,
                     runner_kwargs={"producer_factory": BlockingCommit})
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    try:
        rs.wait_until("ready", lambda: app.report.ready()[0] == 200, 60)
        assert app.report.health(time.monotonic(), time.time())[0] == 200
        BlockingCommit.block.set()
        rs.feed(kafka_bootstrap, topology, rs.market_data(500, symbols=2, seed=3))
        rs.wait_until("liveness fails",
                      lambda: app.report.health(time.monotonic(), time.time())[0] == 503, 60)
        doc_health = app.report.health(time.monotonic(), time.time())[1]
        assert doc_health["processors"]["main"]["checks"]["loop_alive"] is False
    finally:
        BlockingCommit.release.set()
        app.stop()
        thread.join(60)
