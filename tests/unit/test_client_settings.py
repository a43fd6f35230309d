"""kafka_clients: allow-listed tunables pass (and librdkafka knows them), owned keys are rejected
with the reason, values are checked by librdkafka itself. (That the merged settings reach a real
client is tests/integration/test_client_settings_kafka.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from smc_runtime import client_settings as cs
from smc_runtime.config import ConfigError, parse_config
from smc_runtime.kafka import clients

ROLES = cs.CLIENT_ROLES


def _processor(kafka_clients: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"stream_processors": {"p": {"consumer_group": "g", "input_topics": ["in"],
                                        "kafka_clients": kafka_clients, **extra}}}


@pytest.mark.parametrize("role", ROLES)
def test_every_allowed_key_is_a_librdkafka_property_of_its_role(role: cs.ClientRole) -> None:
    """Probe each key with a nonsense value: librdkafka must complain about the value, not the name."""
    base: dict[str, Any] = {"group.id": "probe"} if role == "consumer" else {}
    unknown = []
    for key in sorted(cs.ALLOWED[role]):
        try:
            if role == "consumer":
                Consumer({**base, key: "not-a-valid-value!"}).close()
            elif role == "producer":
                Producer({**base, key: "not-a-valid-value!"})
            else:
                AdminClient({**base, key: "not-a-valid-value!"})
        except KafkaException as exc:
            if "No such configuration property" in str(exc):
                unknown.append(key)
    assert unknown == []


@pytest.mark.parametrize("key", sorted(cs.OWNED))
def test_owned_keys_are_rejected_with_their_reason_in_every_role(key: str) -> None:
    name = key + "mechanism" if key.endswith(".") else key
    for role in ROLES:
        [(got_key, reason)] = cs.check_client_settings(role, {name: "x"})
        assert got_key == name
        assert reason.startswith("owned by the runtime: ") and len(reason) > 30


def test_the_keys_exactly_once_depends_on_are_owned() -> None:
    for key in ("enable.auto.commit", "enable.auto.offset.store", "isolation.level", "transactional.id",
                "enable.idempotence", "group.id", "bootstrap.servers", "acks", "sasl.password",
                "ssl.key.location", "security.protocol", "partition.assignment.strategy"):
        assert cs.owned_reason(key), key


def test_wrong_role_alias_and_typo_get_a_hint() -> None:
    problems = dict(cs.check_client_settings("consumer", {
        "linger.ms": 5, "fetch.max.wait.ms": 10, "fetch.wiat.max.ms": 10, "max.poll.records": 10}))
    assert "put it under kafka_clients.producer" in problems["linger.ms"]
    assert "fetch.wait.max.ms" in problems["fetch.max.wait.ms"]
    assert "did you mean 'fetch.wait.max.ms'" in problems["fetch.wiat.max.ms"]
    assert "max_poll_records" in problems["max.poll.records"]


def test_values_must_be_scalars() -> None:
    problems = cs.check_client_settings("producer", {"linger.ms": [5], "batch.size": None})
    assert [key for key, _ in problems] == ["linger.ms", "batch.size"]


def test_librdkafka_checks_values_and_cross_key_rules() -> None:
    assert cs.probe_client_settings("producer", {"linger.ms": 20, "compression.type": "zstd"}) == []
    [(_, reason)] = cs.probe_client_settings("producer", {"compression.type": "brotli"})
    assert "brotli" in reason
    # message.timeout.ms must not exceed the transaction timeout the runtime sets (exactly-once only)
    too_long = {"message.timeout.ms": clients.TRANSACTION_TIMEOUT_MS + 1}
    assert cs.probe_client_settings("producer", too_long, exactly_once=True)
    assert cs.probe_client_settings("producer", too_long, exactly_once=False) == []
    assert cs.probe_client_settings("producer", {"message.timeout.ms": clients.TRANSACTION_TIMEOUT_MS}) == []


def test_config_model_reports_problems_per_role() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_processor({"consumer": {"group.id": "other", "fetch.min.bytes": 1},
                                 "producer": {"enable.idempotence": False}}))
    paths = {path: reason for path, reason in err.value.problems}
    assert "owned by the runtime" in paths["stream_processors.p.kafka_clients.consumer"]
    assert "enable.idempotence" in paths["stream_processors.p.kafka_clients.producer"]
    with pytest.raises(ConfigError, match="librdkafka rejects the consumer settings"):
        parse_config(_processor({"consumer": {"fetch.wait.max.ms": -5}}))
    config = parse_config(_processor({"producer": {"linger.ms": 25}, "admin": {"socket.timeout.ms": 5000}}))
    assert config.stream_processors["p"].kafka_clients.producer == {"linger.ms": 25}


def test_merge_puts_tunables_over_defaults_and_refuses_owned_keys() -> None:
    merged = cs.producer_config({"linger.ms": 5, "acks": "all"}, {"linger.ms": 50})
    assert merged == {"linger.ms": 50, "acks": "all"}
    with pytest.raises(ValueError, match=r"transactional\.id"):
        cs.producer_config({"linger.ms": 5}, {"transactional.id": "mine"})
    assert cs.consumer_config({"a": 1}, {}) == {"a": 1}
    assert cs.admin_config({"a": 1}, {"socket.timeout.ms": 100}) == {"a": 1, "socket.timeout.ms": 100}
