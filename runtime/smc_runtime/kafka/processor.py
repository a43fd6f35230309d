"""One stream processor: a consumer, a (transactional) producer and a Pipeline, in one loop.

The story of a pass (``_step``): consume a batch -> run every record through the Pipeline and
produce its outputs (``process_batch``, the hot loop) -> when the commit interval or batch size is
reached, commit the open ``Transaction`` (``transaction.py``, numbered steps). Exactly-once with
``commit_overlap`` hands the commit's broker calls to the committer thread (``committer.py``) and
goes on: the records processed meanwhile stage their outputs in the next transaction, which opens
when the commit returns (``CommitCycle.settle``); everything that needs the transaction settled
first (the next commit, an abort, a rebalance, shutdown, an open breaker) settles it. Kafka errors follow
librdkafka's classes (``errors.py``): retriable -> retried within a deadline, abortable -> ``abort``
(abort, roll state back to the last snapshot, rewind, replay up to the committed offset:
``recovery.py``), fatal/fenced -> the loop ends with a non-zero exit code.

State is owned per source partition (``partitions.py``): on assignment it is restored from the
changelog before any record of the partition is processed; on revocation the open transaction is
committed first and the partition's state dropped; on loss the transaction is aborted
(``rebalance.py``). Outputs go through one ``OutputWriter`` (``output.py``); metrics and /status
through one ``Telemetry`` (``telemetry.py``); waiting for the broker is ``startup.py``'s.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, Message, Producer

from smc_runtime.config import KafkaSettings, ProcessingMode, ProcessorSettings
from smc_runtime.kafka import clients, startup, topics
from smc_runtime.kafka.backpressure import Backpressure
from smc_runtime.kafka.breaker import CircuitBreaker
from smc_runtime.kafka.commit_cycle import CommitCycle
from smc_runtime.kafka.committer import Committer
from smc_runtime.kafka.errors import EXIT_CRASHED, AbortableKafkaError, exit_of, raise_if_fatal
from smc_runtime.kafka.flow import FlowControl
from smc_runtime.kafka.output import DeliveryReport, OutputLike, OutputWriter
from smc_runtime.kafka.output_health import OutputHealth
from smc_runtime.kafka.partitions import TP, Partitions
from smc_runtime.kafka.pending_offsets import PendingOffsetsSweep
from smc_runtime.kafka.rebalance import RebalanceHandler
from smc_runtime.kafka.recovery import Recovery, StatePipeline
from smc_runtime.kafka.startup import BrokerWaits
from smc_runtime.kafka.telemetry import Telemetry
from smc_runtime.kafka.transaction import CommitContext, StateSource, Transaction
from smc_runtime.logs import get_logger
from smc_runtime.service.metrics import RuntimeMetrics
from smc_runtime.service.status import ProcessorState, ProcessorStatus

KAFKA_CALL_TIMEOUT_S = 10.0
LAG_REFRESH_S = 1.0  # gauges: lag, queue, state keys
CONSUME_TIMEOUT_S = 0.01


class PipelineLike(StatePipeline, StateSource, Protocol):
    """The contract of ``smc_runtime.pipeline.Pipeline`` that the loop relies on: what recovery
    (``process``, ``restore``, ``drop_partition``) and the commit (``snapshot``) ask of it."""

    def process(self, value: bytes | None, *, topic: str, partition: int, offset: int,
                timestamp_ms: int, key: bytes | None = None) -> Sequence[OutputLike]: ...


class ProcessorRunner:
    """Runs one ``stream_processors`` entry until ``stop`` is set; ``run`` returns the exit code."""

    def __init__(self, name: str, settings: ProcessorSettings, kafka: KafkaSettings, processor_id: str,
                 pipeline: PipelineLike, status: ProcessorStatus, metrics: RuntimeMetrics, *,
                 producer_factory: Callable[[dict[str, Any]], Producer] = Producer,
                 breaker: CircuitBreaker | None = None, backpressure: Backpressure | None = None,
                 topic_policy: topics.TopicPolicy | None = None) -> None:
        self.name = name
        self.settings = settings
        self.kafka = kafka
        self.pipeline = pipeline
        self.status = status
        self.metrics = metrics
        self.eos = settings.processing_mode is ProcessingMode.EXACTLY_ONCE
        self.txn_id = clients.transactional_id(processor_id, name)
        self.client_id = f"{processor_id}.{name}"
        self.log = get_logger("smc_runtime.kafka.processor", processor=name)
        self._producer_factory = producer_factory
        self.breaker = breaker or CircuitBreaker()
        self.backpressure = backpressure or Backpressure()
        self.topic_for_role = settings.output_topics.by_role()
        self.output_topic_names = sorted(set(self.topic_for_role.values()))  # checked at start, swept (EOS)
        self.changelog_topic = settings.changelog_topic_name()
        self.changelog_partitions = 1
        self.topic_policy = topic_policy or topics.TopicPolicy.of(settings)
        # The largest record the Pipeline produces (dead letters capped to fit, snapshots validated
        # against it): the producer's message.max.bytes unless kafka_clients.producer sets one.
        self.record_bytes = settings.max_record_bytes
        self.max_message_bytes = self.record_bytes  # the producer's, set at start
        self.telemetry = Telemetry(name, metrics, status)
        self.partitions = Partitions()
        self.recovery = Recovery(self.partitions, pipeline, self.telemetry, self.log,
                                 settings.snapshot_interval_ms)
        self.waits = BrokerWaits(self.telemetry, self.log, self.breaker, threading.Event())
        self.deliveries = DeliveryReport(self.log)
        self.committer = Committer(name)
        self.flow = FlowControl(lambda: self._consumer, self.backpressure, self.telemetry, self.log)
        self.output_health = OutputHealth(self.breaker, self.telemetry, self.deliveries, self.waits,
                                          self.flow, self.log, lambda: self.max_message_bytes)
        self.failed = False
        self._last_lag_refresh = 0.0
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._restore_consumer: Consumer | None = None
        self._ctx: CommitContext | None = None
        self._cycle: CommitCycle | None = None
        self._rebalance: RebalanceHandler | None = None

    # ------------------------------------------------------------------------------------------------
    # lifecycle

    def run(self, stop: threading.Event) -> int:
        self.waits.stop = stop
        try:
            if not self._start():  # asked to stop while waiting for the broker or the topics
                self._close_clients()
                self.status.set_state(ProcessorState.STOPPED)
                return 0
            while not stop.is_set():
                self._step()
            self._shutdown()
            self.status.set_state(ProcessorState.STOPPED)
            return 0
        except Exception as exc:
            code, reason = exit_of(exc)
            if code == EXIT_CRASHED:
                self.log.exception("processor crashed", error=reason.removeprefix("crashed: "))
            self._fail(reason)
            return code

    def _fail(self, reason: str) -> None:
        self.failed = True
        self.committer.close()
        self.status.set_state(ProcessorState.FAILED, reason)
        self.log.error("processor stopped on error", error=reason)
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception as exc:  # the process exits anyway; leaving the group is best effort
                self.log.warning("consumer close failed", error=str(exc))

    def _start(self) -> bool:
        """Topics, then the transactional producer, then the consumers; False if stopped before it
        was done (``startup.py`` waits, alive and not ready, while the broker or topics are missing)."""
        self.status.set_state(ProcessorState.STARTING)
        admin = self.waits.admin = startup.admin_client(self.kafka, self.settings, self.client_id)
        check = self.waits.prepare_topics(admin, self.output_topic_names, self.changelog_topic,
                                          self.settings.input_topics, self.topic_policy, self.record_bytes)
        if check is None:
            return False
        self.changelog_partitions = check.changelog_partitions
        conf = startup.client_configs(self.kafka, self.settings, self.client_id, self.txn_id, check,
                                      self.deliveries, self.waits.on_client_error)
        self.max_message_bytes = int(conf.producer["message.max.bytes"])
        startup.check_record_limits(self.log, check, self.max_message_bytes, self.record_bytes)
        producer = self._producer = self._producer_factory(conf.producer)
        # Fences any previous producer with this transactional.id and aborts its open transaction.
        if self.eos and not self.waits.until_broker_answers(
                lambda: producer.init_transactions(KAFKA_CALL_TIMEOUT_S), "init_transactions",
                ProcessorState.STARTING):
            return False
        consumer = Consumer(conf.consumer)
        self.attach(producer, consumer, Consumer(conf.restore))
        assert self._rebalance is not None
        self._rebalance.subscribe(consumer, self.settings.input_topics, conf.consumer)
        self.status.set_state(ProcessorState.RUNNING)
        self.log.info("processor started", transactional_id=self.txn_id if self.eos else None,
                      mode=self.settings.processing_mode.value, inputs=self.settings.input_topics,
                      changelog=self.changelog_topic, changelog_partitions=self.changelog_partitions,
                      message_max_bytes=self.max_message_bytes)
        return True

    def attach(self, producer: Producer, consumer: Consumer, restore_consumer: Consumer) -> None:
        """The collaborators that need the clients: the writer, the commit context, the rebalance
        handler. Tests call this with fake clients instead of ``_start``."""
        self._producer, self._consumer, self._restore_consumer = producer, consumer, restore_consumer
        writer = OutputWriter(producer, self.topic_for_role, self.max_message_bytes, self.log,
                              self.flow.producer_queue)
        self._ctx = CommitContext(producer, consumer, self.eos, self.partitions, self.pipeline, writer,
                                  self.deliveries, self.telemetry, self.log, self.changelog_topic,
                                  self.changelog_partitions, self.settings.snapshot_interval_ms,
                                  self.output_health.on_retry, self.settings.commit_interval_ms)
        self._cycle = CommitCycle(self._ctx, self.eos and self.settings.commit_overlap, self.partitions,
                                  self.recovery, self.output_health, self.waits, self.telemetry, self.log,
                                  self._require, self.committer)
        sweep = PendingOffsetsSweep.of(producer, self.waits, self.kafka, self.client_id,
                                       self.settings.consumer_group, self.changelog_topic, self.log,
                                       outputs=self.output_topic_names)
        self._rebalance = RebalanceHandler(self, self.recovery, self.telemetry, self.log, restore_consumer,
                                           self.changelog_topic, self.changelog_partitions,
                                           self.waits.log_retry, sweep if self.eos else None)

    def _close_clients(self) -> None:
        """Stopped before the loop ran: close whatever was created (nothing was consumed)."""
        for client in (self._consumer, self._restore_consumer):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()

    def _shutdown(self) -> None:
        """Graceful stop: commit what was processed with a snapshot (abort if that fails), leave the
        group, flush."""
        self.status.set_state(ProcessorState.STOPPING)
        consumer, producer = self._require()
        if self.has_uncommitted(including_snapshots=True):
            self.commit(snapshot=True)  # settles a commit in flight first
        self.committer.close()
        consumer.close()  # leaves the group now (revoke callback: nothing left to commit)
        producer.flush(KAFKA_CALL_TIMEOUT_S)
        if self._restore_consumer is not None:
            self._restore_consumer.close()
        self.log.info("processor stopped", processed=self.status.messages_processed)

    def _require(self) -> tuple[Consumer, Producer]:
        if self._consumer is None or self._producer is None:
            raise RuntimeError("processor not started")
        return self._consumer, self._producer

    def _context(self) -> CommitContext:
        if self._ctx is None:
            raise RuntimeError("processor not started")
        return self._ctx

    def _commits(self) -> CommitCycle:
        if self._cycle is None:
            raise RuntimeError("processor not started")
        return self._cycle

    @property
    def txn(self) -> Transaction | None:
        """The open (or staged) transaction: ``CommitCycle.txn``."""
        return self._cycle.txn if self._cycle is not None else None

    def _raise_async_error(self) -> None:
        """An error a callback could not raise itself (fatal client error, rebalance failure)."""
        error = self.waits.async_error or (self._rebalance.error if self._rebalance else None)
        if error is not None:
            raise error

    # ------------------------------------------------------------------------------------------------
    # the loop

    def _step(self) -> None:
        consumer, producer = self._require()
        now = time.monotonic()
        self.status.beat(now)
        self._raise_async_error()
        cycle = self._commits()
        if self.committer.done() and not cycle.settle():
            return
        if not self.breaker.allows_work(now):  # its transitions pause, resume and report (OutputHealth)
            if self.committer.inflight is not None:  # settled first: holding polls the producer
                self.committer.wait(CONSUME_TIMEOUT_S)
                return
            self.flow.hold_while_open(consumer, producer)
            return
        # consume() waits for the whole timeout unless max_poll_records arrive. What arrived while
        # the last batch was processed or committed is taken at once; only an empty queue is waited
        # on, briefly (a latency floor at live rates) and never past the moment the open transaction is due.
        interval_ms = self.settings.commit_interval_ms
        max_records = self.settings.max_poll_records
        messages = consumer.consume(num_messages=max_records, timeout=0)
        if not messages:
            timeout = CONSUME_TIMEOUT_S
            txn = self.txn
            if txn is not None and txn.pending:
                timeout = min(timeout, max(0.0, txn.due_in(now, interval_ms)))
            if timeout > 0:
                messages = consumer.consume(num_messages=max_records, timeout=timeout)
        self._raise_async_error()
        if messages:
            try:
                self.process_batch(messages)
            except AbortableKafkaError as exc:
                cycle.abort_after_failure(str(exc))
                return
        if self.committer.inflight is None:  # meanwhile delivery reports are the committer thread's
            producer.poll(0)
        self.flow.producer_queue(len(producer))
        txn = self.txn
        if txn is not None and txn.pending:  # nothing processed -> nothing to commit
            now = time.monotonic()  # after consume + processing: commit as soon as the interval is up
            if txn.pending >= self.settings.batch_size or txn.due_in(now, interval_ms) <= 0:
                cycle.commit_due()
        if now - self._last_lag_refresh >= LAG_REFRESH_S:
            self._last_lag_refresh = now
            if self._rebalance is not None:
                self._rebalance.check_membership(consumer, self.settings.input_topics, now)
            key_count = getattr(self.pipeline, "state_key_count", None)  # optional in PipelineLike fakes
            self.telemetry.refresh_gauges(consumer, len(producer), self.partitions, key_count)

    def process_batch(self, messages: list[Message]) -> None:
        """Run a consumed batch through the Pipeline and produce its outputs: the hot loop.

        Kept as one flat function (100k msgs/s): Kafka and dict lookups are bound once per batch,
        partition bookkeeping happens when the partition changes (records come in runs per
        partition), headers are passed only when a record has any (dead letters), and metrics are
        aggregated and published once per batch. Exceptions of ``produce`` go to the writer. While a
        commit is in flight the outputs are staged in the (staged) transaction instead.
        """
        if self.partitions.replaying:
            messages = self.recovery.replay(messages)
        ctx = self._context()
        cycle = self._commits()
        produce = ctx.producer.produce
        recover = ctx.writer.recover
        process = self.pipeline.process
        topic_for_role = self.topic_for_role
        by_tp = self.partitions.by_tp
        txn = self.txn
        staging = self.committer.inflight is not None
        buffer = txn.buffer if txn is not None else None
        processed: dict[str, int] = {}
        outputs: dict[str, int] = {}
        special: list[tuple[str, OutputLike]] = []  # dead letters and signals: counted after the loop
        started = time.perf_counter()
        count = 0
        last_tp: TP | None = None
        part = None
        timestamps = txn.timestamps if txn is not None else []
        try:
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if raise_if_fatal(err):
                        self.log.warning("consumer error", error=err.str(), code=err.code())
                    continue
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                if topic is None or partition is None or offset is None:
                    continue
                tp = (topic, partition)
                if tp != last_tp:
                    found = by_tp.get(tp)
                    if found is None:
                        continue  # fetched before a revoke; the new owner processes it
                    part = found
                    part.first_record(offset)  # rewind point of an abort
                    if txn is None:
                        txn = cycle.txn = Transaction.stage(ctx) if staging else Transaction.begin(ctx)
                        timestamps, buffer = txn.timestamps, txn.buffer
                    txn.dirty[tp] = part
                    last_tp = tp
                ts = msg.timestamp()[1]
                for record in process(msg.value(), topic=topic, partition=partition, offset=offset,
                                      timestamp_ms=ts, key=msg.key()):
                    out_topic = topic_for_role[record.role]
                    if buffer is not None:
                        buffer.append((record, topic, partition, offset, ts))
                    else:
                        try:
                            if record.headers:
                                produce(out_topic, value=record.value, key=record.key,
                                        headers=list(record.headers))
                            else:
                                produce(out_topic, value=record.value, key=record.key)
                        except (BufferError, KafkaException) as exc:
                            record = recover(exc, record, topic, partition, offset, ts)
                            out_topic = topic_for_role[record.role]
                    outputs[out_topic] = outputs.get(out_topic, 0) + 1
                    role = record.role
                    if role == "dead_letters" or role == "smc_signals":
                        special.append((topic, record))
                part.position = offset + 1  # type: ignore[union-attr]
                processed[topic] = processed.get(topic, 0) + 1
                count += 1
                if ts > 0:
                    timestamps.append(ts)
        except BaseException:
            # An abort mid-batch must rewind the records not processed yet too.
            for msg in messages:
                p = by_tp.get((msg.topic(), msg.partition())) if msg.error() is None else None  # type: ignore[arg-type]
                if p is not None:
                    p.first_record(msg.offset())  # type: ignore[arg-type]
            raise
        finally:
            if txn is not None:
                txn.pending += count
                txn.written.update(outputs)
        if count:
            self.telemetry.batch(count, time.perf_counter() - started, processed, outputs, special)

    # ------------------------------------------------------------------------------------------------
    # commit, abort and the pause state: the LoopControl the rebalance handler uses

    @property
    def paused(self) -> bool:
        return self.flow.paused

    def has_uncommitted(self, *, including_snapshots: bool) -> bool:
        return self._commits().has_uncommitted(including_snapshots=including_snapshots)

    def commit(self, *, snapshot: bool = False) -> None:
        self._commits().commit(snapshot=snapshot)

    def abort(self, reason: str) -> None:
        self._commits().abort(reason)
