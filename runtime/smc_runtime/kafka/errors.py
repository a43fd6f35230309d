"""librdkafka error classes and what the loop does with each.

retriable -> call again after a short backoff, until a deadline; txn_requires_abort -> abort the
transaction and rewind; fatal (or fenced) -> stop the process non-zero so the orchestrator restarts it.

Two kinds of call are classified differently. A transactional call (send_offsets, commit, abort)
reports its class in the error; anything unclassified inside a transaction leaves it in an unknown
state, so it aborts. A read-only call (``committed``, list offsets, metadata) changes nothing, and
librdkafka reports its errors as bare codes that never carry the retriable flag: a ``_TIMED_OUT``
there (a broker restarting, a coordinator loading, offsets held by a transaction still being
resolved) is worth asking again within the deadline, not a reason to exit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException

T = TypeVar("T")


class ErrorClass(Enum):
    RETRIABLE = "retriable"
    ABORTABLE = "abortable"
    FATAL = "fatal"


class FatalKafkaError(RuntimeError):
    """The producer is fenced or in a fatal state: only a restart helps."""


class AbortableKafkaError(RuntimeError):
    """The open transaction cannot commit: abort it and rewind to the last commit."""


class RetriesExhaustedError(AbortableKafkaError):
    """A retriable error (timeouts, broker not reachable) outlasted the retry deadline: typically the
    broker is down. Calls that may simply be repeated (init/abort) go on retrying in the caller."""


_FENCED_CODES = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
}
_FATAL_CODES = _FENCED_CODES | {KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}


# Codes a read-only call may simply repeat: the broker or coordinator is not there yet, or the
# answer waits on something else finishing (UNSTABLE_OFFSET_COMMIT: a transaction holding offsets of
# the group is not resolved yet; librdkafka retries that itself until the call's timeout).
_READ_RETRIABLE_CODES = {
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._WAIT_COORD,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.UNSTABLE_OFFSET_COMMIT,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def classify(error: KafkaError, *, read_only: bool = False) -> ErrorClass:
    """Map a KafkaError to what to do about it (fatal wins over abortable over retriable).

    ``read_only``: the error of a call outside the transaction that changes nothing (see the module
    docstring): its transient codes are retriable even without librdkafka's retriable flag."""
    if error.fatal() or error.code() in _FATAL_CODES:
        return ErrorClass.FATAL
    if error.txn_requires_abort():
        return ErrorClass.ABORTABLE
    if error.retriable() or (read_only and error.code() in _READ_RETRIABLE_CODES):
        return ErrorClass.RETRIABLE
    # Anything else inside a transaction leaves it in an unknown state: aborting is the safe path.
    return ErrorClass.ABORTABLE


def describe(error: KafkaError) -> str:
    """The error's text, naming fencing whatever the code: a zombie sees PRODUCER_FENCED from the
    transaction coordinator but INVALID_PRODUCER_EPOCH ("old epoch") from a partition or the group
    coordinator, depending on which request the newer instance's epoch reached first."""
    if error.code() in _FENCED_CODES:
        return f"fenced by a newer producer with the same transactional.id: {error.str()}"
    return error.str()


def kafka_error_of(exc: KafkaException) -> KafkaError:
    arg = exc.args[0] if exc.args else None
    if isinstance(arg, KafkaError):
        return arg
    return KafkaError(KafkaError._FAIL, str(arg))


EXIT_FATAL = 3
EXIT_CRASHED = 4


def exit_of(exc: Exception) -> tuple[int, str]:
    """The exit code and /status reason for an exception that ended a processor's loop: a fatal
    Kafka error (fenced, ...) exits ``EXIT_FATAL``, anything else is a crash (``EXIT_CRASHED``)."""
    if isinstance(exc, FatalKafkaError):
        return EXIT_FATAL, f"fatal Kafka error: {exc}"
    if isinstance(exc, KafkaException):  # e.g. poll() raising the producer's fatal (fenced) error
        error = kafka_error_of(exc)
        if classify(error) is ErrorClass.FATAL:
            return EXIT_FATAL, f"fatal Kafka error: {error.str()}"
        return EXIT_CRASHED, f"crashed: {error.str()}"
    return EXIT_CRASHED, f"crashed: {exc}"


def raise_if_fatal(err: KafkaError) -> bool:
    """A consumed message's error: raise ``FatalKafkaError`` if fatal; True if worth a warning
    (partition EOF is not)."""
    if err.code() == KafkaError._PARTITION_EOF:
        return False
    if err.fatal():
        raise FatalKafkaError(f"consumer: {err.str()}")
    return True


def call_with_retry(op: Callable[[], T], what: str, deadline_s: float,
                    on_retry: Callable[[KafkaError], None] | None = None,
                    sleep: Callable[[float], None] = time.sleep, *, read_only: bool = False) -> T:
    """Run ``op``; retry retriable errors with backoff until ``deadline_s``; raise typed errors otherwise.

    ``read_only``: ``op`` is a read outside the transaction (``classify``)."""
    deadline = time.monotonic() + deadline_s
    backoff = 0.01
    while True:
        try:
            return op()
        except KafkaException as exc:
            error = kafka_error_of(exc)
            kind = classify(error, read_only=read_only)
            if kind is ErrorClass.FATAL:
                raise FatalKafkaError(f"{what}: {describe(error)}") from exc
            if kind is ErrorClass.ABORTABLE:
                raise AbortableKafkaError(f"{what}: {error.str()}") from exc
            if time.monotonic() + backoff > deadline:
                raise RetriesExhaustedError(
                    f"{what}: still failing after {deadline_s:.0f}s: {error.str()}") from exc
            if on_retry is not None:
                on_retry(error)
            sleep(backoff)
            backoff = min(backoff * 2, 0.5)
