"""librdkafka client settings for one processor, derived from the config model.

Every setting that matters for exactly-once or latency is here with the reason beside it, so the
loop never builds configuration dicts of its own. Credentials are read from the mounted files at
start and only ever live inside these dicts (never logged: see ``describe``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smc_runtime.client_settings import TRANSACTION_TIMEOUT_MS
from smc_runtime.config import KafkaSettings, ProcessingMode, ProcessorSettings


def transactional_id(processor_id: str, processor_name: str) -> str:
    """Stable per instance slot and processor: restarting the same slot fences the old producer."""
    return f"{processor_id}.{processor_name}"


def security_settings(kafka: KafkaSettings) -> dict[str, Any]:
    """security.protocol / SASL / TLS settings; secrets are read from files (mounted Secrets)."""
    sec = kafka.security
    conf: dict[str, Any] = {"security.protocol": sec.protocol.value}
    if sec.sasl_mechanism:
        conf["sasl.mechanism"] = sec.sasl_mechanism
    if sec.sasl_username_file:
        conf["sasl.username"] = Path(sec.sasl_username_file).read_text(encoding="utf-8").strip()
    if sec.sasl_password_file:
        conf["sasl.password"] = Path(sec.sasl_password_file).read_text(encoding="utf-8").strip()
    if sec.ssl_ca_file:
        conf["ssl.ca.location"] = sec.ssl_ca_file
    return conf


def base_settings(kafka: KafkaSettings, client_id: str) -> dict[str, Any]:
    return {"bootstrap.servers": kafka.bootstrap_servers, "client.id": client_id, **security_settings(kafka)}


def consumer_settings(kafka: KafkaSettings, settings: ProcessorSettings, client_id: str) -> dict[str, Any]:
    conf: dict[str, Any] = {
        **base_settings(kafka, client_id),
        "group.id": settings.consumer_group,
        "partition.assignment.strategy": "cooperative-sticky",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Low fetch waits keep end-to-end latency in the tens of ms.
        "fetch.wait.max.ms": 20,
        "fetch.queue.backoff.ms": 50,
        # A crashed member's partitions move after this long (the broker's minimum is 6 s).
        "session.timeout.ms": 6_000,
        "heartbeat.interval.ms": 1_000,
        "max.poll.interval.ms": 120_000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 1_000,
    }
    if kafka.static_membership:
        # A restarted instance (same PROCESSOR_ID) takes its partitions straight back.
        conf["group.instance.id"] = client_id
    return conf


def producer_settings(kafka: KafkaSettings, settings: ProcessorSettings, client_id: str,
                      txn_id: str) -> dict[str, Any]:
    conf: dict[str, Any] = {
        **base_settings(kafka, client_id),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 200_000,
        "queue.buffering.max.kbytes": 262_144,
        # Back-to-back transactions otherwise stall on CONCURRENT_TRANSACTIONS retries (~100 ms each).
        "retry.backoff.ms": 10,
        "retry.backoff.max.ms": 500,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 1_000,
        "delivery.report.only.error": True,
    }
    if settings.processing_mode is ProcessingMode.EXACTLY_ONCE:
        conf["transactional.id"] = txn_id
        conf["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
    return conf


def restore_consumer_settings(kafka: KafkaSettings, settings: ProcessorSettings,
                              client_id: str) -> dict[str, Any]:
    """A group-less reader of the changelog: read_committed so aborted snapshots are invisible."""
    return {
        **base_settings(kafka, client_id),
        "group.id": f"{settings.consumer_group}.restore",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 20,
        "fetch.queue.backoff.ms": 10,
    }


def describe(kafka: KafkaSettings) -> dict[str, Any]:
    """What /status may show about the connection: no secrets, only whether they are configured."""
    sec = kafka.security
    return {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": sec.protocol.value,
        "sasl_mechanism": sec.sasl_mechanism,
        "sasl_credentials_configured": bool(sec.sasl_username_file or sec.sasl_password_file),
        "tls_ca_configured": bool(sec.ssl_ca_file),
        "static_membership": kafka.static_membership,
    }
