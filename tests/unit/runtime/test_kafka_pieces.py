"""Error classes, retry policy, changelog addressing and client settings of the Kafka edge."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from smc_runtime.config import KafkaSettings, ProcessorSettings
from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka import clients
from smc_runtime.kafka.errors import (
    AbortableKafkaError,
    ErrorClass,
    FatalKafkaError,
    call_with_retry,
    classify,
)


@pytest.mark.parametrize(("error", "expected"), [
    (KafkaError(KafkaError._TIMED_OUT, "t", retriable=True), ErrorClass.RETRIABLE),
    (KafkaError(KafkaError._STATE, "a", txn_requires_abort=True), ErrorClass.ABORTABLE),
    (KafkaError(KafkaError._STATE, "a", txn_requires_abort=True, retriable=True), ErrorClass.ABORTABLE),
    (KafkaError(KafkaError._FATAL, "f", fatal=True, txn_requires_abort=True), ErrorClass.FATAL),
    (KafkaError(KafkaError.PRODUCER_FENCED, "fenced"), ErrorClass.FATAL),
    (KafkaError(KafkaError._FENCED, "fenced"), ErrorClass.FATAL),
    (KafkaError(KafkaError.UNKNOWN, "other"), ErrorClass.ABORTABLE),
])
def test_classify_follows_librdkafka_error_classes(error: KafkaError, expected: ErrorClass) -> None:
    assert classify(error) is expected


@pytest.mark.parametrize(("error", "in_transaction", "read_only"), [
    # librdkafka's plain codes (no retriable flag): what committed() raises after its timeout
    (KafkaError(KafkaError._TIMED_OUT), ErrorClass.ABORTABLE, ErrorClass.RETRIABLE),
    (KafkaError(KafkaError.UNSTABLE_OFFSET_COMMIT), ErrorClass.ABORTABLE, ErrorClass.RETRIABLE),
    (KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS), ErrorClass.ABORTABLE, ErrorClass.RETRIABLE),
    (KafkaError(KafkaError._TRANSPORT), ErrorClass.ABORTABLE, ErrorClass.RETRIABLE),
    # a read never turns fatal or abortable errors into retries, nor unknown ones
    (KafkaError(KafkaError._FATAL, "f", fatal=True), ErrorClass.FATAL, ErrorClass.FATAL),
    (KafkaError(KafkaError.PRODUCER_FENCED), ErrorClass.FATAL, ErrorClass.FATAL),
    (KafkaError(KafkaError._TIMED_OUT, "a", txn_requires_abort=True),
     ErrorClass.ABORTABLE, ErrorClass.ABORTABLE),
    (KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED), ErrorClass.ABORTABLE, ErrorClass.ABORTABLE),
])
def test_a_timeout_is_retriable_on_a_read_and_abortable_inside_a_transaction(
        error: KafkaError, in_transaction: ErrorClass, read_only: ErrorClass) -> None:
    assert classify(error) is in_transaction
    assert classify(error, read_only=True) is read_only


def test_read_only_calls_retry_plain_timeouts_and_transactional_calls_do_not() -> None:
    calls: list[int] = []

    def committed() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return "offsets"

    assert call_with_retry(committed, "committed", 5, sleep=lambda _: None, read_only=True) == "offsets"
    assert len(calls) == 4
    calls.clear()
    with pytest.raises(AbortableKafkaError):
        call_with_retry(committed, "send_offsets_to_transaction", 5, sleep=lambda _: None)
    assert len(calls) == 1


def test_retriable_errors_are_retried_until_success() -> None:
    calls: list[int] = []

    def op() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True))
        return "done"

    assert call_with_retry(op, "op", deadline_s=5, sleep=lambda _: None) == "done"
    assert len(calls) == 3


def test_retriable_errors_past_the_deadline_become_abortable() -> None:
    def op() -> None:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True))

    with pytest.raises(AbortableKafkaError, match="still failing"):
        call_with_retry(op, "op", deadline_s=0.0, sleep=lambda _: None)


def test_fatal_and_abortable_errors_are_not_retried() -> None:
    def fenced() -> None:
        raise KafkaException(KafkaError(KafkaError.PRODUCER_FENCED, "fenced"))

    def abortable() -> None:
        raise KafkaException(KafkaError(KafkaError._STATE, "x", txn_requires_abort=True))

    with pytest.raises(FatalKafkaError):
        call_with_retry(fenced, "op", deadline_s=10)
    with pytest.raises(AbortableKafkaError):
        call_with_retry(abortable, "op", deadline_s=10)


def test_changelog_keys_round_trip_and_ignore_foreign_keys() -> None:
    key = cl.changelog_key("market_data.binance.btcusdt.klines", 7, "BTCUSDT|1m")
    assert cl.parse_changelog_key(key) == ("market_data.binance.btcusdt.klines", 7, "BTCUSDT|1m")
    assert cl.parse_changelog_key(b"not-ours") is None
    assert cl.parse_changelog_key(b"t|x|k") is None


def test_changelog_partition_spreads_source_partitions() -> None:
    assert [cl.changelog_partition(p, 3) for p in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert cl.source_offset_header(42) == [("source_offset", b"42")]


def _settings(**overrides: object) -> ProcessorSettings:
    return ProcessorSettings.model_validate({"consumer_group": "g", "input_topics": ["in"], **overrides})


def test_exactly_once_clients_are_transactional_and_read_committed() -> None:
    kafka = KafkaSettings()
    producer = clients.producer_settings(kafka, _settings(), "c", clients.transactional_id("pod-0", "main"))
    consumer = clients.consumer_settings(kafka, _settings(), "c")
    assert producer["transactional.id"] == "pod-0.main"
    assert producer["transaction.timeout.ms"] == clients.TRANSACTION_TIMEOUT_MS
    assert producer["retry.backoff.ms"] <= 20
    assert consumer["isolation.level"] == "read_committed"
    assert consumer["enable.auto.commit"] is False and consumer["enable.auto.offset.store"] is False
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    assert "group.instance.id" not in consumer
    static = clients.consumer_settings(KafkaSettings(static_membership=True), _settings(), "pod-0.main")
    assert static["group.instance.id"] == "pod-0.main"


def test_at_least_once_producer_has_no_transactions() -> None:
    settings = _settings(processing_mode="at_least_once")
    producer = clients.producer_settings(KafkaSettings(), settings, "c", "t")
    assert "transactional.id" not in producer and producer["enable.idempotence"] is True


def test_credentials_come_from_files_and_never_from_describe(tmp_path: Path) -> None:
    (tmp_path / "user").write_text("alice\n")
    (tmp_path / "pass").write_text("s3cret\n")
    kafka = KafkaSettings.model_validate({"security": {
        "protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username_file": str(tmp_path / "user"), "sasl_password_file": str(tmp_path / "pass"),
        "ssl_ca_file": "/ca.pem"}})
    conf = clients.security_settings(kafka)
    assert conf["sasl.username"] == "alice" and conf["sasl.password"] == "s3cret"
    assert conf["ssl.ca.location"] == "/ca.pem"
    described = clients.describe(kafka)
    assert "s3cret" not in repr(described) and "alice" not in repr(described)
    assert described["sasl_credentials_configured"] is True


@pytest.mark.parametrize("code", [KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
                                  KafkaError._FENCED])
def test_every_fencing_code_is_fatal_and_named_fenced(code: int) -> None:
    def op() -> None:
        raise KafkaException(KafkaError(code, "Producer attempted an operation with an old epoch"))

    with pytest.raises(FatalKafkaError, match="fenced by a newer producer"):
        call_with_retry(op, "send_offsets_to_transaction", 10)


def test_an_authorization_failure_is_fatal_but_not_called_fencing() -> None:
    def op() -> None:
        raise KafkaException(KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "denied"))

    with pytest.raises(FatalKafkaError) as raised:
        call_with_retry(op, "init_transactions", 10)
    assert "fenced" not in str(raised.value)
