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
from collections.abc import Iterator
from pathlib import Path

import pytest

from smc_runtime.config import parse_config
from tests.integration import runtime_support as rs

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[rs.PrivateBroker]:
    with rs.private_broker(tmp_path / "bed") as broker:
        yield broker


def test_runtime_survives_a_broker_restart(private_broker: rs.PrivateBroker, tmp_path: Path) -> None:
    bootstrap = private_broker.bootstrap
    topology = rs.make_topology(private_broker.make_topic)
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
            # SIGTERM, like a rolling restart; down 3 s; then the same data and port
            private_broker.stop()
            time.sleep(3)
            private_broker.start()
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
