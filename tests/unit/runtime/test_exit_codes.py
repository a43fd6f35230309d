"""What ends a processor's loop maps to an exit code (3: fatal Kafka error, restart; 4: crash), and a
consumed message's error is raised only when fatal."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from smc_runtime.kafka.errors import EXIT_CRASHED, EXIT_FATAL, FatalKafkaError, exit_of, raise_if_fatal


def test_fatal_kafka_errors_exit_fatal() -> None:
    assert exit_of(FatalKafkaError("commit_transaction: fenced")) == (
        EXIT_FATAL, "fatal Kafka error: commit_transaction: fenced")
    fenced = KafkaError(KafkaError.PRODUCER_FENCED, "fenced by a newer instance")
    assert exit_of(KafkaException(fenced)) == (EXIT_FATAL, "fatal Kafka error: fenced by a newer instance")


def test_other_errors_are_crashes() -> None:
    transport = KafkaError(KafkaError._TRANSPORT, "broker went away")
    assert exit_of(KafkaException(transport)) == (EXIT_CRASHED, "crashed: broker went away")
    assert exit_of(RuntimeError("boom")) == (EXIT_CRASHED, "crashed: boom")
    assert (EXIT_FATAL, EXIT_CRASHED) == (3, 4)


def test_consumer_message_errors() -> None:
    assert raise_if_fatal(KafkaError(KafkaError._PARTITION_EOF)) is False
    assert raise_if_fatal(KafkaError(KafkaError._TRANSPORT, "broker went away")) is True
    with pytest.raises(FatalKafkaError, match="consumer: "):
        raise_if_fatal(KafkaError(KafkaError._FATAL, "idempotence broken", fatal=True))
