"""User-tunable librdkafka settings (``kafka_clients`` in ``streams-config.yaml``): checks and merging.

Users may tune throughput and latency (batching, linger, fetch sizes and waits, socket buffers,
timeouts) per processor and per client role. Settings that carry the runtime's guarantees
(exactly-once, static membership, cooperative rebalancing), its identity (group, client and
transactional ids) or credentials are owned by the runtime and rejected with the reason, so a
tuning file can never silently turn exactly-once into at-least-once.

Checking is a pure function returning problems; ``probe_client_settings`` additionally asks
librdkafka itself to accept the values (no connection is made). The merge helpers put the user's
tunables on top of the runtime's defaults but can never override an owned key.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import Any, Literal

# A restarted instance with the same transactional.id fences its predecessor at once; a dead
# instance's open transaction otherwise blocks read_committed readers for this long. Here (not in
# kafka/clients.py, which uses it) so that config -> client_settings imports nothing back.
TRANSACTION_TIMEOUT_MS = 60_000

ClientRole = Literal["consumer", "producer", "admin"]
CLIENT_ROLES: tuple[ClientRole, ...] = ("consumer", "producer", "admin")


# Tunables every client role accepts: connections, sockets, metadata, diagnostics.
_COMMON: frozenset[str] = frozenset({
    "socket.timeout.ms", "socket.send.buffer.bytes", "socket.receive.buffer.bytes",
    "socket.keepalive.enable", "socket.nagle.disable", "socket.max.fails",
    "socket.connection.setup.timeout.ms", "connections.max.idle.ms",
    "reconnect.backoff.ms", "reconnect.backoff.max.ms",
    "metadata.max.age.ms", "topic.metadata.refresh.interval.ms", "topic.metadata.refresh.fast.interval.ms",
    "topic.metadata.refresh.sparse", "topic.metadata.propagation.max.ms",
    "message.max.bytes", "receive.message.max.bytes", "message.copy.max.bytes",
    "broker.address.family", "broker.address.ttl", "client.rack", "client.dns.lookup",
    "statistics.interval.ms", "debug", "log.connection.close", "log_level", "api.version.request.timeout.ms",
    "retry.backoff.ms", "retry.backoff.max.ms", "request.timeout.ms",
})

_CONSUMER: frozenset[str] = _COMMON | {
    "fetch.min.bytes", "fetch.wait.max.ms", "fetch.max.bytes", "max.partition.fetch.bytes",
    "fetch.message.max.bytes", "fetch.error.backoff.ms", "fetch.queue.backoff.ms",
    "queued.min.messages", "queued.max.messages.kbytes",
    "max.poll.interval.ms", "session.timeout.ms", "heartbeat.interval.ms", "coordinator.query.interval.ms",
    "auto.offset.reset", "check.crcs",
}

_PRODUCER: frozenset[str] = _COMMON | {
    "batch.size", "batch.num.messages", "linger.ms", "queue.buffering.max.ms",
    "queue.buffering.max.messages", "queue.buffering.max.kbytes", "queue.buffering.backpressure.threshold",
    "compression.type", "compression.codec", "compression.level",
    "message.timeout.ms", "delivery.timeout.ms", "message.send.max.retries", "retries",
    "sticky.partitioning.linger.ms", "partitioner",
}

ALLOWED: dict[ClientRole, frozenset[str]] = {"consumer": _CONSUMER, "producer": _PRODUCER, "admin": _COMMON}

_SECURITY = ("credentials and TLS are configured once in kafka.security (mounted Secret files), "
             "never inline in client settings")
_CALLBACK = "callbacks are installed by the runtime (error reporting, delivery reports, logging)"

# Keys the runtime owns, with why. Prefix entries end with '.'.
OWNED: dict[str, str] = {
    "bootstrap.servers": "set kafka.bootstrap_servers (or KAFKA_BOOTSTRAP_SERVERS)",
    "metadata.broker.list": "set kafka.bootstrap_servers (or KAFKA_BOOTSTRAP_SERVERS)",
    "client.id": "derived from processor_id and the processor name; logs, metrics and static membership "
                 "use it",
    "group.id": "set the processor's consumer_group",
    "group.instance.id": "static membership id derived from PROCESSOR_ID, so a restarted pod takes its "
                         "partitions straight back",
    "group.protocol": "the runtime's rebalance handling is written for the classic protocol with "
                      "cooperative-sticky assignment",
    "partition.assignment.strategy": "the loop uses incremental (cooperative-sticky) assignment; another "
                                     "strategy breaks its revoke/assign state hand-over",
    "enable.auto.commit": "offsets are committed inside the producer transaction (exactly-once); "
                          "auto-commit would commit records whose outputs were never committed",
    "enable.auto.offset.store": "offsets are sent to the transaction explicitly after processing",
    "auto.commit.interval.ms": "offsets are committed with the transaction; use commit_interval_ms",
    "isolation.level": "read_committed is required so aborted outputs of upstream producers are never "
                       "processed",
    "enable.partition.eof": "the runtime decides where it needs end-of-partition events (changelog restore)",
    "transactional.id": "derived per instance slot so a restarted instance fences its predecessor",
    "transaction.timeout.ms": "bounds how long a dead instance's open transaction blocks read_committed "
                              "readers; the runtime's watchdog and retries are tuned to it",
    "enable.idempotence": "required by transactions (exactly-once)",
    "enable.gapless.guarantee": "the runtime handles producer errors by aborting the transaction",
    "acks": "acks=all is required by the idempotent/transactional producer",
    "request.required.acks": "acks=all is required by the idempotent/transactional producer",
    "max.in.flight.requests.per.connection": "the idempotent producer needs <= 5 to keep ordering; the "
                                             "runtime keeps librdkafka's safe default",
    "max.in.flight": "the idempotent producer needs <= 5 to keep ordering",
    "delivery.report.only.error": "the loop counts only failed deliveries; per-message reports cost "
                                  "throughput",
    "security.protocol": _SECURITY,
    "sasl.": _SECURITY,
    "ssl.": _SECURITY,
    "ssl_key": _SECURITY,
    "enable.ssl.certificate.verification": _SECURITY,
    "error_cb": _CALLBACK,
    "stats_cb": _CALLBACK,
    "throttle_cb": _CALLBACK,
    "oauth_cb": _CALLBACK,
    "on_delivery": _CALLBACK,
    "on_commit": _CALLBACK,
    "logger": _CALLBACK,
}

# Names from the Java client (or our own config) that users often try, with what to use instead.
ALIASES: dict[str, str] = {
    "fetch.max.wait.ms": "librdkafka calls it fetch.wait.max.ms",
    "max.poll.records": "set the processor's max_poll_records (or MAX_POLL_RECORDS)",
    "buffer.memory": "librdkafka calls it queue.buffering.max.kbytes",
    "key.serializer": "records are bytes; there are no serializers",
    "value.serializer": "records are bytes; there are no serializers",
    "key.deserializer": "records are bytes; there are no deserializers",
    "value.deserializer": "records are bytes; there are no deserializers",
}


def owned_reason(key: str) -> str | None:
    """Why the runtime owns ``key``, or None if it does not."""
    if key in OWNED:
        return OWNED[key]
    for prefix, reason in OWNED.items():
        if prefix.endswith(".") and key.startswith(prefix):
            return reason
    return None


def check_client_settings(role: ClientRole, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems ``(key, reason)`` with one role's settings; empty when every key is an allowed tunable."""
    problems: list[tuple[str, str]] = []
    allowed = ALLOWED[role]
    for key, value in settings.items():
        if not isinstance(key, str):
            problems.append((str(key), "setting names are strings"))
            continue
        reason = owned_reason(key)
        if reason is not None:
            problems.append((key, f"owned by the runtime: {reason}"))
            continue
        if key in ALIASES:
            problems.append((key, f"not a librdkafka setting: {ALIASES[key]}"))
            continue
        if key not in allowed:
            problems.append((key, _not_allowed(role, key)))
            continue
        if value is None or not isinstance(value, str | int | float | bool):
            problems.append((key, f"value must be a string, number or boolean, not {type(value).__name__}"))
    return problems


def _not_allowed(role: ClientRole, key: str) -> str:
    others = [r for r in CLIENT_ROLES if r != role and key in ALLOWED[r]]
    if others:
        return f"a {others[0]} setting, not a {role} one: put it under kafka_clients.{others[0]}"
    close = difflib.get_close_matches(key, sorted(ALLOWED[role]), n=1, cutoff=0.8)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"not a {role} tunable this runtime allows (see docs/plugins.md, Kafka client tuning){hint}"


def _probe_base(role: ClientRole, exactly_once: bool) -> dict[str, Any]:
    """The owned keys that constrain user values (e.g. message.timeout.ms <= transaction.timeout.ms)."""
    if role == "consumer":
        return {"group.id": "smc-settings-probe", "enable.auto.commit": False,
                "isolation.level": "read_committed"}
    if role == "producer" and exactly_once:
        return {"transactional.id": "smc-settings-probe", "enable.idempotence": True, "acks": "all",
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS}
    if role == "producer":
        return {"enable.idempotence": True, "acks": "all"}
    return {}


def _silent_logger() -> logging.Logger:
    logger = logging.getLogger("smc_runtime.client_settings.probe")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def probe_client_settings(role: ClientRole, settings: Mapping[str, Any], *,
                          exactly_once: bool = True) -> list[tuple[str, str]]:
    """Ask librdkafka to accept the values (types, ranges, enums, cross-key rules); connects nowhere.

    Call only with settings that passed ``check_client_settings``."""
    if not settings:
        return []
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    conf = {**_probe_base(role, exactly_once), **settings, "logger": _silent_logger()}
    try:
        if role == "consumer":
            Consumer(conf).close()
        elif role == "producer":
            Producer(conf)
        else:
            AdminClient(conf)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        text = error.str() if hasattr(error, "str") else str(error)
        return [("", f"librdkafka rejects the {role} settings: {text.strip()}")]
    return []


def merge(role: ClientRole, runtime_settings: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """Runtime defaults overlaid with the user's tunables; an owned key in ``user`` raises ValueError.

    Config validation already rejects owned keys, so the raise is a guard against a bypassed model."""
    problems = check_client_settings(role, user)
    if problems:
        raise ValueError("; ".join(f"{key}: {reason}" for key, reason in problems))
    return {**runtime_settings, **user}


def consumer_config(runtime_settings: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """The consumer's final settings: ``clients.consumer_settings(...)`` + ``kafka_clients.consumer``."""
    return merge("consumer", runtime_settings, user)


def producer_config(runtime_settings: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """The producer's final settings: ``clients.producer_settings(...)`` + ``kafka_clients.producer``."""
    return merge("producer", runtime_settings, user)


def admin_config(runtime_settings: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """The admin client's final settings: ``clients.base_settings(...)`` + ``kafka_clients.admin``."""
    return merge("admin", runtime_settings, user)
