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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from smc_runtime.config import parse_config
from smc_runtime.pipeline import Pipeline
from smc_runtime.service import status as status_module
from smc_runtime.service.app import RuntimeApp
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

OUTAGE_S = 80.0  # longer than RETRY_DEADLINE_S (60 s) plus the abort flush: the old loop exited here
STUCK_AFTER_S = 30.0  # the runtime's wedge watchdog (WEDGED_AFTER_S), as this test applies it in-process


class OutageInSendOffsets(Producer):
    """Once ``armed``, the next send_offsets_to_transaction first stops the broker (and schedules
    its return after OUTAGE_S): the outage starts with a transaction in flight, the case where
    librdkafka blocks inside the call until the broker is back."""

    armed = threading.Event()
    broker: rs.PrivateBroker | None = None
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


@dataclass
class Observed:
    """What one runtime showed during and after the shared outage; the tests assert on it."""

    problems: list[str] = field(default_factory=list)  # oracle versus read_committed outputs
    # subprocess runtime: (/health code, /ready code, state, alive) once a second during the outage
    probes: list[tuple[int, int, str, bool]] = field(default_factory=list)
    restarts: list[int] = field(default_factory=list)  # exit codes of runs restarted after the outage
    exit_code: int | None = None  # of its final, SIGTERMed run
    log: str = ""
    # in-process runtime: (/health code, /ready code, stalled seconds) once a second during the outage
    seen: list[tuple[int, int, float]] = field(default_factory=list)
    exit_before_restart: int | None = None  # None: it had not exited when it was replaced
    last_error: str | None = None


@dataclass
class SharedOutage:
    process: Observed  # ``smc-runtime run`` as a subprocess, the outage hits it mid-stream
    in_call: Observed  # a RuntimeApp whose send_offsets_to_transaction the outage starts inside
    timeline: list[str] = field(default_factory=list)  # seconds since start of each step, printed


def _sample_every_second(stop: threading.Event, sample: Any) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            sample()
            stop.wait(1.0)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def shared_outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedOutage]:
    """One broker outage of OUTAGE_S, observed by two runtimes on a private broker at once: a
    subprocess mid-stream (a live feed at 300 records/s) and an in-process app whose
    send_offsets_to_transaction the outage starts inside. Both recover with a restartPolicy's help
    (at most one restart, after the broker is back) and their outputs are compared to the oracle."""
    tmp = tmp_path_factory.mktemp("outage")
    with rs.private_broker(tmp / "bed") as broker:
        outage = _run_shared_outage(broker, tmp)
    yield outage  # everything is observed and compared: the tests only assert


def _run_shared_outage(broker: rs.PrivateBroker, tmp: Path) -> SharedOutage:
    bootstrap = broker.bootstrap
    process, in_call = Observed(), Observed()
    outage = SharedOutage(process, in_call)
    started = time.monotonic()

    def step(what: str) -> None:
        outage.timeline.append(f"{time.monotonic() - started:6.1f}s {what}")

    topo_p, topo_c = rs.make_topology(broker.make_topic), rs.make_topology(broker.make_topic)
    doc_p = rs.write_config(tmp / "process.yaml", bootstrap, {"main": topo_p.processor()},
                            processor_id="outage-0")
    doc_c = rs.write_config(tmp / "in-call.yaml", bootstrap, {"main": topo_c.processor()},
                            processor_id="outage-1")
    log = tmp / "runtime.log"
    runtime = rs.RuntimeProcess(tmp / "process.yaml", log).start()
    OutageInSendOffsets.broker = broker
    OutageInSendOffsets.armed.clear()
    OutageInSendOffsets.restarted.clear()
    app = RuntimeApp(parse_config(doc_c), Pipeline, bind_address="127.0.0.1", wedged_after_s=None,
                     runner_kwargs={"producer_factory": OutageInSendOffsets})
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    status = app.statuses["main"]
    restarted_app: RuntimeApp | None = None
    inputs_c = rs.market_data(9_000, symbols=4, seed=17)

    def probe_process() -> None:
        alive = runtime.alive()
        try:
            health_code, health = rs.http_json(runtime.url("/health"), timeout=2.0)
            ready_code, _ = rs.http_json(runtime.url("/ready"), timeout=2.0)
            process.probes.append((health_code, ready_code, str(health["processors"]["main"]["state"]),
                                   alive))
        except OSError as exc:
            process.probes.append((0, 0, f"no answer: {exc}", alive))

    def probe_in_call() -> None:
        now = time.monotonic()
        in_call.seen.append((app.report.health(now, time.time())[0], app.report.ready()[0],
                             status.stalled_for(now)))

    process_committed: list[bool] = []  # once: the timeline's step
    in_call_committed: list[bool] = []

    def supervise_process() -> bool:
        """A restartPolicy, after the outage: a runtime that exited is started again."""
        nonlocal runtime
        if not runtime.alive():
            assert runtime.proc is not None
            process.restarts.append(runtime.proc.returncode)
            step(f"subprocess exited {runtime.proc.returncode}: started again")
            runtime = rs.RuntimeProcess(tmp / "process.yaml", log).start()
        done = rs.group_lag(bootstrap, topo_p) == 0
        if done and not process_committed:
            process_committed.append(True)
            step("subprocess: input committed")
        return done

    def supervise_in_call() -> bool:
        """What the watchdog and the orchestrator do for a stuck in-process loop: a fresh instance
        (its init_transactions fences the stuck producer) finishes the input."""
        nonlocal restarted_app
        if rs.group_lag(bootstrap, topo_c) == 0:
            if not in_call_committed:
                in_call_committed.append(True)
                step("in-process: input committed")
            return True
        stuck = not thread.is_alive() or status.stalled_for(time.monotonic()) > STUCK_AFTER_S
        if stuck and restarted_app is None:
            in_call.exit_before_restart = app.exit_codes.get("main")
            in_call.last_error = status.last_error
            redo = rs.write_config(tmp / "in-call-2.yaml", bootstrap, {"main": topo_c.processor()},
                                   processor_id="outage-1")
            step(f"in-process app stuck (exit code {in_call.exit_before_restart}): a fresh instance")
            restarted_app = RuntimeApp(parse_config(redo), Pipeline, bind_address="127.0.0.1",
                                       wedged_after_s=None)
            threading.Thread(target=restarted_app.run, daemon=True).start()
        return False

    try:
        runtime.wait_ready()
        rs.wait_until("in-process app ready", lambda: app.report.ready()[0] == 200, 60)
        rs.feed(bootstrap, topo_c, inputs_c[:3_000])
        rs.wait_until("first input committed", lambda: rs.group_lag(bootstrap, topo_c) == 0, 60)
        step("both ready, first input committed")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # ~100 s of input at 300/s: records arrive before, during (buffered) and after the outage.
            fed = pool.submit(rs.feed, bootstrap, topo_p, rs.market_data(30_000, symbols=6, seed=5), 300.0)
            rs.wait_until("the subprocess processes the live feed", lambda: runtime.http_processed() > 0, 30)
            OutageInSendOffsets.armed.set()
            rs.feed(bootstrap, topo_c, inputs_c[3_000:6_000])
            rs.wait_until("outage started", lambda: not OutageInSendOffsets.armed.is_set(), 30)
            step("broker stopped inside send_offsets_to_transaction")
            stop = threading.Event()
            samplers = [_sample_every_second(stop, probe_process), _sample_every_second(stop, probe_in_call)]
            OutageInSendOffsets.restarted.wait(OUTAGE_S + 120)
            stop.set()
            for sampler in samplers:
                sampler.join(10)
            assert OutageInSendOffsets.restarted.is_set(), "the broker did not come back"
            step("broker back")
            rs.feed(bootstrap, topo_c, inputs_c[6_000:])
            assert fed.result() == 30_000
        def both_committed() -> bool:
            process_done = supervise_process()  # both supervised on every round: they recover at once
            return supervise_in_call() and process_done

        rs.wait_until("both inputs committed", both_committed, 240, 1.0)
        step(f"both inputs committed (subprocess exit codes {process.restarts}, in-process app "
             f"{'replaced' if restarted_app else 'recovered by itself'})")
        rs.wait_until("subprocess ready again", runtime.ready, 60)
        process.exit_code = runtime.terminate()
        step("subprocess ready again and stopped")
    finally:
        runtime.kill()
        app.stop()
        if restarted_app is not None:
            restarted_app.stop()
        thread.join(30)
    process.log = log.read_text(errors="replace")
    for observed, doc, topology in ((process, doc_p, topo_p), (in_call, doc_c, topo_c)):
        settings = parse_config(doc).stream_processors["main"]
        expected = rs.reference_outputs(settings, rs.read_inputs(bootstrap, topology))
        observed.problems = rs.compare(expected, rs.actual_outputs(bootstrap, topology))
    step("outputs compared with the oracle")
    print("\nshared outage:\n" + "\n".join(outage.timeline), flush=True)
    return outage


def test_broker_outage_keeps_liveness_and_recovers(shared_outage: SharedOutage) -> None:
    observed = shared_outage.process
    tail = "\n".join(observed.log.splitlines()[-60:])
    assert observed.exit_code == 0, tail
    # At most one restart, after the broker was back, for a client the outage left stuck.
    assert len(observed.restarts) <= 1 and set(observed.restarts) <= {3, 5}, observed.restarts
    # It never exited during the outage; liveness held throughout, readiness went false.
    during = observed.probes
    assert during and all(alive for *_, alive in during), f"runtime exited during the outage:\n{tail}"
    assert all(health == 200 for health, _, _, _ in during), during
    assert any(ready == 503 for _, ready, _, _ in during), during
    assert '"broker not answering: an outage, not a wedge (liveness holds, readiness false)"' in observed.log
    assert '"broker answers again"' in observed.log
    assert observed.problems == []


def test_outage_inside_a_transactional_call_is_waiting_not_wedged(shared_outage: SharedOutage) -> None:
    observed = shared_outage.in_call
    assert observed.exit_before_restart in (None, 3), observed.last_error
    seen = observed.seen
    assert len(seen) >= OUTAGE_S - 10
    assert all(health == 200 for health, _, _ in seen), seen  # liveness held
    assert any(ready == 503 for _, ready, _ in seen), seen  # readiness did not
    # The watchdog (WEDGED_AFTER_S = 30 s) would not have fired: an outage counts as progress.
    assert max(stalled for _, _, stalled in seen) < 15, seen
    assert observed.problems == []


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
