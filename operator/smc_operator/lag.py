"""Consumer-group offsets from Kafka (the adapter: the only module here that talks to Kafka).

Per input partition: the group's committed offset (``list_consumer_group_offsets``), the log-end offset
under ``read_committed`` (so transaction markers of exactly-once producers do not count as lag) and the
log-start offset (a partition the group never committed to is read from its start:
``auto.offset.reset=earliest``). Failures come back as a ``LagError`` value for the handler to report.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from smc_operator.scaling import LagSample, PartitionLag

_LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]
_EARLIEST = OffsetSpec.earliest()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class LagError:
    reason: str  # KafkaUnreachable | TopicMissing | OffsetsUnavailable
    message: str


class LagReader:
    """Caches one AdminClient per distinct client configuration (they hold connections)."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self._timeout = timeout_s
        self._clients: dict[tuple[tuple[str, str], ...], AdminClient] = {}
        self._lock = threading.Lock()

    def _client(self, config: Mapping[str, str]) -> AdminClient:
        key = tuple(sorted(config.items()))
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = AdminClient({**config, "socket.connection.setup.timeout.ms": "3000"})
                self._clients[key] = client
            return client

    def forget(self, config: Mapping[str, str]) -> None:
        with self._lock:
            self._clients.pop(tuple(sorted(config.items())), None)

    def read(
        self, config: Mapping[str, str], group: str, topics: list[str], now: float
    ) -> LagSample | LagError:
        """Offsets of every partition of ``topics`` for ``group``; ``now`` stamps the sample."""
        admin = self._client(config)
        try:
            metadata = admin.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            self.forget(config)
            return LagError(
                "KafkaUnreachable", f"cannot reach Kafka at {config.get('bootstrap.servers')}: {exc}"
            )
        partitions: list[TopicPartition] = []
        missing = []
        for topic in topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                missing.append(topic)
                continue
            partitions.extend(TopicPartition(topic, p) for p in sorted(meta.partitions))
        if missing and not partitions:
            return LagError("TopicMissing", f"input topics not found: {', '.join(missing)}")
        try:
            committed = self._committed(admin, group, partitions)
            latest = self._offsets(admin, partitions, _LATEST)
            earliest = self._offsets(admin, partitions, _EARLIEST)
        except KafkaException as exc:
            return LagError("OffsetsUnavailable", f"cannot read offsets of group {group!r}: {exc}")
        rows = tuple(
            PartitionLag(
                topic=tp.topic,
                partition=tp.partition,
                log_end=latest[(tp.topic, tp.partition)],
                committed=committed.get((tp.topic, tp.partition)),
                log_start=earliest[(tp.topic, tp.partition)],
            )
            for tp in partitions
        )
        return LagSample(time=now, partitions=rows)

    def _committed(
        self, admin: AdminClient, group: str, partitions: list[TopicPartition]
    ) -> dict[tuple[str, int], int]:
        request = [ConsumerGroupTopicPartitions(group, list(partitions))]
        futures = admin.list_consumer_group_offsets(request, request_timeout=self._timeout)
        result = futures[group].result(timeout=self._timeout + 1)
        out: dict[tuple[str, int], int] = {}
        for tp in result.topic_partitions or []:
            if tp.error is None and tp.offset >= 0:
                out[(tp.topic, tp.partition)] = tp.offset
        return out

    def _offsets(
        self, admin: AdminClient, partitions: list[TopicPartition], spec: OffsetSpec
    ) -> dict[tuple[str, int], int]:
        futures = admin.list_offsets(
            {tp: spec for tp in partitions},
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=self._timeout,
        )
        return {
            (tp.topic, tp.partition): f.result(timeout=self._timeout + 1).offset for tp, f in futures.items()
        }


def client_config(
    bootstrap_servers: str,
    protocol: str,
    sasl: tuple[str, str, str] | None = None,
    ca_pem: str | None = None,
) -> dict[str, str]:
    """librdkafka settings for the operator's own AdminClient (credentials read from the CR's Secrets)."""
    config = {"bootstrap.servers": bootstrap_servers, "security.protocol": protocol}
    if sasl is not None:
        mechanism, username, password = sasl
        config.update({"sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password})
    if ca_pem is not None:
        config["ssl.ca.pem"] = ca_pem
    return config
