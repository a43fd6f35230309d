"""One stream processor: a consumer, a (transactional) producer and a Pipeline, in one loop.

The story of a pass: consume a batch -> run every record through the Pipeline -> produce its outputs
(dead letters included) -> when the commit interval or batch size is reached, commit (see
``_commit`` for the numbered steps). Kafka errors follow librdkafka's classes (``errors.py``):
retriable -> retried within a deadline, abortable -> ``_abort`` (abort, roll state back to the last
snapshot, rewind, replay up to the committed offset), fatal/fenced -> the loop ends with a non-zero
exit code.

State is owned per source partition: on assignment it is restored from the changelog before any
record of the partition is processed; on revocation the open transaction is committed first and
the partition's state dropped; on loss the transaction is aborted.

Snapshots are written less often than commits (``snapshot_interval_ms``, see ``replay.py``): the
state of a partition is known at its last snapshot offset S_p, the outputs are committed up to C_p.
After a restore or an abort the records of [S_p, C_p) are *replayed*: run through the Pipeline with
their outputs (dead letters included) discarded, since they were committed already.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from smc_runtime import client_settings
from smc_runtime.config import KafkaSettings, ProcessingMode, ProcessorSettings
from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka import clients, topics
from smc_runtime.kafka.backpressure import Backpressure, FlowAction
from smc_runtime.kafka.breaker import BreakerState, CircuitBreaker
from smc_runtime.kafka.errors import (
    AbortableKafkaError,
    ErrorClass,
    FatalKafkaError,
    RetriesExhaustedError,
    call_with_retry,
    classify,
    kafka_error_of,
)
from smc_runtime.kafka.replay import partitions_due, plan_resume, snapshot_phase
from smc_runtime.logs import get_logger
from smc_runtime.service.metrics import RuntimeMetrics
from smc_runtime.service.status import ProcessorState, ProcessorStatus

TP = tuple[str, int]
StateId = tuple[str, int, str]

KAFKA_CALL_TIMEOUT_S = 10.0
RETRY_DEADLINE_S = 60.0  # outlasts a broker restart
ABORT_FLUSH_S = 5.0  # in-flight requests settle before an abort (see _abort)
LAG_REFRESH_S = 1.0
CONSUME_TIMEOUT_S = 0.01
E2E_SAMPLES_PER_COMMIT = 64  # end-to-end latency observations per transaction (see _latency_sample)
EXIT_FATAL = 3
EXIT_CRASHED = 4
OUTAGE_RETRY_S = 5.0  # one round of retries of a call that waits for the broker to come back
TOPIC_RECHECK_S = 5.0  # missing output topics: how often to look again
CLIENT_ERROR_LOG_S = 10.0  # a non-fatal client error code is logged at most this often
MAX_HEADER_BYTES = 1_024  # per header value of a replacement dead letter (see _replace_oversized)


class OutputLike(Protocol):
    @property
    def role(self) -> str: ...
    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...
    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]: ...


class PipelineLike(Protocol):
    """The contract of ``smc_runtime.pipeline.Pipeline`` that the loop relies on."""

    def process(self, value: bytes | None, *, topic: str, partition: int, offset: int,
                timestamp_ms: int, key: bytes | None = None) -> Sequence[OutputLike]: ...
    def touched(self) -> set[tuple[str, int, str]]: ...
    def snapshot(self, topic: str, partition: int, state_key: str) -> bytes | None: ...
    def restore(self, topic: str, partition: int, state_key: str, data: bytes) -> None: ...
    def state_keys(self, topic: str, partition: int) -> list[str]: ...
    def drop_partition(self, topic: str, partition: int) -> None: ...


def _header(headers: tuple[tuple[str, bytes], ...], name: str) -> str:
    for key, value in headers:
        if key == name:
            return value.decode("utf-8", errors="replace")
    return "unknown"


def _latency_sample(timestamps: list[int]) -> list[int]:
    """At most E2E_SAMPLES_PER_COMMIT evenly spaced record timestamps, always with the oldest
    (the worst latency of the transaction): one histogram observation per record costs ~1 us each,
    a tenth of the per-record budget at 100k msgs/s, and the distribution survives sampling."""
    if len(timestamps) <= E2E_SAMPLES_PER_COMMIT:
        return timestamps
    step = len(timestamps) / E2E_SAMPLES_PER_COMMIT
    sample = [timestamps[int(i * step)] for i in range(E2E_SAMPLES_PER_COMMIT)]
    sample.append(min(timestamps))
    return sample


@dataclass(frozen=True)
class _Replacement:
    """A dead letter standing in for an output record the producer refused as too large."""

    role: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def _produce_error(exc: KafkaException) -> FatalKafkaError | AbortableKafkaError:
    """A produce() failure as the loop's error class: fatal stops the loop, the rest aborts."""
    error = exc.args[0]
    if classify(error) is ErrorClass.FATAL:
        return FatalKafkaError(f"produce: {error.str()}")
    return AbortableKafkaError(f"produce: {error.str()}")


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
        self.changelog_topic = settings.changelog_topic_name()
        self.changelog_partitions = 1
        self.topic_policy = topic_policy or topics.TopicPolicy.of(settings)
        # The largest record the Pipeline produces (dead letters capped to fit, snapshots validated
        # against it): the producer's message.max.bytes unless kafka_clients.producer sets one.
        self.record_bytes = settings.max_record_bytes
        self.max_message_bytes = self.record_bytes  # the producer's, set at start
        self._stop = threading.Event()
        # Partition bookkeeping (all keyed by source (topic, partition)).
        self._assigned: set[TP] = set()
        self._positions: dict[TP, int] = {}        # next offset to consume (processed so far)
        self._committed: dict[TP, int] = {}        # rewind point: offset after the last commit
        self._dirty: set[TP] = set()               # processed since the last commit
        self._touched: set[StateId] = set()        # state keys changed since the last snapshot
        self._snapshots: dict[TP, dict[str, bytes]] = defaultdict(dict)  # state at the last snapshot
        self._snapshot_offsets: dict[TP, int] = {}  # offset that state reflects (rollback point)
        self._persisted: set[TP] = set()           # partitions with a snapshot in the changelog
        self._unsnapshotted: set[TP] = set()       # state changed since the last snapshot
        self._replay_until: dict[TP, int] = {}     # records below: replayed, outputs suppressed
        self._snapshot_due_at: dict[TP, float] = {}  # per partition (staggered, see snapshot_phase)
        self._in_txn = False
        self._txn_started = 0.0
        self._pending = 0
        self._txn_timestamps: list[int] = []
        self._paused_by: set[str] = set()
        self._delivery_errors = 0
        self._failed = False
        self._async_error: BaseException | None = None
        self._last_lag_refresh = 0.0
        self._client_errors: dict[int, tuple[float, int]] = {}  # code -> (last logged, suppressed since)
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._restore_consumer: Consumer | None = None
        self._admin: AdminClient | None = None
        m = metrics
        self._m_processed = m.messages_processed
        self._m_outputs = m.output_records
        self._m_latency = m.processing_latency.labels(name)
        self._m_e2e = m.end_to_end_latency.labels(name)
        self._m_commit = m.commit_latency.labels(name)
        self._m_committed = m.transactions_committed.labels(name)
        self._m_replayed = m.state_replayed_records.labels(name)

    # ------------------------------------------------------------------------------------------------
    # lifecycle

    def run(self, stop: threading.Event) -> int:
        self._stop = stop
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
        except FatalKafkaError as exc:
            self._fail(f"fatal Kafka error: {exc}")
            return EXIT_FATAL
        except KafkaException as exc:  # e.g. poll() raising the producer's fatal (fenced) error
            error = kafka_error_of(exc)
            if classify(error) is ErrorClass.FATAL:
                self._fail(f"fatal Kafka error: {error.str()}")
                return EXIT_FATAL
            self.log.exception("processor crashed", error=error.str())
            self._fail(f"crashed: {error.str()}")
            return EXIT_CRASHED
        except Exception as exc:
            self.log.exception("processor crashed", error=str(exc))
            self._fail(f"crashed: {exc}")
            return EXIT_CRASHED

    def _fail(self, reason: str) -> None:
        self._failed = True
        self.status.set_state(ProcessorState.FAILED, reason)
        self.log.error("processor stopped on error", error=reason)
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception as exc:  # the process exits anyway; leaving the group is best effort
                self.log.warning("consumer close failed", error=str(exc))

    def _start(self) -> bool:
        """Clients, topics and the transactional producer; False if stopped before it was done.

        Waits (alive, not ready) while the broker is unreachable or topics are missing: a restart
        would only start into the same outage (issue 12, items 8 and 10)."""
        self.status.set_state(ProcessorState.STARTING)
        user = self.settings.kafka_clients  # kafka_clients tunables over the runtime's settings
        base = client_settings.admin_config(clients.base_settings(self.kafka, f"{self.client_id}.admin"),
                                            user.admin)
        admin = AdminClient(base, logger=logging.getLogger("smc_runtime.librdkafka.admin"))
        self._admin = admin
        check = self._prepare_topics(admin)
        if check is None:
            return False
        self.changelog_partitions = check.changelog_partitions
        runtime_producer = clients.producer_settings(self.kafka, self.settings, self.client_id, self.txn_id)
        runtime_producer["message.max.bytes"] = topics.producer_max_message_bytes(check, self.record_bytes)
        pconf = client_settings.producer_config(runtime_producer, user.producer)
        self.max_message_bytes = int(pconf["message.max.bytes"])
        self._check_record_limits(check)
        pconf["on_delivery"] = self._on_delivery_error
        pconf["error_cb"] = self._on_client_error
        pconf["logger"] = logging.getLogger("smc_runtime.librdkafka.producer")
        self._producer = self._producer_factory(pconf)
        if self.eos:
            # Fences any previous producer with this transactional.id and aborts its open transaction.
            producer = self._producer
            if not self._until_broker_answers(lambda: producer.init_transactions(KAFKA_CALL_TIMEOUT_S),
                                              "init_transactions", ProcessorState.STARTING):
                return False
        rconf = clients.restore_consumer_settings(self.kafka, self.settings, f"{self.client_id}.restore")
        rconf["logger"] = logging.getLogger("smc_runtime.librdkafka.restore")
        self._restore_consumer = Consumer(rconf)
        cconf = client_settings.consumer_config(
            clients.consumer_settings(self.kafka, self.settings, self.client_id), user.consumer)
        cconf["error_cb"] = self._on_client_error
        cconf["logger"] = logging.getLogger("smc_runtime.librdkafka.consumer")
        self._consumer = Consumer(cconf)
        self._consumer.subscribe(self.settings.input_topics, on_assign=self._on_assign,
                                 on_revoke=self._on_revoke, on_lost=self._on_lost)
        self.status.set_state(ProcessorState.RUNNING)
        self.log.info("processor started", transactional_id=self.txn_id if self.eos else None,
                      mode=self.settings.processing_mode.value, inputs=self.settings.input_topics,
                      changelog=self.changelog_topic, changelog_partitions=self.changelog_partitions,
                      message_max_bytes=self.max_message_bytes)
        return True

    def _check_record_limits(self, check: topics.TopicCheck) -> None:
        """Warn when the topics or the producer settings are smaller than ``max_record_bytes``: larger
        records are then replaced by capped dead letters (``_replace_oversized``), and a producer
        limit above a topic's means the broker refuses the record and the transaction aborts."""
        smallest = check.smallest_max_message_bytes
        fits = None if smallest is None else smallest - topics.BATCH_FRAMING_BYTES
        if fits is not None and self.max_message_bytes > fits:
            self.log.error("producer message.max.bytes exceeds a topic's max.message.bytes: records of "
                           "that size are refused by the broker and abort their transaction",
                           message_max_bytes=self.max_message_bytes, topic_limits=check.max_message_bytes)
        elif self.max_message_bytes < self.record_bytes:
            small = {t: n for t, n in check.max_message_bytes.items()
                     if n - topics.BATCH_FRAMING_BYTES < self.record_bytes}
            self.log.warning("records are limited below max_record_bytes by the topics' max.message.bytes: "
                             "larger outputs become capped dead letters (output_too_large)",
                             max_record_bytes=self.record_bytes, message_max_bytes=self.max_message_bytes,
                             topic_limits=small)

    def _prepare_topics(self, admin: AdminClient) -> topics.TopicCheck | None:
        """Check (and create, as the policy allows) the output, dead-letter and changelog topics;
        wait, re-checking every TOPIC_RECHECK_S, while some are missing or the broker does not
        answer. None if asked to stop meanwhile.

        While waiting: state ``waiting_for_topics`` (not ready, alive), ``/status`` lists
        ``missing_topics``, and one ERROR line names them (again only if the set changes)."""
        outputs = sorted(set(self.topic_for_role.values()))
        reported: tuple[str, ...] | None = None
        unreachable_logged = False
        while True:
            self.status.beat(time.monotonic())
            try:
                check = topics.check_topics(admin, outputs, self.changelog_topic, self.settings.input_topics,
                                            self.topic_policy, self.record_bytes)
            except KafkaException as exc:
                if not unreachable_logged:
                    self.log.warning("broker not answering at start: waiting", error=str(exc))
                    unreachable_logged = True
                self.status.set_state(ProcessorState.STARTING, f"broker not answering: {exc}")
                if not self._wait(TOPIC_RECHECK_S):
                    return None
                continue
            if check.created:
                self.log.info("created missing topics", topics=check.created,
                              partitions=self.topic_policy.partitions or "widest input",
                              replication_factor=self.topic_policy.replication_factor)
            self.metrics.missing_topics.labels(self.name).set(len(check.missing))
            with self.status.lock:
                self.status.missing_topics = list(check.missing)
                self.status.created_topics = sorted({*self.status.created_topics, *check.created})
            if not check.missing:
                if reported:
                    self.log.info("missing topics now exist", topics=list(reported))
                return check
            if tuple(check.missing) != reported:
                reported = tuple(check.missing)
                self.log.error("topics missing: not consuming until they exist", missing_topics=check.missing,
                               create_missing=self.topic_policy.create_missing, errors=check.errors or None,
                               recheck_seconds=TOPIC_RECHECK_S)
            reason = f"missing topics: {', '.join(check.missing)}"
            self.status.set_state(ProcessorState.WAITING_FOR_TOPICS, reason)
            if not self._wait(TOPIC_RECHECK_S):
                return None

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` beating the heartbeat; False if the processor is asked to stop."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            now = time.monotonic()
            self.status.beat(now)
            if now >= deadline:
                return True
            self._stop.wait(min(0.5, deadline - now))
        return False

    def _until_broker_answers(self, op: Callable[[], object], what: str, state: ProcessorState) -> bool:
        """Run a call that may be repeated (init_transactions, abort_transaction) until it succeeds.

        While it fails with retriable errors only and the broker does not answer a metadata request
        (it is down or unreachable) the processor stays alive and not ready in ``state`` (the breaker
        open), retrying: a restart would only restart into the same outage. Once the broker answers,
        the call gets RETRY_DEADLINE_S more; a client still failing then is stuck (librdkafka's
        transaction coordinator state after an outage), and a restart, now into a working broker, is
        the cure: FatalKafkaError. Abortable and fatal errors propagate. False if asked to stop."""
        outage_started: float | None = None
        answering_since: float | None = None
        while True:
            try:
                call_with_retry(op, what, OUTAGE_RETRY_S, self._log_retry(what))
            except RetriesExhaustedError as exc:
                now = time.monotonic()
                if self._broker_answers():
                    answering_since = answering_since or now
                    if now - answering_since > RETRY_DEADLINE_S:
                        raise FatalKafkaError(f"{what}: the broker answers but the call still fails after "
                                              f"{RETRY_DEADLINE_S:.0f}s: {exc}") from exc
                else:
                    answering_since = None
                if outage_started is None:
                    outage_started = now
                    self.log.error("broker unreachable: retrying until it answers", call=what, error=str(exc))
                if state is ProcessorState.BREAKER_OPEN:
                    self.breaker.trip(now)
                    self._publish_breaker()
                self.status.set_state(state, f"{what}: broker unreachable for {now - outage_started:.0f}s")
                if self._stop.is_set():
                    return False
                continue
            if outage_started is not None:
                self.log.info("broker answers again", call=what,
                              outage_seconds=round(time.monotonic() - outage_started, 1))
            return True

    def _broker_answers(self) -> bool:
        """A metadata request on the admin client (its own connection) gets an answer."""
        if self._admin is None:
            return False
        try:
            self._admin.list_topics(timeout=3.0)
            return True
        except KafkaException:
            return False

    def _close_clients(self) -> None:
        """Stopped before the loop ran: close whatever was created (nothing was consumed)."""
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
        if self._restore_consumer is not None:
            with contextlib.suppress(Exception):
                self._restore_consumer.close()

    def _shutdown(self) -> None:
        """Graceful stop: commit what was processed with a snapshot (abort if that fails), leave the
        group, flush."""
        self.status.set_state(ProcessorState.STOPPING)
        consumer, producer = self._require()
        if self._dirty or self._unsnapshotted:
            self._commit(snapshot=True)
        consumer.close()  # leaves the group now (revoke callback: nothing left to commit)
        producer.flush(KAFKA_CALL_TIMEOUT_S)
        if self._restore_consumer is not None:
            self._restore_consumer.close()
        self.log.info("processor stopped", processed=self.status.messages_processed)

    def _require(self) -> tuple[Consumer, Producer]:
        if self._consumer is None or self._producer is None:
            raise RuntimeError("processor not started")
        return self._consumer, self._producer

    # ------------------------------------------------------------------------------------------------
    # the loop

    def _step(self) -> None:
        consumer, producer = self._require()
        now = time.monotonic()
        self.status.beat(now)
        if self._async_error is not None:
            raise self._async_error
        if not self.breaker.allows_work(now):
            self._pause("breaker")
            # Serves rebalance callbacks; a record that still slips through is put back, not lost.
            for stray in consumer.consume(num_messages=1, timeout=0.1):
                topic, partition, offset = stray.topic(), stray.partition(), stray.offset()
                if stray.error() is None and topic and partition is not None and offset is not None:
                    consumer.seek(TopicPartition(topic, partition, offset))
            producer.poll(0)
            self._publish_breaker()
            return
        self._resume("breaker")
        # consume() waits for the whole timeout unless max_poll_records arrive: keep it short (a
        # latency floor at live rates) and never past the moment the open transaction is due.
        timeout = CONSUME_TIMEOUT_S
        if self._pending:
            due_in = self._txn_started + self.settings.commit_interval_ms / 1000 - now
            timeout = min(timeout, max(0.0, due_in))
        messages = consumer.consume(num_messages=self.settings.max_poll_records, timeout=timeout)
        if self._async_error is not None:
            raise self._async_error
        if messages:
            try:
                self._process_batch(messages)
            except AbortableKafkaError as exc:
                self._abort(str(exc))
                self.breaker.record_failure(time.monotonic())
                self._publish_breaker()
                return
        producer.poll(0)
        self._apply_backpressure(len(producer))
        if self._pending:  # nothing processed -> no transaction: an empty interval commits nothing
            now = time.monotonic()  # after consume + processing: commit as soon as the interval is up
            if (self._pending >= self.settings.batch_size
                    or (now - self._txn_started) * 1000 >= self.settings.commit_interval_ms):
                self._commit()
        if now - self._last_lag_refresh >= LAG_REFRESH_S:
            self._last_lag_refresh = now
            self._refresh_gauges(consumer, producer)

    def _process_batch(self, messages: list[Message]) -> None:
        """Run a consumed batch through the Pipeline and produce its outputs.

        The per-record path is kept flat (the hot loop at 100k msgs/s): Kafka and dict lookups are
        bound once per batch, headers are passed only when a record has any (dead letters), and
        metrics are aggregated and published once per batch.
        """
        if self._replay_until:
            messages = self._replay(messages)
        _, producer = self._require()
        produce = producer.produce
        process = self.pipeline.process
        topic_for_role = self.topic_for_role
        assigned = self._assigned
        positions = self._positions
        committed = self._committed
        snapshot_offsets = self._snapshot_offsets
        dirty = self._dirty
        timestamps = self._txn_timestamps
        processed: dict[str, int] = defaultdict(int)
        outputs: dict[str, int] = defaultdict(int)
        special: list[tuple[str, OutputLike]] = []  # dead letters and signals: counted after the loop
        started = time.perf_counter()
        count = 0
        last_tp: TP | None = None
        try:
            for msg in messages:
                err = msg.error()
                if err is not None:
                    self._on_message_error(err)
                    continue
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                if topic is None or partition is None or offset is None:
                    continue
                tp = (topic, partition)
                if tp != last_tp:
                    if tp not in assigned:
                        continue  # fetched before a revoke; the new owner processes it
                    committed.setdefault(tp, offset)  # rewind point of an abort
                    snapshot_offsets.setdefault(tp, offset)  # no snapshot yet: empty state before it
                    last_tp = tp
                if not self._in_txn:
                    self._begin()
                ts = msg.timestamp()[1]
                for record in process(msg.value(), topic=topic, partition=partition, offset=offset,
                                      timestamp_ms=ts, key=msg.key()):
                    role = record.role
                    out_topic = topic_for_role[role]
                    headers = record.headers
                    try:
                        if headers:
                            produce(out_topic, value=record.value, key=record.key, headers=list(headers))
                        else:
                            produce(out_topic, value=record.value, key=record.key)
                    except BufferError:  # local queue full: the slow path waits it out
                        self._produce(out_topic, record.key, record.value, headers or None)
                    except KafkaException as exc:  # too large for the producer: a capped dead letter
                        record = self._replace_oversized(exc, record, topic, partition, offset, ts)
                        role = record.role
                        out_topic = topic_for_role[role]
                        self._produce(out_topic, record.key, record.value, record.headers)
                    outputs[out_topic] += 1
                    if role == "dead_letters" or role == "smc_signals":
                        special.append((topic, record))
                positions[tp] = offset + 1
                dirty.add(tp)
                processed[topic] += 1
                count += 1
                if ts > 0:
                    timestamps.append(ts)
        except BaseException:
            # An abort mid-batch must rewind the records not processed yet too.
            for msg in messages:
                if msg.error() is None and (msg.topic(), msg.partition()) in assigned:
                    committed.setdefault((msg.topic(), msg.partition()), msg.offset())  # type: ignore[arg-type]
                    snapshot_offsets.setdefault((msg.topic(), msg.partition()), msg.offset())  # type: ignore[arg-type]
            raise
        finally:
            self._pending += count
        if not count:
            return
        elapsed = time.perf_counter() - started
        per_message = elapsed / count
        failed = self._count_special(special)
        for topic, n in processed.items():
            self._m_processed.labels(self.name, topic).inc(n)
        for topic, n in outputs.items():
            self._m_outputs.labels(self.name, topic).inc(n)
        self._m_latency.observe(per_message)  # one observation per batch: the mean per message
        self.status.record_batch(count, failed, sum(outputs.values()), per_message * 1000)

    def _replay(self, messages: list[Message]) -> list[Message]:
        """Replay the records below their partition's ``replay_until`` and return the others.

        A replayed record runs through the Pipeline (rebuilding the state between the last snapshot
        and the committed offset) but its outputs and dead letters are discarded: they were committed
        before the restore or abort. Its position advances; it neither opens a transaction nor makes
        the partition dirty (its offset is committed already), and it is not counted as processed.
        Only called while some partition replays, so the normal per-record path stays as it is.
        """
        replay_until = self._replay_until
        process = self.pipeline.process
        positions = self._positions
        assigned = self._assigned
        live: list[Message] = []
        count = 0
        for msg in messages:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if msg.error() is not None or topic is None or partition is None or offset is None:
                live.append(msg)
                continue
            tp = (topic, partition)
            until = replay_until.get(tp)
            if until is None:
                live.append(msg)
                continue
            if tp not in assigned:
                continue
            if offset >= until:  # the record at until - 1 may be a transaction marker: never seen
                self._replay_done(tp)
                live.append(msg)
                continue
            process(msg.value(), topic=topic, partition=partition, offset=offset,
                    timestamp_ms=msg.timestamp()[1], key=msg.key())
            positions[tp] = offset + 1
            self._unsnapshotted.add(tp)
            count += 1
            if offset + 1 >= until:
                self._replay_done(tp)
        if count:
            self._m_replayed.inc(count)
            with self.status.lock:
                self.status.replayed_records += count
        return live

    def _start_replay(self, tp: TP, start: int | None, until: int | None) -> None:
        if until is None:
            self._replay_until.pop(tp, None)
        else:
            self._replay_until[tp] = until
        with self.status.lock:
            if until is None:
                self.status.replaying.pop(tp, None)
            else:
                self.status.replaying[tp] = (start if start is not None and start >= 0 else 0, until)

    def _replay_done(self, tp: TP) -> None:
        until = self._replay_until.pop(tp, None)
        with self.status.lock:
            self.status.replaying.pop(tp, None)
        self.log.info("state replay finished", partition=f"{tp[0]}[{tp[1]}]", until=until)

    def _count_special(self, special: list[tuple[str, OutputLike]]) -> int:
        """Dead-letter and signal metrics of one batch; returns the number of dead letters."""
        failed: dict[tuple[str, str], int] = defaultdict(int)
        patterns: dict[str, int] = defaultdict(int)
        for topic, record in special:
            if record.role == "dead_letters":
                reason = _header(record.headers, "reason")
                failed[(topic, reason)] += 1
                if reason == "plugin_error":
                    self.metrics.plugin_failures.labels(
                        self.name, f"{_header(record.headers, 'plugin_kind')}:"
                                   f"{_header(record.headers, 'plugin')}").inc()
            else:
                patterns[getattr(record, "pattern", "") or "unknown"] += 1
        for (topic, reason), n in failed.items():
            self.metrics.messages_failed.labels(self.name, topic, reason).inc(n)
            self.metrics.dead_letters.labels(self.name, reason).inc(n)
        for pattern, n in patterns.items():
            self.metrics.smc_patterns.labels(self.name, pattern).inc(n)
        return sum(failed.values())

    def _on_message_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            raise FatalKafkaError(f"consumer: {err.str()}")
        self.log.warning("consumer error", error=err.str(), code=err.code())

    def _begin(self) -> None:
        _, producer = self._require()
        if self.eos:
            try:
                producer.begin_transaction()
            except KafkaException as exc:
                raise FatalKafkaError(f"begin_transaction: {exc}") from exc
        self._in_txn = True
        self._txn_started = time.monotonic()

    def _replace_oversized(self, exc: KafkaException, record: OutputLike, topic: str, partition: int,
                           offset: int, timestamp_ms: int) -> _Replacement:
        """The dead letter that replaces a record ``produce()`` refused with MSG_SIZE_TOO_LARGE;
        any other produce error is raised as the loop's error class.

        Last line of defence behind the Pipeline's own dead-letter cap: a record larger than the
        producer's message.max.bytes (which ``topics.producer_max_message_bytes`` keeps within every
        topic's max.message.bytes) would otherwise abort the transaction on every replay. The
        decision depends only on the record and the configured limit, so a replay decides the same.
        A dead letter keeps its headers (each cut to MAX_HEADER_BYTES); another output becomes a
        ``output_too_large`` dead letter with the source coordinates. Either way the value is cut to
        what fits, with headers ``truncated`` and ``original_size``."""
        if kafka_error_of(exc).code() != KafkaError.MSG_SIZE_TOO_LARGE:
            raise _produce_error(exc) from exc
        original = record.value or b""
        if record.role == "dead_letters":
            kept = [(k, v[:MAX_HEADER_BYTES]) for k, v in record.headers
                    if k not in ("truncated", "original_size")]
        else:
            kept = [("reason", b"output_too_large"),
                    ("error", f"{record.role} record of {len(original)} bytes exceeds the producer's "
                              f"message.max.bytes {self.max_message_bytes}".encode()),
                    ("original_role", record.role.encode()),
                    ("source_topic", topic.encode()), ("source_partition", str(partition).encode()),
                    ("source_offset", str(offset).encode()), ("source_timestamp", str(timestamp_ms).encode())]
        headers = (*kept, ("truncated", b"true"), ("original_size", str(len(original)).encode()))
        key = (record.key or b"")[:MAX_HEADER_BYTES]
        overhead = len(key) + sum(len(k) + len(v) + 16 for k, v in headers) + topics.BATCH_FRAMING_BYTES
        value = original[:max(0, self.max_message_bytes - overhead)]
        self.log.warning("output record too large for the producer: replaced by a capped dead letter",
                         role=record.role, size=len(original), message_max_bytes=self.max_message_bytes,
                         source=f"{topic}[{partition}]@{offset}")
        return _Replacement("dead_letters", key, value, headers)

    def _produce(self, topic: str, key: bytes | None, value: bytes | None,
                 headers: Sequence[tuple[str, str | bytes | None]] | None,
                 partition: int | None = None) -> None:
        """Produce one record; a full local queue is waited out (never a BufferError to the caller)."""
        hdrs: list[tuple[str, str | bytes | None]] | None = list(headers) if headers else None
        _, producer = self._require()
        while True:
            try:
                if partition is None:
                    producer.produce(topic, value=value, key=key, headers=hdrs)
                else:
                    producer.produce(topic, value=value, key=key, headers=hdrs, partition=partition)
                return
            except BufferError:
                self._apply_backpressure(len(producer))
                producer.poll(0.05)
            except KafkaException as exc:
                raise _produce_error(exc) from exc

    # ------------------------------------------------------------------------------------------------
    # commit and abort

    def _commit(self, snapshot: bool = False) -> None:
        """Make everything processed since the last commit visible, atomically.

        1. If a snapshot is due (``snapshot_interval_ms`` since the last one, ``snapshot`` = shutdown
           or revocation, or a processed partition without any snapshot yet): write every state key
           touched since the last snapshot into the changelog, tagged with the source offset it
           reflects, plus one marker per changed partition (same transaction as the outputs).
        2. Send the consumed positions of the processed partitions with fresh group metadata
           (``send_offsets_to_transaction``; at-least-once: flush, then commit the offsets).
        3. Commit the transaction (this also flushes and checks every produced record).
        4. The new offsets become the rewind point and, after a snapshot, the snapshots the state
           rollback point; metrics and status follow.
        Any abortable failure on the way -> ``_abort``; fatal errors propagate and stop the loop.
        """
        consumer, producer = self._require()
        self._unsnapshotted |= self._dirty
        if not self._dirty and not (snapshot and self._unsnapshotted & self._assigned):
            return
        started = time.perf_counter()
        now = time.monotonic()
        changed = self._unsnapshotted & self._assigned
        due = partitions_due(now, self._snapshot_due_at, changed, self.settings.snapshot_interval_ms,
                             forced=changed if snapshot else self._dirty - self._persisted)
        take = bool(due)
        self._touched |= self.pipeline.touched()
        snapshots: dict[StateId, bytes | None] = {}
        markers: dict[TP, int] = {}
        try:
            if not self._in_txn:  # a snapshot-only commit: nothing processed since the last one
                self._begin()
            if take:
                snapshots, markers = self._write_snapshots(due)                   # 1
            offsets = [TopicPartition(t, p, self._positions[(t, p)]) for t, p in sorted(self._dirty)]
            if self.eos:
                # Not retried: after a broker restart a resumed send_offsets call can block for
                # good; aborting and rewinding is always safe and takes a fresh path.
                if offsets:
                    call_with_retry(lambda: producer.send_offsets_to_transaction(  # 2
                        offsets, consumer.consumer_group_metadata(), KAFKA_CALL_TIMEOUT_S),
                        "send_offsets_to_transaction", 0.0)
                call_with_retry(lambda: producer.commit_transaction(KAFKA_CALL_TIMEOUT_S),  # 3
                                "commit_transaction", RETRY_DEADLINE_S, self._log_retry("commit_transaction"))
            else:
                self._delivery_errors = 0
                if producer.flush(RETRY_DEADLINE_S) > 0 or self._delivery_errors:
                    raise AbortableKafkaError(f"{self._delivery_errors} deliveries failed or timed out")
                if offsets:
                    call_with_retry(lambda: consumer.commit(offsets=offsets, asynchronous=False),
                                    "commit offsets", RETRY_DEADLINE_S, self._log_retry("commit"))
        except AbortableKafkaError as exc:
            self._abort(str(exc))
            self.breaker.record_failure(time.monotonic())
            self._publish_breaker()
            return
        now_wall_ms = time.time() * 1000                                          # 4
        if take:
            for (t, p, key), data in snapshots.items():
                if data is None:
                    self._snapshots[(t, p)].pop(key, None)
                else:
                    self._snapshots[(t, p)][key] = data
            self._snapshot_offsets.update(markers)
            self._persisted.update(markers)
            self._touched = {key for key in self._touched if (key[0], key[1]) not in due}
            self._unsnapshotted -= due
            interval_s = self.settings.snapshot_interval_ms / 1000
            for tp in due:
                self._snapshot_due_at[tp] = now + interval_s
        committed = {tp: self._positions[tp] for tp in self._dirty}
        self._committed.update(committed)
        for ts in _latency_sample(self._txn_timestamps):
            self._m_e2e.observe(max(0.0, (now_wall_ms - ts) / 1000))
        self._m_commit.observe(time.perf_counter() - started)
        self._m_committed.inc()
        self.metrics.changelog_records.labels(self.name).inc(len(snapshots) + len(markers))
        self._end_txn()
        self.breaker.record_success()
        self._publish_breaker()
        with self.status.lock:
            self.status.last_commit_at = time.monotonic()
            self.status.last_commit_offsets.update(committed)
            self.status.transactions_committed += 1
        if self.log.is_enabled(logging.DEBUG):
            self.log.debug("committed", offsets={f"{t}[{p}]": o for (t, p), o in committed.items()},
                           snapshots=len(snapshots), markers=len(markers))

    def _write_snapshots(self, due: set[TP]) -> tuple[dict[StateId, bytes | None], dict[TP, int]]:
        """Produce the snapshot of every key of the ``due`` partitions touched since their last
        snapshot and a marker (the offset the snapshot reflects, see ``changelog.py``) per partition;
        returns both (the markers by source partition)."""
        _, producer = self._require()
        produce, snapshot = producer.produce, self.pipeline.snapshot
        topic, width = self.changelog_topic, self.changelog_partitions
        # The offset each partition's state reflects: its position, or, when it has not processed a
        # record since an abort rolled it back, the snapshot it was rolled back to.
        reflects = {tp: self._positions.get(tp, self._snapshot_offsets.get(tp, -1))
                    for tp in due}
        written: dict[StateId, bytes | None] = {}
        markers: dict[TP, int] = {}
        records: list[tuple[bytes, bytes | None, int, int, StateId | None]] = []
        for t, p, key in sorted(self._touched):
            if (t, p) not in due:
                continue
            data = snapshot(t, p, key)
            records.append((cl.changelog_key(t, p, key), data, p, reflects.get((t, p), -1), (t, p, key)))
            written[(t, p, key)] = data
        for (t, p), offset in sorted(reflects.items()):
            if offset >= 0:  # < 0: nothing consumed yet after a rollback to the partition's beginning
                records.append((cl.marker_key(t, p), cl.marker_value(offset), p, offset, None))
                markers[(t, p)] = offset
        for record_key, data, p, offset, state_id in records:
            headers: list[tuple[str, str | bytes | None]] = [*cl.source_offset_header(max(offset, 0))]
            partition = cl.changelog_partition(p, width)
            try:
                produce(topic, value=data, key=record_key, headers=headers, partition=partition)
            except BufferError:  # local queue full: the slow path waits it out
                self._produce(topic, record_key, data, headers, partition=partition)
            except KafkaException as exc:
                too_large = kafka_error_of(exc).code() == KafkaError.MSG_SIZE_TOO_LARGE
                if state_id is None or data is None or not too_large:
                    raise _produce_error(exc) from exc
                # A key whose state outgrew the record limit at run time (plugin state, SMC state past
                # its budget): aborting would replay into the same snapshot forever. The changelog
                # gets a tombstone instead: a restore starts this key afresh (its live state goes on).
                self._produce(topic, record_key, None, headers, partition=partition)
                written[state_id] = None
                self.metrics.snapshots_too_large.labels(self.name).inc()
                self.log.error("state snapshot too large for the changelog: key written as a tombstone "
                               "(a restore starts it afresh)", state_key=state_id[2], size=len(data),
                               partition=f"{state_id[0]}[{state_id[1]}]",
                               message_max_bytes=self.max_message_bytes)
        return written, markers

    def _end_txn(self) -> None:
        self._dirty.clear()
        self._pending = 0
        self._in_txn = False
        self._txn_timestamps.clear()

    def _abort(self, reason: str) -> None:
        """Abort the open transaction, roll state back to the last snapshot, rewind and replay.

        1. ``abort_transaction`` (exactly-once only): none of its records become visible.
        2. Every partition processed since the last commit (or still replaying) gets its state
           replaced by its last snapshot and is sought back to that snapshot's offset S_p; the
           records of [S_p, committed offset) are replayed with outputs suppressed (``_replay``).
           The other assigned partitions are sought back to their committed offset.
        """
        consumer, producer = self._require()
        self.log.warning("aborting transaction", reason=reason, partitions=len(self._dirty))
        if self.eos and self._in_txn:
            # Let requests already sent finish first: aborting with produce requests in flight
            # purges them and can leave librdkafka with a sequence gap in the next transaction
            # (OUT_OF_ORDER_SEQUENCE_NUMBER -> one more abort and an epoch bump). Their records
            # are aborted with the transaction either way.
            if self._async_error is None:  # a fenced/fatal producer goes straight to abort (and exit 3)
                try:
                    producer.flush(ABORT_FLUSH_S)
                except Exception as exc:  # fatal states surface again from abort_transaction below
                    self.log.warning("flush before abort failed", error=str(exc))
            # An abort that times out may be called again: while the broker is down it is retried
            # until the broker answers, alive with the breaker open (issue 12, item 8).
            try:
                aborted = self._until_broker_answers(lambda: producer.abort_transaction(KAFKA_CALL_TIMEOUT_S),
                                                     "abort_transaction", ProcessorState.BREAKER_OPEN)
            except AbortableKafkaError as exc:
                raise FatalKafkaError(f"cannot abort the transaction: {exc}") from exc
            if not aborted:
                raise FatalKafkaError("stopped while the broker was unreachable (transaction not aborted; "
                                      "the next instance's init_transactions aborts it)")
        # Keys changed in the aborted transaction stay in the next snapshot: a superset is harmless
        # (a rolled-back key is written with its snapshot state again).
        self._touched |= self.pipeline.touched()
        rollback = (self._dirty | self._replay_until.keys()) & self._assigned
        replays: dict[str, str] = {}
        for tp in sorted(self._assigned):
            if tp in rollback:
                self._restore_partition_state(tp)
                self._positions.pop(tp, None)
                plan = plan_resume(self._snapshot_offsets.get(tp), self._committed.get(tp))
                offset = plan.start
                self._start_replay(tp, plan.start, plan.replay_until)
                if plan.replay_until is not None:
                    replays[f"{tp[0]}[{tp[1]}]"] = f"{plan.start}..{plan.replay_until}"
            else:
                offset = self._committed.get(tp)
            if offset is not None:
                try:
                    consumer.seek(TopicPartition(tp[0], tp[1], offset))
                except KafkaException as exc:
                    self.log.warning("seek failed", topic=tp[0], partition=tp[1], error=str(exc))
        self.pipeline.touched()  # restoring is not a change to snapshot
        self._end_txn()
        if replays:
            self.log.info("replaying state after abort", replay=replays)
        self.metrics.transactions_aborted.labels(self.name, reason.split(":")[0][:40]).inc()
        with self.status.lock:
            self.status.transactions_aborted += 1
            self.status.last_error = reason

    def _restore_partition_state(self, tp: TP) -> None:
        self.pipeline.drop_partition(*tp)
        for key, data in self._snapshots.get(tp, {}).items():
            self.pipeline.restore(tp[0], tp[1], key, data)

    # ------------------------------------------------------------------------------------------------
    # rebalance callbacks (run inside consume(); keep them short)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._guarded(self._on_assign_impl, consumer, partitions)

    def _on_assign_impl(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        self.metrics.rebalances.labels(self.name, "assign").inc()
        if not tps:
            return
        with self.status.lock:
            self.status.restoring.update(tps)
            self.status.state = ProcessorState.RESTORING
        started = time.monotonic()
        if self._restore_consumer is None:
            raise RuntimeError("restore consumer missing")
        restored = cl.read_changelog(self._restore_consumer, self.changelog_topic,
                                     self.changelog_partitions, tps,
                                     on_progress=lambda: self.status.beat(time.monotonic()))
        committed = self._group_offsets(consumer, tps)
        self._touched |= self.pipeline.touched()  # keep pending changes of partitions already owned
        interval_s = self.settings.snapshot_interval_ms / 1000
        for index, tp in enumerate(sorted(tps)):
            self._snapshots[tp] = {}
            self._committed.pop(tp, None)
            self._positions.pop(tp, None)
            self._snapshot_offsets.pop(tp, None)
            self._snapshot_due_at[tp] = started + interval_s * (1.0 + snapshot_phase(index, len(tps)))
        for (t, p, key), data in restored.snapshots.items():
            self._snapshots[(t, p)][key] = data
        replays: dict[str, str] = {}
        assignment: list[TopicPartition] = []
        for tp in tps:
            self._restore_partition_state(tp)
            snapshot_offset = restored.snapshot_offset(tp)
            if snapshot_offset is not None:
                self._persisted.add(tp)
            plan = plan_resume(snapshot_offset, committed.get(tp))
            if plan.state_offset is not None:
                self._snapshot_offsets[tp] = plan.state_offset
            if plan.replay_until is not None:
                self._committed[tp] = plan.replay_until
                replays[f"{tp[0]}[{tp[1]}]"] = f"{plan.start}..{plan.replay_until}"
            self._start_replay(tp, plan.start, plan.replay_until)
            assignment.append(TopicPartition(tp[0], tp[1]) if plan.start is None
                              else TopicPartition(tp[0], tp[1], plan.start))
        self.pipeline.touched()
        consumer.incremental_assign(assignment)
        if self._paused_by:
            consumer.pause(partitions)
        else:
            # librdkafka keeps a partition's pause flag across losing and regaining it: paused while
            # the breaker was open, lost during an outage and assigned again after the breaker
            # resumed (an empty assignment then), it would stay paused for good.
            consumer.resume(partitions)
        self._assigned.update(tps)
        self.metrics.state_restored_keys.labels(self.name).inc(len(restored.snapshots))
        self.metrics.partitions_assigned.labels(self.name).set(len(self._assigned))
        with self.status.lock:
            self.status.assigned.update(tps)
            self.status.restoring.difference_update(tps)
            self.status.state = ProcessorState.PAUSED if self._paused_by else ProcessorState.RUNNING
        self.metrics.ready.labels(self.name).set(1)
        self.log.info("partitions assigned", partitions=sorted(f"{t}[{p}]" for t, p in tps),
                      restored_keys=len(restored.snapshots), changelog_records=restored.records_read,
                      restore_seconds=round(time.monotonic() - started, 3), replay=replays or None)

    def _group_offsets(self, consumer: Consumer, tps: list[TP]) -> dict[TP, int]:
        """The group's committed offsets of ``tps`` (partitions without one are left out)."""
        request = [TopicPartition(t, p) for t, p in tps]
        result: list[TopicPartition] = call_with_retry(
            lambda: consumer.committed(request, timeout=KAFKA_CALL_TIMEOUT_S), "committed",
            RETRY_DEADLINE_S, self._log_retry("committed"))
        return {(tp.topic, tp.partition): tp.offset for tp in result if tp.offset >= 0}

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._guarded(self._on_revoke_impl, consumer, partitions)

    def _on_revoke_impl(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels(self.name, "revoke").inc()
        if (self._dirty or self._unsnapshotted) and not self._failed:
            self._commit(snapshot=True)
        self._forget([(tp.topic, tp.partition) for tp in partitions], "revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._guarded(self._on_lost_impl, consumer, partitions)

    def _on_lost_impl(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels(self.name, "lost").inc()
        if self._dirty and not self._failed:
            self._abort("partitions lost")
        self._forget([(tp.topic, tp.partition) for tp in partitions], "lost")

    def _guarded(self, callback: Callable[[Consumer, list[TopicPartition]], None], consumer: Consumer,
                 partitions: list[TopicPartition]) -> None:
        """Exceptions must not cross librdkafka's callback boundary (they come out mangled):
        keep the first one and re-raise it from the loop."""
        try:
            callback(consumer, partitions)
        except BaseException as exc:
            self.log.exception("rebalance callback failed", error=str(exc))
            if self._async_error is None:
                self._async_error = exc

    def _forget(self, tps: list[TP], why: str) -> None:
        for tp in tps:
            self.pipeline.drop_partition(*tp)
            self._assigned.discard(tp)
            self._positions.pop(tp, None)
            self._committed.pop(tp, None)
            self._snapshots.pop(tp, None)
            self._snapshot_offsets.pop(tp, None)
            self._persisted.discard(tp)
            self._unsnapshotted.discard(tp)
            self._snapshot_due_at.pop(tp, None)
            self._start_replay(tp, None, None)
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(self.name, tp[0], str(tp[1]))
            with contextlib.suppress(KeyError):
                self.metrics.state_keys.remove(self.name, tp[0], str(tp[1]))
        gone = set(tps)
        self._touched = {key for key in self._touched if (key[0], key[1]) not in gone}
        self.metrics.partitions_assigned.labels(self.name).set(len(self._assigned))
        with self.status.lock:
            self.status.assigned.difference_update(tps)
            for tp in tps:
                self.status.lag.pop(tp, None)
                self.status.positions.pop(tp, None)
        if not self._assigned:
            self.metrics.ready.labels(self.name).set(0)
        self.log.info(f"partitions {why}", partitions=sorted(f"{t}[{p}]" for t, p in tps))

    # ------------------------------------------------------------------------------------------------
    # flow control, breaker, gauges, client callbacks

    def _apply_backpressure(self, queued: int) -> None:
        action = self.backpressure.update(queued)
        if action is FlowAction.PAUSE:
            self.log.info("producer queue above high water: pausing", queued=queued)
            self._pause("backpressure")
        elif action is FlowAction.RESUME:
            self.log.info("producer queue drained: resuming", queued=queued)
            self._resume("backpressure")

    def _pause(self, reason: str) -> None:
        if reason in self._paused_by:
            return
        self._paused_by.add(reason)
        consumer, _ = self._require()
        consumer.pause(consumer.assignment())
        self.metrics.paused.labels(self.name).set(1)
        self.status.set_state(ProcessorState.BREAKER_OPEN if reason == "breaker" else ProcessorState.PAUSED)

    def _resume(self, reason: str) -> None:
        if reason not in self._paused_by:
            return
        self._paused_by.discard(reason)
        if self._paused_by:
            return
        consumer, _ = self._require()
        consumer.resume(consumer.assignment())
        self.metrics.paused.labels(self.name).set(0)
        self.status.set_state(ProcessorState.RUNNING)

    def _publish_breaker(self) -> None:
        state = self.breaker.state
        self.metrics.breaker_state.labels(self.name).set(state.gauge)
        with self.status.lock:
            self.status.breaker_state = state.value
            if state is BreakerState.OPEN:
                self.status.state = ProcessorState.BREAKER_OPEN

    def _refresh_gauges(self, consumer: Consumer, producer: Producer) -> None:
        queued = len(producer)
        self.metrics.producer_queue.labels(self.name).set(queued)
        self.metrics.throughput.labels(self.name).set(self.status.throughput())
        lags: dict[TP, int] = {}
        for tp in list(self._assigned):
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
            except KafkaException:
                continue
            position = self._positions.get(tp, self._committed.get(tp))
            if high is None or high < 0 or position is None:
                continue
            lags[tp] = max(0, high - position)
            self.metrics.consumer_lag.labels(self.name, tp[0], str(tp[1])).set(lags[tp])
        key_count = getattr(self.pipeline, "state_key_count", None)  # optional in PipelineLike fakes
        if key_count is not None:
            for t, p in self._assigned:
                self.metrics.state_keys.labels(self.name, t, str(p)).set(key_count(t, p))
        with self.status.lock:
            self.status.lag.update(lags)
            self.status.positions.update({tp: o for tp, o in self._positions.items() if tp in self._assigned})
            self.status.producer_queue = queued

    def _on_delivery_error(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            return
        if err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            return  # records of an aborted transaction: expected, and invisible to readers
        self._delivery_errors += 1
        self.log.warning("delivery failed", topic=msg.topic(), error=err.str())

    def _on_client_error(self, err: KafkaError) -> None:
        """Fatal errors end the loop; the others are logged at most once per CLIENT_ERROR_LOG_S and
        code (a broker outage reports every reconnect attempt of every client: thousands a minute)."""
        if err.fatal():
            self._async_error = FatalKafkaError(f"client: {err.str()}")
            self.log.error("kafka client error", error=err.str(), code=err.code(), fatal=True)
            return
        code = err.code()
        now = time.monotonic()
        if code == KafkaError._ALL_BROKERS_DOWN:  # not ready until the broker probe hears it again
            self.status.broker_probed(now, reachable=False)
        logged_at, suppressed = self._client_errors.get(code, (0.0, 0))
        if now - logged_at < CLIENT_ERROR_LOG_S:
            self._client_errors[code] = (logged_at, suppressed + 1)
            return
        self._client_errors[code] = (now, 0)
        self.log.warning("kafka client error", error=err.str(), code=code, suppressed=suppressed or None)

    def _log_retry(self, what: str) -> Callable[[KafkaError], None]:
        def log_it(error: KafkaError) -> None:
            self.status.beat(time.monotonic())  # retrying within a deadline is not a wedged loop
            self.log.warning("retrying", call=what, error=error.str())
        return log_it
