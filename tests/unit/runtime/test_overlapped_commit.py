"""The overlapped commit (``commit_cycle.py``, ``committer.py``): a commit's broker calls run on the
committer thread while the loop processes the next records, with fake clients whose
``commit_transaction`` is held until the test lets it return."""

from __future__ import annotations

import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka.partitions import PartitionState
from smc_runtime.kafka.processor import ProcessorRunner
from tests.unit.runtime.test_resume import FakeConsumer, FakeMessage, FakePipeline, FakeProducer
from tests.unit.runtime.test_resume import _runner as resume_runner

TP0 = ("in", 0)


class HeldProducer(FakeProducer):
    """``commit_transaction`` waits for ``release`` (and then raises ``fail`` if set); a produce or
    begin while a commit is in progress is recorded as a violation (librdkafka refuses them)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail: KafkaException | None = None
        self.committing = False
        self.violations: list[str] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kw: Any) -> None:
        if self.committing:
            self.violations.append(f"produce {topic}")
        super().produce(topic, value, key, **kw)

    def begin_transaction(self) -> None:
        if self.committing:
            self.violations.append("begin")
        super().begin_transaction()

    def commit_transaction(self, *_: Any) -> None:
        self.committing = True
        self.entered.set()
        try:
            assert self.release.wait(5), "the test never released the commit"
            if self.fail is not None:
                raise self.fail
            self.calls.append("commit")
        finally:
            self.committing = False


def _runner(overlap: bool = True) -> tuple[ProcessorRunner, FakePipeline, HeldProducer, FakeConsumer]:
    producer = HeldProducer()
    runner, pipeline, _, consumer = resume_runner(60_000, producer, commit_interval_ms=20,
                                                  commit_overlap=overlap)
    _part(runner).snapshot_due_at = 1e12  # no interval snapshot unless a test asks
    return runner, pipeline, producer, consumer


def _part(runner: ProcessorRunner) -> PartitionState:
    part = runner.partitions.get(TP0)
    assert part is not None
    return part


def _msgs(offsets: range, key: bytes = b"BTC") -> list[Any]:
    return [FakeMessage("in", 0, o, b"{}", key) for o in offsets]


def _start_overlapped_commit(runner: ProcessorRunner, producer: HeldProducer) -> None:
    runner._commits().commit_due()
    assert runner.committer.inflight is not None and runner.txn is None
    assert producer.entered.wait(5)


def _in_flight_then_staged(runner: ProcessorRunner, producer: HeldProducer, committed: range,
                           staged: range, staged_key: bytes = b"BTC") -> None:
    """Process ``committed``, hand its commit to the committer (held), process ``staged`` meanwhile."""
    runner.process_batch(_msgs(committed))
    _start_overlapped_commit(runner, producer)
    runner.process_batch(_msgs(staged, key=staged_key))


def test_records_processed_during_a_commit_are_staged_then_produced_in_the_next_transaction() -> None:
    runner, _, producer, _ = _runner()
    _in_flight_then_staged(runner, producer, range(0, 3), range(3, 5))  # the loop goes on meanwhile
    staged = runner.txn
    assert staged is not None and not staged.opened and staged.buffer is not None and len(staged.buffer) == 2
    assert len(producer.outputs()) == 3                           # nothing produced for 3..4 yet
    assert _part(runner).committed == 0 and _part(runner).position == 5
    producer.release.set()
    runner.commit()                                               # settles first, then commits 3..4
    assert producer.violations == []
    assert producer.calls == ["begin", "commit", "begin", "commit"]
    assert [[(o.partition, o.offset) for o in offs] for offs in producer.offsets] == [[(0, 3)], [(0, 5)]]
    assert producer.outputs() == [(b"BTC", b"0,"), (b"BTC", b"0,1,"), (b"BTC", b"0,1,2,"),
                                  (b"BTC", b"0,1,2,3,"), (b"BTC", b"0,1,2,3,4,")]
    assert _part(runner).committed == 5 and runner.txn is None and runner.committer.inflight is None


def test_a_settled_commit_advances_to_the_offsets_it_prepared_not_the_current_position() -> None:
    runner, _, producer, _ = _runner()
    _in_flight_then_staged(runner, producer, range(0, 2), range(2, 6))
    producer.release.set()
    assert runner._commits().settle()
    assert _part(runner).committed == 2 and _part(runner).position == 6
    staged = runner.txn
    assert staged is not None and staged.opened and producer.calls == ["begin", "commit", "begin"]
    assert len(producer.outputs()) == 6 and producer.violations == []


def test_a_failed_commit_in_flight_aborts_and_rolls_back_both_transactions() -> None:
    runner, pipeline, producer, consumer = _runner()
    runner.process_batch(_msgs(range(0, 2)))
    producer.release.set()
    runner.commit(snapshot=True)                                  # committed + snapshot at 2
    producer.release.clear()
    producer.entered.clear()
    producer.fail = KafkaException(KafkaError(KafkaError._TIMED_OUT, "injected", txn_requires_abort=True))
    _in_flight_then_staged(runner, producer, range(2, 4), range(4, 6))  # staged behind the failing commit
    outputs_before = len(producer.outputs())
    producer.release.set()
    assert not runner._commits().settle()
    assert producer.calls.count("abort") == 1 and producer.calls[-1] == "abort"
    assert len(producer.outputs()) == outputs_before              # the staged outputs were never produced
    assert pipeline.state[TP0]["BTC"] == "0,1,"                   # both batches rolled back to the snapshot
    assert consumer.seeks[-1] == ("in", 0, 2) and _part(runner).committed == 2
    assert runner.txn is None and runner.committer.inflight is None and producer.violations == []
    assert runner.breaker.consecutive_failures == 1


def test_an_abort_while_a_commit_is_in_flight_settles_it_first() -> None:
    runner, _, producer, consumer = _runner()
    _in_flight_then_staged(runner, producer, range(0, 3), range(3, 4))
    producer.release.set()
    runner.abort("partitions lost")                               # e.g. on_lost
    assert producer.calls == ["begin", "commit", "begin", "abort"]
    assert _part(runner).committed == 3                           # the commit in flight counted
    assert consumer.seeks[-1] == ("in", 0, 0) and _part(runner).replay_until == 3
    assert producer.violations == []


def test_revocation_and_shutdown_snapshots_wait_for_the_commit_in_flight() -> None:
    runner, _, producer, _ = _runner()
    _in_flight_then_staged(runner, producer, range(0, 3), range(3, 4), b"ETH")
    assert runner.has_uncommitted(including_snapshots=False)       # in flight counts as uncommitted
    producer.release.set()
    runner.commit(snapshot=True)
    assert producer.calls == ["begin", "commit", "begin", "commit"] and producer.violations == []
    assert (cl.marker_key("in", 0), b"4") in producer.changelog()
    assert not runner.has_uncommitted(including_snapshots=True)


def test_without_overlap_the_due_commit_runs_on_the_loops_thread() -> None:
    runner, _, producer, _ = _runner(overlap=False)
    producer.release.set()
    runner.process_batch(_msgs(range(0, 2)))
    runner._commits().commit_due()
    assert runner.committer.inflight is None and producer.calls == ["begin", "commit"]
    assert _part(runner).committed == 2
