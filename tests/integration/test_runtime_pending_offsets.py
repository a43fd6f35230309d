"""The group's offsets are held by a transaction that is still open when the runtime starts: with
read_committed the broker answers the assignment's offset fetch with UNSTABLE_OFFSET_COMMIT until
that transaction ends (librdkafka retries until the call's timeout, then reports _TIMED_OUT). The
runtime must get past the wait without exiting: a zombie with its own transactional.id is fenced and
aborted by ``init_transactions`` before the runtime subscribes; a dead instance with another
transactional.id is aborted by the broker after its transaction timeout, and reading the offsets is
retried until then. Both end with exact outputs. Real broker, real runtime process."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from smc_runtime.config import parse_config
from smc_runtime.kafka import clients
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ZOMBIE_TIMEOUT_MS = 20_000  # the dead instance's transaction.timeout.ms: longer than one committed() call


def _hold_group_offsets(bootstrap: str, topology: rs.Topology, transactional_id: str,
                        timeout_ms: int = 60_000) -> Producer:
    """A producer whose open transaction holds offsets of the topology's group (never finished)."""
    zombie = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                       "transaction.timeout.ms": timeout_ms})
    zombie.init_transactions(30)
    zombie.begin_transaction()
    group = Consumer({"bootstrap.servers": bootstrap, "group.id": topology.group})
    try:
        offsets = [TopicPartition(t, p, 1) for t in topology.inputs.values() for p in range(3)]
        zombie.send_offsets_to_transaction(offsets, group.consumer_group_metadata(), 30)
    finally:
        group.close()
    return zombie


def _offsets_are_held(bootstrap: str, topology: rs.Topology) -> bool:
    """A read_committed offset fetch of the group times out: the broker holds the offsets back."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": topology.group,
                       "isolation.level": "read_committed"})
    try:
        reader.committed([TopicPartition(topology.inputs["trades"], 0)], timeout=3)
        return False
    except KafkaException as exc:
        return bool(exc.args and exc.args[0].code() == KafkaError._TIMED_OUT)
    finally:
        reader.close()


@pytest.mark.parametrize("zombie", ["same_transactional_id", "dead_instance"])
def test_the_runtime_gets_past_offsets_held_by_an_open_transaction(
        zombie: str, kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path) -> None:
    topology = rs.make_topology(make_topic)
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {"main": topology.processor()},
                          processor_id="pending-0")
    inputs = rs.market_data(6_000, symbols=4, seed=21)
    assert rs.feed(kafka_bootstrap, topology, inputs) == 6_000
    if zombie == "same_transactional_id":
        holder = _hold_group_offsets(kafka_bootstrap, topology, clients.transactional_id("pending-0", "main"))
    else:
        holder = _hold_group_offsets(kafka_bootstrap, topology, f"pending-dead-{topology.group}",
                                     ZOMBIE_TIMEOUT_MS)
    assert _offsets_are_held(kafka_bootstrap, topology)
    runtime = rs.RuntimeProcess(tmp_path / "config.yaml", tmp_path / "runtime.log").start()
    try:
        def committed_without_exit() -> bool:
            assert runtime.alive(), f"the runtime exited ({runtime.proc and runtime.proc.returncode}):\n" \
                                    f"{runtime.log_tail(60)}"
            return rs.group_lag(kafka_bootstrap, topology) == 0

        rs.wait_until("input committed by the first runtime", committed_without_exit, 120, 1.0)
        assert runtime.terminate() == 0, runtime.log_tail()
    finally:
        runtime.kill()
        del holder
    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(kafka_bootstrap, topology))
    assert rs.compare(expected, rs.actual_outputs(kafka_bootstrap, topology)) == []
