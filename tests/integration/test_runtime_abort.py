"""An abortable error in the middle of a transaction (injected into the real producer: once on
``produce`` mid-batch, once on ``commit_transaction`` after the records were sent) -> the runtime
aborts, rolls state back to the last snapshot, rewinds, replays up to the committed offset with
outputs suppressed and carries on; the committed outputs equal an uninterrupted run's. Snapshots in
every commit (no replay) and every 1.5 s with 100 ms commits (aborts replay committed records).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from smc_runtime.config import parse_config
from smc_runtime.pipeline import Pipeline
from smc_runtime.service.app import RuntimeApp
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _abortable(what: str) -> KafkaException:
    return KafkaException(KafkaError(KafkaError._STATE, f"injected {what}", txn_requires_abort=True))


class FaultyProducer(Producer):
    """The real transactional producer, with one abortable failure on the Nth produce and one on
    the Mth commit."""

    fail_produce_at = 15_000
    fail_commit_at = 12

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.produces = 0
        self.commits = 0
        self.injected: list[str] = []

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.produces += 1
        if self.produces == self.fail_produce_at:
            self.injected.append("produce")
            raise _abortable("produce failure")
        super().produce(*args, **kwargs)

    def commit_transaction(self, *args: Any) -> None:
        self.commits += 1
        if self.commits == self.fail_commit_at:
            self.injected.append("commit")
            raise _abortable("commit failure")
        super().commit_transaction(*args)


@pytest.mark.parametrize("snapshot_interval_ms", [0, 1500])
def test_injected_abortable_errors_leave_outputs_exact(kafka_bootstrap: str, make_topic: MakeTopic,
                                                       tmp_path: Path, snapshot_interval_ms: int) -> None:
    topology = rs.make_topology(make_topic)
    doc = rs.write_config(tmp_path / "config.yaml", kafka_bootstrap,
                          {"main": topology.processor(commit_interval_ms=100, batch_size=1000,
                                                      snapshot_interval_ms=snapshot_interval_ms)},
                          processor_id="abort-0")
    config = parse_config(doc)
    producers: list[FaultyProducer] = []

    def factory(conf: dict[str, Any]) -> Producer:
        producers.append(FaultyProducer(conf))
        return producers[-1]

    app = RuntimeApp(config, Pipeline, bind_address="127.0.0.1", runner_kwargs={"producer_factory": factory},
                     wedged_after_s=None)
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    try:
        rs.feed(kafka_bootstrap, topology, rs.market_data(40_000, symbols=6, seed=5), rate=8_000)
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 120)
    finally:
        app.stop()
        thread.join(60)
    assert app.exit_codes == {"main": 0}
    assert producers and sorted(producers[0].injected) == ["commit", "produce"]
    # Each injected error aborts once; an abort can cascade into one more (librdkafka reports the
    # purged in-flight batch as OUT_OF_ORDER_SEQUENCE_NUMBER and needs an epoch bump), never fewer.
    assert 2 <= app.statuses["main"].transactions_aborted <= 4
    replayed = app.statuses["main"].replayed_records
    if snapshot_interval_ms == 0:
        assert replayed == 0  # the last snapshot is the last commit: nothing to replay
    else:
        assert replayed > 0  # the aborts rolled back to snapshots older than the committed offsets

    inputs = rs.read_inputs(kafka_bootstrap, topology)
    expected = rs.reference_outputs(config.stream_processors["main"], inputs)
    actual = rs.actual_outputs(kafka_bootstrap, topology)
    assert rs.compare(expected, actual) == []
    aborted_records = sum(len(rs.read_topic(kafka_bootstrap, t, "read_uncommitted"))
                          for t in topology.outputs.values()) - rs.total_outputs(actual)
    assert aborted_records > 0  # the aborted transactions did write records, invisible to readers
