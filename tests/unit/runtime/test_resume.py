"""Snapshots less often than commits: the pure decisions (resume plan, snapshot due), the changelog
marker, and the loop's replay/suppression, snapshot and abort paths with a fake Kafka and Pipeline.
The partition and transaction objects are built and read directly (``PartitionState``,
``ProcessorRunner.txn``)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from smc_runtime.config import KafkaSettings, ProcessorSettings
from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka.partitions import PartitionState
from smc_runtime.kafka.processor import ProcessorRunner
from smc_runtime.kafka.resume import (
    ResumePlan,
    next_snapshot_due,
    plan_resume,
    snapshot_budget,
    snapshot_due,
    snapshot_phase,
)
from smc_runtime.service.metrics import RuntimeMetrics
from smc_runtime.service.status import ProcessorStatus
from tests.kafka_fakes import FakeMessage

# --- pure decisions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("snapshot", "committed", "plan"), [
    (40, 100, ResumePlan(40, 100, 40)),                    # replay [S, C)
    (100, 100, ResumePlan(100, None, 100)),                # snapshot in the last commit: no replay
    (120, 100, ResumePlan(100, None, 100)),                # offsets reset by hand: start at C, as before
    (None, 100, ResumePlan(OFFSET_BEGINNING, 100, OFFSET_BEGINNING)),  # never snapshotted: from the start
    (None, 0, ResumePlan(0, None, None)),
    (40, None, ResumePlan(40, None, 40)),                  # offsets gone: resume where the state is
    (None, None, ResumePlan(None, None, None)),            # nothing: group offset / auto.offset.reset
    (OFFSET_BEGINNING, 7, ResumePlan(OFFSET_BEGINNING, 7, OFFSET_BEGINNING)),  # abort before any snapshot
])
def test_plan_resume(snapshot: int | None, committed: int | None, plan: ResumePlan) -> None:
    assert plan_resume(snapshot, committed) == plan


def test_snapshot_due() -> None:
    a, b, c = (PartitionState("t", 0, snapshot_due_at=11.0), PartitionState("t", 1, snapshot_due_at=10.4),
               PartitionState("t", 2))
    assert not snapshot_due(a, 10.5, 1000, False) and snapshot_due(b, 10.5, 1000, False)  # a: not yet
    assert snapshot_due(a, 11.0, 1000, False) and snapshot_due(b, 11.0, 1000, False)
    assert snapshot_due(a, 10.0, 0, False)                                 # 0: every commit
    assert snapshot_due(a, 10.0, 1000, True)                               # shutdown, revocation
    assert snapshot_due(c, 10.0, 1000, False)                              # no due time: due


def test_snapshot_phases_spread_partitions_over_the_interval() -> None:
    for count in (1, 6, 18):
        phases = [snapshot_phase(i, count) for i in range(count)]
        assert all(0.0 < x < 1.0 for x in phases)
        gaps = [b - a for a, b in itertools.pairwise(phases)]
        assert all(abs(gap - 1.0 / count) < 1e-12 for gap in gaps)  # evenly spaced


# --- changelog marker -------------------------------------------------------------------------------


class FakeChangelogConsumer:
    def __init__(self, records: list[FakeMessage]) -> None:
        eof = FakeMessage("cl", 0, -1, None, _error=KafkaError(KafkaError._PARTITION_EOF))
        self.batches = [records, [eof]]

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def unassign(self) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return self.batches.pop(0) if self.batches else []


def _cl_record(tp: tuple[str, int], key: str, value: bytes | None, offset: int, n: int) -> FakeMessage:
    return FakeMessage("cl", 0, n, value, cl.changelog_key(tp[0], tp[1], key),
                       cl.source_offset_header(offset))


def test_marker_is_the_snapshot_offset_and_not_a_state_key() -> None:
    a, b = ("in", 0), ("in", 1)
    records = [
        _cl_record(a, "BTC", b"s1", 10, 0), _cl_record(a, "", cl.marker_value(10), 10, 1),
        _cl_record(a, "ETH", b"s2", 30, 2), _cl_record(a, "", cl.marker_value(30), 30, 3),
        _cl_record(a, "", cl.marker_value(45), 45, 4),  # a snapshot where no key changed
        _cl_record(b, "BTC", b"s3", 7, 5),               # written before markers existed
    ]
    restored = cl.read_changelog(FakeChangelogConsumer(records), "cl", 1, [a, b])  # type: ignore[arg-type]
    assert restored.snapshots == {("in", 0, "BTC"): b"s1", ("in", 0, "ETH"): b"s2", ("in", 1, "BTC"): b"s3"}
    assert restored.snapshot_offset(a) == 45
    assert restored.snapshot_offset(b) == 7       # fallback: max(source_offset)
    assert restored.snapshot_offset(("in", 2)) is None
    assert cl.parse_changelog_key(cl.marker_key("in", 3)) == ("in", 3, cl.MARKER_STATE_KEY)


# --- the loop with fakes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Out:
    role: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class FakePipeline:
    """State per (partition, symbol) = the offsets seen, joined; b"bad" is a dead letter."""

    def __init__(self) -> None:
        self.state: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
        self._touched: set[tuple[str, int, str]] = set()

    def process(self, value: bytes | None, *, topic: str, partition: int, offset: int,
                timestamp_ms: int, key: bytes | None = None) -> list[Out]:
        if value == b"bad":
            return [Out("dead_letters", b"", b"bad", (("reason", b"invalid_json"),))]
        symbol = (key or b"").decode()
        slots = self.state[(topic, partition)]
        slots[symbol] = slots.get(symbol, "") + f"{offset},"
        self._touched.add((topic, partition, symbol))
        return [Out("enriched_trades", symbol.encode(), slots[symbol].encode())]

    def state_key_of(self, value: bytes | None, *, topic: str, key: bytes | None = None) -> str | None:
        return None if value == b"bad" else (key or b"").decode()

    def take_touched(self) -> set[tuple[str, int, str]]:
        touched, self._touched = self._touched, set()
        return touched

    def snapshot(self, topic: str, partition: int, state_key: str) -> bytes | None:
        value = self.state.get((topic, partition), {}).get(state_key)
        return None if value is None else value.encode()

    def restore(self, topic: str, partition: int, state_key: str, data: bytes) -> None:
        self.state[(topic, partition)][state_key] = data.decode()

    def state_keys(self, topic: str, partition: int) -> list[str]:
        return sorted(self.state.get((topic, partition), {}))

    def drop_partition(self, topic: str, partition: int) -> None:
        self.state.pop((topic, partition), None)
        self._touched = {t for t in self._touched if (t[0], t[1]) != (topic, partition)}


class FakeProducer:
    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes | None, bytes | None]] = []
        self.calls: list[str] = []
        self.offsets: list[list[TopicPartition]] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **_: Any) -> None:
        self.produced.append((topic, key, value))

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], *_: Any) -> None:
        self.offsets.append(offsets)

    def commit_transaction(self, *_: Any) -> None:
        self.calls.append("commit")

    def abort_transaction(self, *_: Any) -> None:
        self.calls.append("abort")

    def flush(self, *_: Any) -> int:
        return 0

    def poll(self, *_: Any) -> int:
        return 0

    def __len__(self) -> int:
        return 0

    def changelog(self) -> list[tuple[bytes | None, bytes | None]]:
        return [(k, v) for t, k, v in self.produced if t == "g.changelog"]

    def outputs(self) -> list[tuple[bytes | None, bytes | None]]:
        return [(k, v) for t, k, v in self.produced if t != "g.changelog"]


class FakeConsumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def consumer_group_metadata(self) -> None:
        return None


TP0 = ("in", 0)


def _runner(snapshot_interval_ms: int, producer: FakeProducer | None = None, **settings: Any
            ) -> tuple[ProcessorRunner, FakePipeline, FakeProducer, FakeConsumer]:
    """A runner over fake clients with one assigned, persisted partition; ``settings`` override the
    processor's (commit interval 100 ms)."""
    processor = ProcessorSettings(consumer_group="g", input_topics=["in"],
                                  snapshot_interval_ms=snapshot_interval_ms,
                                  **{"commit_interval_ms": 100, **settings})
    status = ProcessorStatus("p", "g", "exactly_once", ["in"], {}, 100, 10_000)
    pipeline = FakePipeline()
    runner = ProcessorRunner("p", processor, KafkaSettings(), "t-0", pipeline, status, RuntimeMetrics())
    producer, consumer = (producer if producer is not None else FakeProducer()), FakeConsumer()
    runner.attach(producer, consumer, consumer)  # type: ignore[arg-type]
    part = runner.partitions.add(TP0)
    part.persisted = True
    part.snapshot_offset = 0
    return runner, pipeline, producer, consumer


def _part(runner: ProcessorRunner) -> PartitionState:
    part = runner.partitions.get(TP0)
    assert part is not None
    return part


def _dirty(runner: ProcessorRunner) -> set[tuple[str, int]]:
    return set(runner.txn.dirty) if runner.txn is not None else set()


def _msgs(offsets: range, value: bytes = b"{}", key: bytes = b"BTC") -> list[Any]:
    return [FakeMessage("in", 0, o, value, key) for o in offsets]


def test_replayed_records_rebuild_state_without_outputs_dead_letters_or_a_transaction() -> None:
    runner, pipeline, producer, _ = _runner(1000)
    _part(runner).committed = 5
    runner.partitions.set_replay(_part(runner), 5)
    runner.process_batch([*_msgs(range(0, 2)), FakeMessage("in", 0, 2, b"bad", b"BTC"), *_msgs(range(3, 5))])
    assert producer.produced == [] and producer.calls == []           # nothing produced, no transaction
    assert _part(runner).position == 5 and runner.txn is None
    assert _part(runner).replay_until is None                            # offset 4 = until - 1: done
    assert pipeline.state[TP0]["BTC"] == "0,1,3,4,"
    assert runner.status.replayed_records == 5 and runner.status.messages_processed == 0
    runner.process_batch(_msgs(range(5, 6)))                         # past the replay range: live
    assert producer.outputs() == [(b"BTC", b"0,1,3,4,5,")] and producer.calls == ["begin"]
    assert _dirty(runner) == {TP0}


def test_replay_ends_at_the_first_record_past_the_range_in_a_mixed_batch() -> None:
    runner, _, producer, _ = _runner(1000)
    _part(runner).committed = 3
    runner.partitions.set_replay(_part(runner), 3)
    runner.process_batch(_msgs(range(1, 2)) + _msgs(range(4, 6)))    # 2..3 were aborted records
    assert producer.outputs() == [(b"BTC", b"1,4,"), (b"BTC", b"1,4,5,")]
    assert not runner.partitions.replaying and _part(runner).position == 6


def test_commits_between_snapshots_write_no_changelog_and_keep_touched_keys() -> None:
    runner, _, producer, _ = _runner(60_000)
    _part(runner).snapshot_due_at = 1e12  # the interval never passes in this test
    runner.process_batch(_msgs(range(0, 3)))
    runner.commit()
    assert producer.changelog() == [] and producer.calls == ["begin", "commit"]
    assert producer.offsets[-1][0].offset == 3 and _part(runner).committed == 3
    assert _part(runner).touched == {"BTC"} and _part(runner).unsnapshotted
    runner.process_batch(_msgs(range(3, 4), key=b"ETH"))
    runner.commit(snapshot=True)                                     # e.g. shutdown
    assert producer.changelog() == [(cl.changelog_key("in", 0, "BTC"), b"0,1,2,"),
                                     (cl.changelog_key("in", 0, "ETH"), b"3,"),
                                     (cl.marker_key("in", 0), b"4")]
    part = _part(runner)
    assert part.snapshot_offset == 4 and not part.touched and not part.unsnapshotted
    assert _part(runner).snapshot == {"BTC": b"0,1,2,", "ETH": b"3,"}


def test_interval_zero_snapshots_in_every_commit() -> None:
    runner, _, producer, _ = _runner(0)
    for start in (0, 2):
        runner.process_batch(_msgs(range(start, start + 2)))
        runner.commit()
    assert [v for k, v in producer.changelog() if k == cl.marker_key("in", 0)] == [b"2", b"4"]


def test_a_partition_without_snapshot_is_snapshotted_in_its_first_commit() -> None:
    runner, _, producer, _ = _runner(60_000)
    _part(runner).snapshot_due_at = 1e12
    _part(runner).persisted = False
    runner.process_batch(_msgs(range(0, 2)))
    runner.commit()
    assert (cl.marker_key("in", 0), b"2") in producer.changelog() and _part(runner).persisted


def test_abort_rolls_back_to_the_snapshot_and_replays_up_to_the_committed_offset() -> None:
    runner, pipeline, producer, consumer = _runner(60_000)
    runner.process_batch(_msgs(range(0, 2)))
    runner.commit(snapshot=True)                                     # snapshot at 2
    _part(runner).snapshot_due_at = 1e12
    runner.process_batch(_msgs(range(2, 4)))
    runner.commit()                                                  # committed 4, no snapshot
    runner.process_batch(_msgs(range(4, 6)))
    runner.abort("injected")
    assert producer.calls[-1] == "abort"
    assert pipeline.state[TP0]["BTC"] == "0,1,"                      # the snapshot state
    assert consumer.seeks[-1] == ("in", 0, 2) and _part(runner).replay_until == 4
    assert runner.status.replaying == {TP0: (2, 4)}
    assert _part(runner).touched == {"BTC"}                     # still owed to the next snapshot
    before = len(producer.outputs())
    runner.process_batch(_msgs(range(2, 6)))                         # redelivered after the seek
    assert producer.outputs()[before:] == [(b"BTC", b"0,1,2,3,4,"), (b"BTC", b"0,1,2,3,4,5,")]
    assert not runner.status.replaying and _dirty(runner) == {TP0}


def test_abort_with_interval_zero_needs_no_replay() -> None:
    runner, pipeline, _, consumer = _runner(0)
    runner.process_batch(_msgs(range(0, 3)))
    runner.commit()
    runner.process_batch(_msgs(range(3, 5)))
    runner.abort("injected")
    assert consumer.seeks[-1] == ("in", 0, 3) and not runner.partitions.replaying
    assert pipeline.state[TP0]["BTC"] == "0,1,2,"


def test_an_early_snapshot_keeps_the_partitions_due_time() -> None:
    assert next_snapshot_due(11.5, 10.0, 1000) == 11.5      # forced before its time: place kept
    assert next_snapshot_due(11.5, 11.6, 1000) == pytest.approx(12.6)  # due: re-armed from now
    assert next_snapshot_due(0.0, 5.0, 1000) == pytest.approx(6.0)     # never scheduled


def test_the_snapshot_budget_keeps_up_with_the_interval_and_no_more() -> None:
    assert snapshot_budget(6, 20, 1000) == 1
    assert snapshot_budget(6, 100, 1000) == 1      # 6 commits = 600 ms < 1 s
    assert snapshot_budget(12, 100, 1000) == 2
    assert snapshot_budget(100, 100, 1000) == 10
    assert snapshot_budget(1, 5000, 1000) == 5     # commits rarer than snapshots: no limit in effect
    assert snapshot_budget(4, 100, 0) == 4         # interval 0: every partition, every commit
