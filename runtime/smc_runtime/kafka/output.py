"""The one place records are produced: the BufferError wait, the error mapping and the stand-ins for
records the producer refuses as too large (output records and changelog snapshots).

The per-record loop calls ``producer.produce`` itself (the hot path) and hands every exception of
that call to ``OutputWriter.recover``; while a commit is in flight it stages its outputs instead, and
``OutputWriter.produce_staged`` produces them once the next transaction is open. Everything else
produces through ``OutputWriter.produce``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from smc_runtime.kafka import topics
from smc_runtime.kafka.errors import (
    AbortableKafkaError,
    ErrorClass,
    FatalKafkaError,
    classify,
    kafka_error_of,
)
from smc_runtime.logs import StructLogger

MAX_HEADER_BYTES = 1_024  # per header value of a replacement dead letter (see replace_oversized)
Headers = Sequence[tuple[str, str | bytes | None]]


class OutputLike(Protocol):
    @property
    def role(self) -> str: ...
    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...
    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]: ...


# An output waiting for its transaction: (record, source topic, partition, offset, timestamp ms).
StagedOutput = tuple[OutputLike, str, int, int, int]


@dataclass(frozen=True)
class Replacement:
    """A dead letter standing in for an output record the producer refused as too large."""

    role: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def produce_error(exc: KafkaException) -> FatalKafkaError | AbortableKafkaError:
    """A produce() failure as the loop's error class: fatal stops the loop, the rest aborts."""
    error = exc.args[0]
    if classify(error) is ErrorClass.FATAL:
        return FatalKafkaError(f"produce: {error.str()}")
    return AbortableKafkaError(f"produce: {error.str()}")


def is_too_large(exc: KafkaException) -> bool:
    return bool(kafka_error_of(exc).code() == KafkaError.MSG_SIZE_TOO_LARGE)


class OutputWriter:
    """Produces records for one processor; ``on_full_queue(queued)`` runs while a full local queue is
    waited out (the backpressure check)."""

    def __init__(self, producer: Producer, topic_for_role: dict[str, str], max_message_bytes: int,
                 log: StructLogger, on_full_queue: Callable[[int], None]) -> None:
        self.producer = producer
        self.topic_for_role = topic_for_role
        self.max_message_bytes = max_message_bytes
        self.log = log
        self.on_full_queue = on_full_queue

    def produce(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None,
                partition: int | None = None) -> None:
        """Produce one record; a full local queue is waited out (never a BufferError to the caller),
        a KafkaException is raised as the loop's error class."""
        hdrs = list(headers) if headers else None
        producer = self.producer
        while True:
            try:
                if partition is None:
                    producer.produce(topic, value=value, key=key, headers=hdrs)
                else:
                    producer.produce(topic, value=value, key=key, headers=hdrs, partition=partition)
                return
            except BufferError:
                self.on_full_queue(len(producer))
                producer.poll(0.05)
            except KafkaException as exc:
                raise produce_error(exc) from exc

    def recover(self, exc: Exception, record: OutputLike, topic: str, partition: int, offset: int,
                timestamp_ms: int) -> OutputLike:
        """The hot loop's ``produce`` of ``record`` (read from ``topic[partition]@offset``) raised
        ``exc``: wait out a full queue, or replace a record too large by a capped dead letter; any
        other error is raised as the loop's error class. Returns what was produced."""
        if isinstance(exc, KafkaException):
            if not is_too_large(exc):
                raise produce_error(exc) from exc
            record = self.replace_oversized(record, topic, partition, offset, timestamp_ms)
        elif not isinstance(exc, BufferError):
            raise exc
        self.produce(self.topic_for_role[record.role], record.key, record.value, record.headers or None)
        return record

    def produce_staged(self, staged: list[StagedOutput]) -> None:
        """Produce outputs staged while a commit was in flight, in their order; each error is handled
        as the hot loop handles it (``recover``). The hot loop inlines the same call for speed."""
        produce = self.producer.produce
        topic_for_role = self.topic_for_role
        for record, topic, partition, offset, timestamp_ms in staged:
            try:
                if record.headers:
                    produce(topic_for_role[record.role], value=record.value, key=record.key,
                            headers=list(record.headers))
                else:
                    produce(topic_for_role[record.role], value=record.value, key=record.key)
            except (BufferError, KafkaException) as exc:
                self.recover(exc, record, topic, partition, offset, timestamp_ms)

    def replace_oversized(self, record: OutputLike, topic: str, partition: int, offset: int,
                          timestamp_ms: int) -> Replacement:
        """The dead letter that replaces a record ``produce()`` refused with MSG_SIZE_TOO_LARGE.

        Last line of defence behind the Pipeline's own dead-letter cap: a record larger than the
        producer's message.max.bytes (which ``topics.producer_max_message_bytes`` keeps within every
        topic's max.message.bytes) would otherwise abort the transaction on every replay. The
        decision depends only on the record and the configured limit, so a replay decides the same.
        A dead letter keeps its headers (each cut to MAX_HEADER_BYTES); another output becomes an
        ``output_too_large`` dead letter with the source coordinates. Either way the value is cut to
        what fits, with headers ``truncated`` and ``original_size``."""
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
        return Replacement("dead_letters", key, value, headers)

    def produce_snapshot(self, topic: str, key: bytes, data: bytes | None, headers: Headers,
                         partition: int, *, may_tombstone: bool = True) -> bool:
        """Produce one changelog record; False if ``data`` was too large and (``may_tombstone``: a
        state key, not a marker) a tombstone was written instead: aborting would replay into the same
        snapshot forever, a restore starts the key afresh (its live state goes on)."""
        try:
            self.produce(topic, key, data, headers, partition=partition)
            return True
        except (AbortableKafkaError, FatalKafkaError) as exc:
            cause = exc.__cause__
            if (not may_tombstone or data is None or not isinstance(cause, KafkaException)
                    or not is_too_large(cause)):
                raise
        self.produce(topic, key, None, headers, partition=partition)
        return False


class DeliveryReport:
    """The producer's ``on_delivery`` callback: counts failed deliveries (at-least-once checks them
    at commit) and remembers the topics that refused records (the breaker's failing topics); records
    purged by an abort are expected and not counted.

    A refusing topic fails every record of every batch (thousands a second): one WARNING per topic and
    error per ``LOG_EVERY_S``, with the count of the failures in between, not one line per record."""

    LOG_EVERY_S = 10.0

    def __init__(self, log: StructLogger, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.clock = clock
        self.errors = 0
        self.failed_topics: dict[str, int] = {}  # topic -> the last error code it refused a record with
        self._logged: dict[tuple[str | None, str], tuple[float, int]] = {}  # -> (last logged, since)

    def __call__(self, err: KafkaError | None, msg: object) -> None:
        if err is None or err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            return
        self.errors += 1
        topic = getattr(msg, "topic", lambda: None)()
        if topic is not None:
            self.failed_topics[topic] = err.code()
        key = (topic, err.str())
        now = self.clock()
        logged_at, since = self._logged.get(key, (None, 0))
        if logged_at is not None and now - logged_at < self.LOG_EVERY_S:
            self._logged[key] = (logged_at, since + 1)
            return
        self._logged[key] = (now, 0)
        self.log.warning("delivery failed", topic=topic, error=err.str(), code=err.code(),
                         failed_since_last_line=since or None)

    def take_failed_topics(self) -> dict[str, int]:
        """The topics that refused records since the last call, with the error code (for the breaker,
        at an abort)."""
        topics, self.failed_topics = self.failed_topics, {}
        return topics
