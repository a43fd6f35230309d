"""The broker restarts while the runtime processes a live stream: the runtime recovers without
operator action (client retries, retriable errors retried within a deadline, aborted transactions
rewound; a loop wedged inside a transactional call exits non-zero and is restarted, as Kubernetes
would) and the committed outputs equal an uninterrupted run's.

Uses a private single-node broker (the test bed's Kafka module in a temporary directory) so that
restarting it does not disturb the shared one.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from smc_runtime.config import parse_config
from tests.integration import runtime_support as rs
from tests.testbed import common
from tests.testbed import kafka as testbed_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class PrivateBroker:
    def __init__(self, state: dict[str, object]) -> None:
        self.bootstrap = str(state["bootstrap"])
        self.port = int(str(state["port"]))

    def restart(self, down_seconds: float) -> None:
        """Stop the broker (SIGTERM, like a rolling restart), wait, start it on the same data and port."""
        service = common.read_service(testbed_kafka.NAME)
        assert service is not None
        argv = Path(f"/proc/{service.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        assert common.stop_service(testbed_kafka.NAME, grace=30)
        time.sleep(down_seconds)
        common.spawn(testbed_kafka.NAME, [a.decode() for a in argv], common.logs_dir() / "kafka.restart.log")
        common.wait_for("restarted kafka", lambda: testbed_kafka.probe(self.port, timeout=2.0), 90)


@pytest.fixture
def private_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateBroker]:
    monkeypatch.setenv("SMC_TESTBED_DIR", str(tmp_path / "bed"))
    state = testbed_kafka.start()
    try:
        yield PrivateBroker(state)
    finally:
        testbed_kafka.stop()


@pytest.mark.xfail(
    strict=False,
    reason="seen failing 2026-12-06 (2 of 6 runs): after the broker restart every consumer.committed() in "
    "on_assign timed out (OffsetFetch waiting on pending transactional offsets); a consumer _TIMED_OUT "
    "is not "
    "retried, so the runtime exits 4 and restarts into the same timeout. Open in issue 14",
)
def test_runtime_survives_a_broker_restart(private_broker: PrivateBroker, tmp_path: Path) -> None:
    bootstrap = private_broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def make_topic(partitions: int = 1, config: object = None, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
        return name

    topology = rs.make_topology(make_topic)
    doc = rs.write_config(tmp_path / "config.yaml", bootstrap, {"main": topology.processor()},
                          processor_id="restart-0")
    log = tmp_path / "runtime.log"
    # Like a Kubernetes restartPolicy: a runtime that exits non-zero is started again, nothing else.
    env = {"SMC_WEDGED_AFTER_S": "20"}
    runtime = rs.RuntimeProcess(tmp_path / "config.yaml", log, env).start()
    restarts: list[int] = []

    def supervise() -> bool:
        nonlocal runtime
        if not runtime.alive():
            assert runtime.proc is not None
            restarts.append(runtime.proc.returncode)
            assert runtime.proc.returncode != 0
            runtime = rs.RuntimeProcess(tmp_path / "config.yaml", log, env).start()
        return rs.group_lag(bootstrap, topology) == 0

    try:
        runtime.wait_ready()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            inputs = rs.market_data(40_000, symbols=6, seed=9)
            fed = pool.submit(rs.feed, bootstrap, topology, inputs, 4_000.0)
            time.sleep(3)
            assert not fed.done()
            private_broker.restart(down_seconds=3)
            assert fed.result() == 40_000
        try:
            rs.wait_until("input committed", supervise, 180, 1.0)
        except AssertionError:
            runtime.dump_stacks()
            raise AssertionError(runtime.log_tail(80)) from None
        rs.wait_until("ready again", runtime.ready, 60)
        assert runtime.terminate() == 0, runtime.log_tail()
    finally:
        runtime.kill()
    assert len(restarts) <= 2, f"restarted {len(restarts)} times (exit codes {restarts})"

    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(bootstrap, topology))
    assert rs.compare(expected, rs.actual_outputs(bootstrap, topology)) == []
