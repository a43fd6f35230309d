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
    runner.commit()                                   # the round waits for the next transaction
    assert len(producer.changelog()) == 2
    runner.process_batch([_record(41, keys)])         # it begins with it: 16 of the 40 keys first
    assert part.round is not None and part.round.next == MIN_ROUND_KEYS_PER_COMMIT
    assert len(producer.changelog()) == 2             # visible with the commit only
    runner.commit()
    assert len(producer.changelog()[2:]) == MIN_ROUND_KEYS_PER_COMMIT and part.round is not None  # no marker
    runner.process_batch([_record(o, keys) for o in range(42, 45)])
    runner.commit()
    runner.commit()                                   # no records: no transaction (the round waits)
    assert len(producer.changelog()[2:]) == 2 * MIN_ROUND_KEYS_PER_COMMIT
    runner.process_batch([_record(45, keys)])
    runner.commit()
    written = producer.changelog()[2:]
    assert len(written) == 40 + 1 and written[-1].key() == cl.marker_key("in", 0)
    assert written[-1].value() == b"41"               # the round's start: its keys were touched before
    assert part.round is None and part.snapshot_offset == 41 and part.unsnapshotted
    later = {m.key().decode().split("|")[2]: int(m.headers()[0][1])  # type: ignore[union-attr, index]
             for m in written[MIN_ROUND_KEYS_PER_COMMIT:-1]}
    assert set(later.values()) == {42, 45}            # written after the marker: their floors
    assert part.floors == later
    assert pipeline.state[TP0] == _oracle(keys, 46) | {"K0": "0,40,"}


def test_a_forced_snapshot_after_the_round_began_keeps_the_rounds_keys_as_rollback_state() -> None:
    """The round's keys written when the transaction began, then a forced snapshot (shutdown,
    revocation) in the same transaction: an abort after it restores those keys too."""
    with patch.object(partitions, "MIN_ROUND_KEYS_PER_COMMIT", 2):
        runner, pipeline, producer, consumer = _new_runner()
        keys = list(range(6))
        runner.process_batch([_record(o, keys) for o in range(6)])
        runner.commit()                                   # the first snapshot: marker 6
        runner.process_batch([_record(o, keys) for o in range(6, 12)])
        runner.commit()                                   # every key changed since
        part = _part(runner)
        part.snapshot_due_at = 0.0
        runner.process_batch([_record(12, keys)])         # begins: K0 and K1 of the round, then K0 changes
        assert part.round is not None and part.round.next == 2
        runner.commit(snapshot=True)                      # forced: K0 (touched) and K2-K5, marker 13
        assert part.snapshot_offset == 13 and part.snapshot["K1"] == b"1,7,"
        runner.process_batch([_record(o, keys) for o in range(13, 15)])
        runner.abort("injected")
        assert [offset for _, _, offset in consumer.seeks][-1] == 13
        runner.process_batch([_record(o, keys) for o in range(13, 15)])
        runner.commit()
        assert producer.committed[TP0] == 15
        assert pipeline.state[TP0] == _oracle(keys, 15)


def test_round_sizes() -> None:
    assert SnapshotRound.begin(10, {f"k{i}" for i in range(170)}, 20, 1000).per_commit == 16
    assert SnapshotRound.begin(10, {f"k{i}" for i in range(2000)}, 20, 1000).per_commit == 80
    assert SnapshotRound.begin(10, {f"k{i}" for i in range(170)}, None, 1000).per_commit == 170
    everything = SnapshotRound.begin(10, {"b", "a"}, 20, 0)
    assert everything.take() == ["a", "b"] and everything.done


steps = st.lists(st.one_of(st.tuples(st.just("batch"), st.integers(1, 12)),
                           st.tuples(st.just("commit"), st.just(0)),
                           st.tuples(st.just("due"), st.just(0)),
                           st.tuples(st.just("snapshot"), st.just(0)),
                           st.tuples(st.just("rounds"), st.integers(2, 6)),
                           st.tuples(st.just("abort"), st.just(0))), min_size=1, max_size=40)


@settings(max_examples=400, deadline=None)
@given(keys=st.lists(st.integers(-2, 19), min_size=1, max_size=60), script=steps)
def test_restore_after_a_crash_anywhere_is_exact(keys: list[int], script: list[tuple[str, int]]) -> None:
    with patch.object(partitions, "MIN_ROUND_KEYS_PER_COMMIT", 2):  # rounds over many commits
        _crash_and_restore(keys, script)


def _crash_and_restore(keys: list[int], script: list[tuple[str, int]]) -> None:
    runner, pipeline, producer, consumer = _new_runner()
    # Every key processed and committed twice first: the first snapshot, then keys a round owes.
    position = 2 * len(keys)
    for start in (0, len(keys)):
        runner.process_batch([_record(o, keys) for o in range(start, start + len(keys))])
        runner.commit()
    for step, size in script:
        if step == "batch":
            runner.process_batch([_record(o, keys) for o in range(position, position + size)])
            position += size
        elif step == "commit":
            runner.commit()
        elif step == "due":
            _part(runner).snapshot_due_at = 0.0
        elif step == "snapshot":  # a forced snapshot (shutdown, revocation) after a round began
            runner.commit(snapshot=True)
        elif step == "rounds":  # the interval is up, then transactions of one record each
            _part(runner).snapshot_due_at = 0.0
            for offset in range(position, position + size):
                runner.process_batch([_record(offset, keys)])
                runner.commit()
            position += size
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


TP1 = ("in", 1)


def _record_of(tp: tuple[str, int], offset: int, keys: list[int]) -> FakeMessage:
    k = keys[offset % len(keys)]
    return FakeMessage(tp[0], tp[1], offset, b"bad" if k < 0 else b"{}", f"K{abs(k)}".encode())


two_partition_steps = st.lists(st.one_of(
    st.tuples(st.just("batch"), st.integers(0, 6), st.integers(0, 6)),  # records of TP0, then TP1
    st.tuples(st.just("commit"), st.just(0), st.just(0)),
    st.tuples(st.just("due"), st.integers(0, 1), st.just(0)),
    st.tuples(st.just("snapshot"), st.just(0), st.just(0)),
    st.tuples(st.just("rounds"), st.integers(0, 1), st.integers(2, 6)),
    st.tuples(st.just("abort"), st.just(0), st.just(0))), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.integers(-2, 9), min_size=1, max_size=30), script=two_partition_steps)
def test_restore_after_a_crash_anywhere_is_exact_with_two_partitions(
        keys: list[int], script: list[tuple[str, int, int]]) -> None:
    """The same property with two partitions in one batch: one partition still replaying (after an
    abort) while a record of the other begins a transaction, or while a commit snapshots."""
    with patch.object(partitions, "MIN_ROUND_KEYS_PER_COMMIT", 2):
        _crash_and_restore_two(keys, script)


def _crash_and_restore_two(keys: list[int], script: list[tuple[str, int, int]]) -> None:
    runner, _, producer, consumer = _new_runner()
    second = runner.partitions.add(TP1)
    second.persisted, second.snapshot_offset, second.snapshot_due_at = False, None, 1e12
    tps = (TP0, TP1)
    width = len(keys)
    for start in (0, width):  # every key of both, committed twice first (as in the test above)
        runner.process_batch([_record_of(tp, o, keys) for tp in tps for o in range(start, start + width)])
        runner.commit()
    position = {TP0: 2 * width, TP1: 2 * width}
    for step, a, b in script:
        if step == "batch":
            batch = [_record_of(tp, o, keys) for tp, size in zip(tps, (a, b), strict=True)
                     for o in range(position[tp], position[tp] + size)]
            if batch:
                runner.process_batch(batch)
            position[TP0] += a
            position[TP1] += b
        elif step == "commit":
            runner.commit()
        elif step == "due":
            part = runner.partitions.get(tps[a])
            assert part is not None
            part.snapshot_due_at = 0.0
        elif step == "snapshot":
            runner.commit(snapshot=True)
        elif step == "rounds":  # partition a's interval is up, then b transactions of one record of it
            tp = tps[a]
            part = runner.partitions.get(tp)
            assert part is not None
            part.snapshot_due_at = 0.0
            for offset in range(position[tp], position[tp] + b):
                runner.process_batch([_record_of(tp, offset, keys)])
                runner.commit()
            position[tp] += b
        else:
            runner.abort("injected")
            for topic, partition, offset in consumer.seeks:
                position[(topic, partition)] = offset if offset >= 0 else 0
            consumer.seeks.clear()
    committed = {tp: producer.committed[tp] for tp in tps if tp in producer.committed}
    restored = cl.read_changelog(FakeChangelogConsumer(producer.changelog()), CHANGELOG, 1,  # type: ignore[arg-type]
                                 list(tps))
    again, pipeline2, _, _ = _new_runner()
    again.partitions.remove(TP0)
    assignment, _ = again.recovery.restore(list(tps), restored, committed)
    starts = {(tp.topic, tp.partition): tp.offset for tp in assignment}
    for tp in tps:
        start = starts[tp]
        start = 0 if start in (OFFSET_BEGINNING, None) or start < 0 else start
        until = committed.get(tp, 0)
        if start < until:
            again.process_batch([_record_of(tp, o, keys) for o in range(start, until)])
    assert not again.partitions.replaying
    for tp in tps:
        assert pipeline2.state.get(tp, {}) == _oracle(keys, committed.get(tp, 0)), tp
