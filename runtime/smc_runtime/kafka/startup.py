"""Waiting for the broker: the topics at start, calls that may be repeated until the broker answers
(``init_transactions``, ``abort_transaction``), retry logging and the clients' error callback.

While the broker is unreachable or topics are missing the processor stays alive and not ready: a
restart would only start into the same outage (issue 12, items 8 and 10).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from smc_runtime import client_settings
from smc_runtime.config import KafkaSettings, ProcessorSettings
from smc_runtime.kafka import clients, topics
from smc_runtime.kafka.breaker import CircuitBreaker
from smc_runtime.kafka.errors import (
    AbortableKafkaError,
    FatalKafkaError,
    RetriesExhaustedError,
    call_with_retry,
)
from smc_runtime.kafka.telemetry import Telemetry
from smc_runtime.logs import StructLogger
from smc_runtime.service.status import ProcessorState

RETRY_DEADLINE_S = 60.0  # outlasts a broker restart
OUTAGE_RETRY_S = 5.0  # one round of retries of a call that waits for the broker to come back
TOPIC_RECHECK_S = 5.0  # missing output topics: how often to look again
CLIENT_ERROR_LOG_S = 10.0  # a non-fatal client error code is logged at most this often
PROBE_TIMEOUT_S = 3.0
KAFKA_CALL_TIMEOUT_S = 10.0
ABORT_FLUSH_S = 5.0  # in-flight requests settle before an abort (see abort_transaction)


class BrokerWaits:
    """The waiting of one processor; ``stop`` ends every wait."""

    def __init__(self, telemetry: Telemetry, log: StructLogger, breaker: CircuitBreaker,
                 stop: threading.Event) -> None:
        self.telemetry = telemetry
        self.status = telemetry.status
        self.log = log
        self.breaker = breaker
        self.stop = stop
        self.admin: AdminClient | None = None  # for metadata requests (its own connection)
        self.async_error: BaseException | None = None  # a fatal client error, raised by the loop
        self._client_errors: dict[int, tuple[float, int]] = {}  # code -> (last logged, suppressed)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` beating the heartbeat; False if the processor is asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            now = time.monotonic()
            self.status.beat(now)
            if now >= deadline:
                return True
            self.stop.wait(min(0.5, deadline - now))
        return False

    def log_retry(self, what: str) -> Callable[[KafkaError], None]:
        def log_it(error: KafkaError) -> None:
            self.status.beat(time.monotonic())  # retrying within a deadline is not a wedged loop
            self.log.warning("retrying", call=what, error=error.str())
        return log_it

    def until_broker_answers(self, op: Callable[[], object], what: str, state: ProcessorState) -> bool:
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
                call_with_retry(op, what, OUTAGE_RETRY_S, self.log_retry(what))
            except RetriesExhaustedError as exc:
                now = time.monotonic()
                if self.broker_answers():
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
                    self.telemetry.breaker(self.breaker.state)
                self.status.set_state(state, f"{what}: broker unreachable for {now - outage_started:.0f}s")
                if self.stop.is_set():
                    return False
                continue
            except (AbortableKafkaError, FatalKafkaError) as exc:  # after RetriesExhaustedError, its subclass
                # An error is an answer too: the outage is over whatever the call's fate (an abort
                # refused after a coordinator moved exits for a restart right after this line).
                if outage_started is not None:
                    self.log.info("broker answers again", call=what, outcome=f"error: {exc}",
                                  outage_seconds=round(time.monotonic() - outage_started, 1))
                raise
            if outage_started is not None:
                self.log.info("broker answers again", call=what, outcome="ok",
                              outage_seconds=round(time.monotonic() - outage_started, 1))
            return True

    def abort_transaction(self, producer: Producer, *, flush_first: bool) -> None:
        """``abort_transaction``, retried until the broker answers (alive with the breaker open
        meanwhile, issue 12 item 8); FatalKafkaError if it cannot be aborted or the processor stops.

        ``flush_first``: let requests already sent finish first: aborting with produce requests in
        flight purges them and can leave librdkafka with a sequence gap in the next transaction
        (OUT_OF_ORDER_SEQUENCE_NUMBER -> one more abort and an epoch bump). Their records are
        aborted with the transaction either way."""
        if flush_first:
            try:
                producer.flush(ABORT_FLUSH_S)
            except Exception as exc:  # fatal states surface again from abort_transaction below
                self.log.warning("flush before abort failed", error=str(exc))
        try:
            aborted = self.until_broker_answers(_abort_call(producer), "abort_transaction",
                                                ProcessorState.BREAKER_OPEN)
        except AbortableKafkaError as exc:
            raise FatalKafkaError(f"cannot abort the transaction: {exc}") from exc
        if not aborted:
            raise FatalKafkaError("stopped while the broker was unreachable (transaction not aborted; "
                                  "the next instance's init_transactions aborts it)")

    def broker_answers(self) -> bool:
        """A metadata request on the admin client (its own connection) gets an answer."""
        if self.admin is None:
            return False
        try:
            self.admin.list_topics(timeout=PROBE_TIMEOUT_S)
            return True
        except KafkaException:
            return False

    def on_client_error(self, err: KafkaError) -> None:
        """The clients' ``error_cb``. Fatal errors end the loop; the others are logged at most once
        per CLIENT_ERROR_LOG_S and code (a broker outage reports every reconnect attempt of every
        client: thousands a minute)."""
        if err.fatal():
            self.async_error = FatalKafkaError(f"client: {err.str()}")
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

    def prepare_topics(self, admin: AdminClient, outputs: list[str], changelog: str, inputs: list[str],
                       policy: topics.TopicPolicy, record_bytes: int) -> topics.TopicCheck | None:
        """Check (and create, as the policy allows) the output, dead-letter and changelog topics;
        wait, re-checking every TOPIC_RECHECK_S, while some are missing or the broker does not
        answer. None if asked to stop meanwhile.

        While waiting: state ``waiting_for_topics`` (not ready, alive), ``/status`` lists
        ``missing_topics``, and one ERROR line names them (again only if the set changes)."""
        reported: tuple[str, ...] | None = None
        unreachable_logged = False
        while True:
            self.status.beat(time.monotonic())
            try:
                check = topics.check_topics(admin, outputs, changelog, inputs, policy, record_bytes)
            except KafkaException as exc:
                if not unreachable_logged:
                    self.log.warning("broker not answering at start: waiting", error=str(exc))
                    unreachable_logged = True
                self.status.set_state(ProcessorState.STARTING, f"broker not answering: {exc}")
                if not self.wait(TOPIC_RECHECK_S):
                    return None
                continue
            if check.created:
                self.log.info("created missing topics", topics=check.created,
                              partitions=policy.partitions or "widest input",
                              replication_factor=policy.replication_factor)
            self.telemetry.topics_checked(check.missing, check.created)
            if not check.missing:
                if reported:
                    self.log.info("missing topics now exist", topics=list(reported))
                return check
            if tuple(check.missing) != reported:
                reported = tuple(check.missing)
                self.log.error("topics missing: not consuming until they exist", missing_topics=check.missing,
                               create_missing=policy.create_missing, errors=check.errors or None,
                               recheck_seconds=TOPIC_RECHECK_S)
            reason = f"missing topics: {', '.join(check.missing)}"
            self.status.set_state(ProcessorState.WAITING_FOR_TOPICS, reason)
            if not self.wait(TOPIC_RECHECK_S):
                return None


def check_record_limits(log: StructLogger, check: topics.TopicCheck, max_message_bytes: int,
                        record_bytes: int) -> None:
    """Warn when the topics or the producer settings are smaller than ``max_record_bytes``: larger
    records are then replaced by capped dead letters (``OutputWriter.replace_oversized``), and a
    producer limit above a topic's means the broker refuses the record and the transaction aborts."""
    smallest = check.smallest_max_message_bytes
    fits = None if smallest is None else smallest - topics.BATCH_FRAMING_BYTES
    if fits is not None and max_message_bytes > fits:
        log.error("producer message.max.bytes exceeds a topic's max.message.bytes: records of "
                  "that size are refused by the broker and abort their transaction",
                  message_max_bytes=max_message_bytes, topic_limits=check.max_message_bytes)
    elif max_message_bytes < record_bytes:
        small = {t: n for t, n in check.max_message_bytes.items()
                 if n - topics.BATCH_FRAMING_BYTES < record_bytes}
        log.warning("records are limited below max_record_bytes by the topics' max.message.bytes: "
                    "larger outputs become capped dead letters (output_too_large)",
                    max_record_bytes=record_bytes, message_max_bytes=max_message_bytes, topic_limits=small)


def _abort_call(producer: Producer) -> Callable[[], object]:
    return lambda: producer.abort_transaction(KAFKA_CALL_TIMEOUT_S)


@dataclass(frozen=True)
class ClientConfigs:
    """librdkafka configurations of one processor's clients (runtime settings under the user's
    ``kafka_clients`` tunables, see ``client_settings.py``)."""

    producer: dict[str, Any]
    consumer: dict[str, Any]
    restore: dict[str, Any]


def admin_client(kafka: KafkaSettings, settings: ProcessorSettings, client_id: str) -> AdminClient:
    conf = client_settings.admin_config(clients.base_settings(kafka, f"{client_id}.admin"),
                                        settings.kafka_clients.admin)
    return AdminClient(conf, logger=logging.getLogger("smc_runtime.librdkafka.admin"))


def client_configs(kafka: KafkaSettings, settings: ProcessorSettings, client_id: str, txn_id: str,
                   check: topics.TopicCheck, on_delivery: Callable[..., None],
                   error_cb: Callable[[KafkaError], None]) -> ClientConfigs:
    """The producer's ``message.max.bytes`` is ``max_record_bytes`` lowered to what every topic
    written to accepts (unless ``kafka_clients.producer`` sets it)."""
    user = settings.kafka_clients
    runtime_producer = clients.producer_settings(kafka, settings, client_id, txn_id)
    limit = topics.producer_max_message_bytes(check, settings.max_record_bytes)
    runtime_producer["message.max.bytes"] = limit
    pconf = client_settings.producer_config(runtime_producer, user.producer)
    pconf["on_delivery"] = on_delivery
    pconf["error_cb"] = error_cb
    pconf["logger"] = logging.getLogger("smc_runtime.librdkafka.producer")
    cconf = client_settings.consumer_config(clients.consumer_settings(kafka, settings, client_id),
                                            user.consumer)
    cconf["error_cb"] = error_cb
    cconf["logger"] = logging.getLogger("smc_runtime.librdkafka.consumer")
    rconf = clients.restore_consumer_settings(kafka, settings, f"{client_id}.restore")
    rconf["logger"] = logging.getLogger("smc_runtime.librdkafka.restore")
    return ClientConfigs(pconf, cconf, rconf)
