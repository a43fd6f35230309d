"""Snapshot rounds: a partition's snapshot written over consecutive commits (``SnapshotRound``), a
few keys per commit instead of every touched key in one, with per-key floors so that replay after a
restore or an abort skips what a key's later snapshot already holds. The property: whatever the
interleaving of batches, commits, aborts and due snapshots, and wherever the process crashes, the
state restored from the committed changelog and replayed up to the committed offset is the state
the crashed process had there (the fake Pipeline's state is the list of offsets applied per key,
so a record applied twice or never shows)."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

from confluent_kafka import OFFSET_BEGINNING
from hypothesis import given, settings
from hypothesis import strategies as st

from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka import partitions
from smc_runtime.kafka.partitions import MIN_ROUND_KEYS_PER_COMMIT, PartitionState, SnapshotRound
from smc_runtime.kafka.processor import ProcessorRunner
from tests.kafka_fakes import FakeMessage
from tests.unit.runtime.test_resume import TP0, FakeChangelogConsumer, FakePipeline, FakeProducer, _runner

CHANGELOG = "g.changelog"


class TxnProducer(FakeProducer):
    """A transactional producer's visible outcome: records of committed transactions only (with
    their headers), the offsets each partition has committed."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, bytes | None, bytes | None, Any]] = []
        self.visible: list[tuple[str, bytes | None, bytes | None, Any]] = []
        self.committed: dict[tuple[str, int], int] = {}

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                headers: Any = None, **_: Any) -> None:
        self.open.append((topic, key, value, headers))

    def begin_transaction(self) -> None:
        super().begin_transaction()
        self.open = []

    def commit_transaction(self, *_: Any) -> None:
        super().commit_transaction()
        self.visible.extend(self.open)
        sent = self.offsets[-1] if self.offsets else []
        self.committed.update({(tp.topic, tp.partition): tp.offset for tp in sent})
        self.open, self.offsets = [], []

    def abort_transaction(self, *_: Any) -> None:
        super().abort_transaction()
        self.open, self.offsets = [], []

    def changelog(self) -> list[FakeMessage]:  # type: ignore[override]
        records = (r for r in self.visible if r[0] == CHANGELOG)
        return [FakeMessage(CHANGELOG, 0, n, value, key, headers)
                for n, (_, key, value, headers) in enumerate(records)]


def _record(offset: int, keys: list[int]) -> FakeMessage:
    k = keys[offset % len(keys)]
    value = b"bad" if k < 0 else b"{}"
    return FakeMessage("in", 0, offset, value, f"K{abs(k)}".encode())


def _oracle(keys: list[int], until: int) -> dict[str, str]:
    """The fake Pipeline's state after offsets [0, until): per key, the offsets applied."""
    state: dict[str, str] = {}
    for offset in range(until):
        k = keys[offset % len(keys)]
        if k >= 0:
            state[f"K{k}"] = state.get(f"K{k}", "") + f"{offset},"
    return state


def _part(runner: ProcessorRunner) -> PartitionState:
    part = runner.partitions.get(TP0)
    assert part is not None
    return part


def _new_runner() -> tuple[ProcessorRunner, FakePipeline, TxnProducer, Any]:
    producer = TxnProducer()
    runner, pipeline, _, consumer = _runner(1000, producer, commit_interval_ms=20)  # type: ignore[arg-type]
    part = _part(runner)
    part.persisted, part.snapshot_offset, part.snapshot_due_at = False, None, 1e12
    return runner, pipeline, producer, consumer


def test_a_round_spreads_a_partitions_keys_over_commits_and_ends_with_its_marker() -> None:
    runner, pipeline, producer, _ = _new_runner()
    runner.process_batch([_record(o, [0]) for o in range(1)])
    runner.commit()                                   # never snapshotted: everything at once, marker 1
    first_snapshot = [cl.changelog_key("in", 0, "K0"), cl.marker_key("in", 0)]
    assert [m.key() for m in producer.changelog()] == first_snapshot
    keys = list(range(40))
    runner.process_batch([_record(o, keys) for o in range(1, 41)])
    part = _part(runner)
    part.snapshot_due_at = 0.0                        # the interval is up
    runner.commit()
    first = producer.changelog()[2:]
    assert len(first) == MIN_ROUND_KEYS_PER_COMMIT and part.round is not None  # 16 of 40, no marker
    runner.process_batch([_record(o, keys) for o in range(41, 45)])
    runner.commit()
    runner.commit()                                   # no records: no commit (the round waits)
    assert len(producer.changelog()[2:]) == 2 * MIN_ROUND_KEYS_PER_COMMIT
    runner.process_batch([_record(45, keys)])
    runner.commit()
    written = producer.changelog()[2:]
    assert len(written) == 40 + 1 and written[-1].key() == cl.marker_key("in", 0)
    assert written[-1].value() == b"41"               # the round's start: its keys were touched before
    assert part.round is None and part.snapshot_offset == 41 and part.unsnapshotted
    later = {m.key().decode().split("|")[2]: int(m.headers()[0][1])  # type: ignore[union-attr, index]
             for m in written[MIN_ROUND_KEYS_PER_COMMIT:-1]}
    assert set(later.values()) == {45, 46}            # written after the marker: their floors
    assert part.floors == later
    assert pipeline.state[TP0] == _oracle(keys, 46) | {"K0": "0,40,"}


def test_round_sizes() -> None:
    assert SnapshotRound.begin(10, {f"k{i}" for i in range(170)}, 20, 1000).per_commit == 16
    assert SnapshotRound.begin(10, {f"k{i}" for i in range(2000)}, 20, 1000).per_commit == 80
    assert SnapshotRound.begin(10, {f"k{i}" for i in range(170)}, None, 1000).per_commit == 170
    everything = SnapshotRound.begin(10, {"b", "a"}, 20, 0)
    assert everything.take() == ["a", "b"] and everything.done


steps = st.lists(st.one_of(st.tuples(st.just("batch"), st.integers(1, 12)),
                           st.tuples(st.just("commit"), st.just(0)),
                           st.tuples(st.just("due"), st.just(0)),
                           st.tuples(st.just("abort"), st.just(0))), min_size=1, max_size=40)


@settings(max_examples=400, deadline=None)
@given(keys=st.lists(st.integers(-2, 19), min_size=1, max_size=60), script=steps)
def test_restore_after_a_crash_anywhere_is_exact(keys: list[int], script: list[tuple[str, int]]) -> None:
    with patch.object(partitions, "MIN_ROUND_KEYS_PER_COMMIT", 2):  # rounds over many commits
        _crash_and_restore(keys, script)


def _crash_and_restore(keys: list[int], script: list[tuple[str, int]]) -> None:
    runner, pipeline, producer, consumer = _new_runner()
    position = 0
    for step, size in script:
        if step == "batch":
            runner.process_batch([_record(o, keys) for o in range(position, position + size)])
            position += size
        elif step == "commit":
            runner.commit()
        elif step == "due":
            _part(runner).snapshot_due_at = 0.0
        else:
            runner.abort("injected")
            seeks = [offset for topic, partition, offset in consumer.seeks if (topic, partition) == TP0]
            position = seeks[-1] if seeks and seeks[-1] >= 0 else 0
            consumer.seeks.clear()
        if runner.txn is None and step == "commit" and not runner.partitions.replaying:
            committed = producer.committed.get(TP0, 0)
            assert pipeline.state.get(TP0, {}) == _oracle(keys, committed)
    # Crash: whatever was not committed is gone. A fresh instance restores and replays.
    committed = producer.committed.get(TP0)
    restored = cl.read_changelog(FakeChangelogConsumer(producer.changelog()), CHANGELOG, 1,  # type: ignore[arg-type]
                                 [TP0])
    again, pipeline2, _, _ = _new_runner()
    again.partitions.remove(TP0)
    assignment, _ = again.recovery.restore([TP0], restored, {TP0: committed} if committed is not None else {})
    start = assignment[0].offset
    start = 0 if start in (OFFSET_BEGINNING, None) or start < 0 else start
    until = committed or 0
    if start < until:
        again.process_batch([_record(o, keys) for o in range(start, until)])
    assert not again.partitions.replaying
    assert pipeline2.state.get(TP0, {}) == _oracle(keys, until)
