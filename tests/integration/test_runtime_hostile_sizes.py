"""Dead letters that always fit (issue 12, item 5, the Kafka side), against the real broker.

The dead-letter topic here accepts records of at most 20,000 bytes (max.message.bytes), far below
``max_record_bytes``. The runtime reads that limit at start and lowers its producer's
message.max.bytes to it; the Pipeline's dead letters of 100 KB records (capped by the Pipeline to
max_record_bytes) are then refused locally by ``produce()`` and replaced by dead letters cut to fit,
with their reason and source headers kept. No transaction aborts (before: MSG_SIZE_TOO_LARGE on
every replay of the same record) and the other outputs are exact.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from smc_runtime.config import parse_config
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DLQ_LIMIT = 20_000
BIG = 100_000


def test_dead_letters_fit_a_small_topic_limit_without_aborts(kafka_bootstrap: str, make_topic: MakeTopic,
                                                            tmp_path: Path) -> None:
    topology = rs.make_topology(make_topic)
    topology.outputs["dead_letters"] = make_topic(partitions=2, config={"max.message.bytes": str(DLQ_LIMIT)},
                                                  prefix="rt-small-dlq")
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {"main": topology.processor()},
                          processor_id="sizes-0")
    clean = rs.market_data(2_000, symbols=3, seed=41)
    big = [("trades", f"big-{i}".encode(), b'{"e":"trade","s":"' + b"B" * BIG + f'{i}'.encode())
           for i in range(30)]
    mixed = [*clean[:1_000], *big, *clean[1_000:]]
    log = tmp_path / "runtime.log"
    with rs.running(tmp_path / "config.yaml", log) as runtime:
        runtime.wait_ready()
        rs.feed(kafka_bootstrap, topology, mixed)
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 90)
        assert runtime.terminate() == 0, runtime.log_tail()

    actual = rs.actual_outputs(kafka_bootstrap, topology)
    letters = [(v, dict(h)) for _, v, h in actual["dead_letters"]]
    replaced = [(v, h) for v, h in letters if h.get("original_size") is not None
                and int(h["original_size"]) > DLQ_LIMIT]
    assert len(replaced) == 30
    for value, headers in replaced:
        assert headers["reason"] == b"invalid_json" and headers["truncated"] == b"true"
        assert headers["source_topic"] == topology.inputs["trades"].encode()
        assert len(value) < DLQ_LIMIT
        assert value == b'{"e":"trade","s":"' + b"B" * (len(value) - 18)  # a prefix of the original
    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(kafka_bootstrap, topology))
    del expected["dead_letters"], actual["dead_letters"]
    assert rs.compare(expected, actual) == []
    msgs = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            msgs.append(json.loads(line).get("msg"))
    assert "aborting transaction" not in msgs
    assert msgs.count("output record too large for the producer: replaced by a capped dead letter") == 30
    assert ("records are limited below max_record_bytes by the topics' max.message.bytes: larger outputs "
            "become capped dead letters (output_too_large)") in msgs


def test_snapshot_larger_than_the_changelog_limit_is_a_tombstone_not_an_abort_loop(
        kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path) -> None:
    """A key whose state outgrows what the changelog accepts (here: a changelog topic created with
    max.message.bytes 4,000, below a trade key's snapshot once its windows fill) used to abort every
    commit that snapshotted it, and replay into the same snapshot. Now the key is written as a
    tombstone (a restore starts it afresh), counted and logged; everything else commits."""
    topology = rs.make_topology(make_topic)
    changelog = make_topic(partitions=3, config={"max.message.bytes": "4000", "cleanup.policy": "compact"},
                           prefix="rt-small-changelog")
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap,
                          {"main": topology.processor(changelog_topic=changelog, snapshot_interval_ms=0)},
                          processor_id="sizes-1")
    log = tmp_path / "runtime.log"
    with rs.running(tmp_path / "config.yaml", log) as runtime:
        runtime.wait_ready()
        rs.feed(kafka_bootstrap, topology, rs.market_data(3_000, symbols=3, seed=43))
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 90)
        metrics = rs.http_text(f"http://127.0.0.1:{runtime.metrics_port}/metrics")
        assert runtime.terminate() == 0, runtime.log_tail()
    too_large = [line for line in metrics.splitlines()
                 if line.startswith('smc_runtime_snapshots_too_large_total{processor="main"}')]
    assert too_large and float(too_large[0].split()[-1]) > 0, too_large
    assert any(line.startswith("smc_runtime_state_keys{") for line in metrics.splitlines())
    tombstones = [r for r in rs.read_topic(kafka_bootstrap, changelog) if r.value is None]
    assert tombstones
    msgs = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            msgs.append(json.loads(line).get("msg"))
    assert "aborting transaction" not in msgs
    assert ("state snapshot too large for the changelog: key written as a tombstone (a restore starts it "
            "afresh)") in msgs
    settings = parse_config(doc).stream_processors["main"]
    expected = rs.reference_outputs(settings, rs.read_inputs(kafka_bootstrap, topology))
    assert rs.compare(expected, rs.actual_outputs(kafka_bootstrap, topology)) == []
