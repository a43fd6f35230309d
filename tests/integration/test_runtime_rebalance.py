"""Two instances in one consumer group: partitions move when the second joins, move back when it
leaves (SIGTERM: commit, leave the group), and move again when it rejoins. State follows the
partitions through the changelog, so the committed outputs equal an uninterrupted run's.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from smc_runtime.config import parse_config
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _assignment(runtime: rs.RuntimeProcess) -> set[str]:
    try:
        code, doc = rs.http_json(runtime.url("/status"))
    except OSError:
        return set()
    return set(doc["processors"]["main"]["assignment"]) if code == 200 else set()


def test_partitions_move_between_instances_and_outputs_stay_exact(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path
) -> None:
    topology = rs.make_topology(make_topic, input_partitions=3)
    processor = {"main": topology.processor()}
    doc = rs.write_config(tmp_path / "a.yaml", kafka_bootstrap, processor, processor_id="inst-a")
    rs.write_config(tmp_path / "b.yaml", kafka_bootstrap, processor, processor_id="inst-b")
    all_partitions = 9
    a = rs.RuntimeProcess(tmp_path / "a.yaml", tmp_path / "a.log").start()
    b = rs.RuntimeProcess(tmp_path / "b.yaml", tmp_path / "b.log")
    moves: list[tuple[int, int]] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fed = pool.submit(
                rs.feed, kafka_bootstrap, topology, rs.market_data(60_000, symbols=9, seed=3), 3_000.0
            )
            a.wait_ready()
            rs.wait_until("A owns everything", lambda: len(_assignment(a)) == all_partitions, 60)
            b.start()
            rs.wait_until(
                "B takes a share",
                lambda: (
                    b.ready()
                    and 0 < len(_assignment(b)) < all_partitions
                    and len(_assignment(a)) + len(_assignment(b)) == all_partitions
                ),
                60,
            )
            moves.append((len(_assignment(a)), len(_assignment(b))))
            assert not _assignment(a) & _assignment(b)
            assert b.terminate() == 0, b.log_tail()
            rs.wait_until("A owns everything again", lambda: len(_assignment(a)) == all_partitions, 60)
            moves.append((len(_assignment(a)), 0))
            b = rs.RuntimeProcess(tmp_path / "b.yaml", tmp_path / "b.log").start()
            rs.wait_until("B rejoins", lambda: b.ready() and 0 < len(_assignment(b)) < all_partitions, 60)
            moves.append((len(_assignment(a)), len(_assignment(b))))
            assert fed.result() == 60_000
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 120)
        assert a.terminate() == 0, a.log_tail()
        assert b.terminate() == 0, b.log_tail()
    finally:
        a.kill()
        b.kill()
    assert moves[0][1] > 0 and moves[1] == (all_partitions, 0) and moves[2][1] > 0

    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(kafka_bootstrap, topology))
    assert rs.compare(expected, rs.actual_outputs(kafka_bootstrap, topology)) == []
    lines = (tmp_path / "b.log").read_text().splitlines()
    restored = [line for line in lines if "partitions assigned" in line]
    assert any('"restored_keys":0' not in line for line in restored), "B never restored state it took over"
