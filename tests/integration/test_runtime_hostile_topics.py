"""Missing output topics (issue 12, item 10), against the test bed's broker, which does not
auto-create topics (``auto.create.topics.enable=false``, see tests/testbed/kafka.py).

With creation disabled the runtime stays alive but not ready, names the missing topics in /status
and in exactly one log line, consumes nothing and aborts nothing; once an operator creates them it
starts by itself. With creation enabled (the default) it creates them with the configured partitions.
Either way the outputs are then exact.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from smc_runtime.config import parse_config
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def unborn_topology(make_topic: MakeTopic, kafka_admin: Any) -> Iterator[rs.Topology]:
    """Input topics that exist, output topics that do not (deleted after the test if created)."""
    tag = uuid.uuid4().hex[:8]
    inputs = {kind: make_topic(partitions=3, prefix=f"rt-in-{kind}")
              for kind in ("trades", "orderbook", "klines")}
    outputs = {role: f"rt-missing-{role}-{tag}" for role in rs.ROLES}
    topology = rs.Topology(inputs, outputs, group=f"rt-group-{tag}")
    yield topology
    leftovers = [*outputs.values(), f"{topology.group}.changelog"]
    for future in kafka_admin.delete_topics(leftovers, operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def log_lines(log: Path, msg: str) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict) and doc.get("msg") == msg:
                lines.append(doc)
    return lines


def partitions_of(admin: AdminClient, topic: str) -> int:
    meta = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
    return 0 if meta is None or meta.error is not None else len(meta.partitions)


def test_missing_topics_reported_not_ready_then_start_once_created(
        kafka_bootstrap: str, kafka_admin: AdminClient, unborn_topology: rs.Topology, tmp_path: Path) -> None:
    topology = unborn_topology
    processor = topology.processor(topics={"create_missing": False})
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {"main": processor},
                          processor_id="missing-0")
    log = tmp_path / "runtime.log"
    missing = sorted(topology.outputs.values())
    fed = rs.feed(kafka_bootstrap, topology, rs.market_data(3_000, symbols=3, seed=21))
    with rs.running(tmp_path / "config.yaml", log) as runtime:
        def status() -> dict[str, Any]:
            return dict(rs.http_json(runtime.url("/status"))[1]["processors"]["main"])

        rs.wait_until("missing topics in /status", lambda: runtime.alive() and _answers(runtime)
                      and status()["missing_topics"] == missing, 60)
        time.sleep(6)  # more than one re-check (TOPIC_RECHECK_S = 5 s): still one log line
        assert runtime.alive()
        assert rs.http_json(runtime.url("/health"))[0] == 200  # alive: a restart would not help
        assert rs.http_json(runtime.url("/ready"))[0] == 503
        detail = status()
        assert detail["state"] == "waiting_for_topics"
        assert detail["transactions"] == {"committed": 0, "aborted": 0}
        assert "missing topics" in str(detail["last_error"])
        reported = log_lines(log, "topics missing: not consuming until they exist")
        assert len(reported) == 1 and reported[0]["missing_topics"] == missing
        assert reported[0]["level"] == "ERROR" and reported[0]["create_missing"] is False
        assert partitions_of(kafka_admin, missing[0]) == 0  # not created behind the operator's back
        metrics = rs.http_text(f"http://127.0.0.1:{runtime.metrics_port}/metrics")
        assert 'smc_runtime_missing_topics{processor="main"} 6.0' in metrics
        # The changelog is internal state: created regardless, as before.
        assert partitions_of(kafka_admin, f"{topology.group}.changelog") == 3

        # An operator creates them: the processor starts by itself.
        new = [NewTopic(t, num_partitions=2, replication_factor=1) for t in missing]
        for future in kafka_admin.create_topics(new, operation_timeout=30).values():
            future.result(timeout=30)
        rs.wait_until("ready", runtime.ready, 60)
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 90)
        assert status()["missing_topics"] == []
        assert len(log_lines(log, "missing topics now exist")) == 1
        assert runtime.terminate() == 0, runtime.log_tail()
    assert fed == 3_000
    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(kafka_bootstrap, topology))
    assert rs.total_outputs(expected) > 0
    assert rs.compare(expected, rs.actual_outputs(kafka_bootstrap, topology)) == []
    assert not log_lines(log, "aborting transaction")


def test_missing_topics_created_with_configured_partitions(
        kafka_bootstrap: str, kafka_admin: AdminClient, unborn_topology: rs.Topology, tmp_path: Path) -> None:
    topology = unborn_topology
    # Creation is on by default; partitions and replication as configured.
    processor = topology.processor(topics={"partitions": 4, "replication_factor": 1})
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {"main": processor},
                          processor_id="create-0")
    log = tmp_path / "runtime.log"
    rs.feed(kafka_bootstrap, topology, rs.market_data(3_000, symbols=3, seed=22))
    with rs.running(tmp_path / "config.yaml", log) as runtime:
        runtime.wait_ready()
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 90)
        detail = rs.http_json(runtime.url("/status"))[1]["processors"]["main"]
        assert detail["missing_topics"] == []
        assert detail["created_topics"] == sorted([*topology.outputs.values(), f"{topology.group}.changelog"])
        assert runtime.terminate() == 0, runtime.log_tail()
    for topic in topology.outputs.values():
        assert partitions_of(kafka_admin, topic) == 4
    created = log_lines(log, "created missing topics")
    assert len(created) == 1 and set(topology.outputs.values()) <= set(created[0]["topics"])
    assert not log_lines(log, "topics missing: not consuming until they exist")
    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(kafka_bootstrap, topology))
    assert rs.compare(expected, rs.actual_outputs(kafka_bootstrap, topology)) == []
    assert not log_lines(log, "aborting transaction")


def _answers(runtime: rs.RuntimeProcess) -> bool:
    try:
        rs.http_json(runtime.url("/status"), timeout=1.0)
        return True
    except OSError:
        return False
