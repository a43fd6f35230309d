"""Consumer-group offsets from Kafka (the adapter: the only module here that talks to Kafka).

Per input partition: the group's committed offset (read by a consumer of the group that never joins it,
see ``LagReader._committed``), the log-end offset
under ``read_committed`` (so transaction markers of exactly-once producers do not count as lag) and the
log-start offset (a partition the group never committed to is read from its start:
``auto.offset.reset=earliest``). Failures come back as a ``LagError`` value for the handler to report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from smc_operator.scaling import LagSample, PartitionLag

_COORDINATOR_ERRORS = frozenset({KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                 KafkaError.COORDINATOR_LOAD_IN_PROGRESS})
_RETRY_PAUSE_S = 0.1
_LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]
_EARLIEST = OffsetSpec.earliest()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class LagError:
    reason: str  # KafkaUnreachable | TopicMissing | OffsetsUnavailable
    message: str


class LagReader:
    """Caches one AdminClient per distinct client configuration and one offset probe per group
    (they hold connections)."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self._timeout = timeout_s
        self._clients: dict[tuple[tuple[str, str], ...], AdminClient] = {}
        self._probes: dict[tuple[tuple[tuple[str, str], ...], str], Consumer] = {}
        self._lock = threading.Lock()

    def _client(self, config: Mapping[str, str]) -> AdminClient:
        key = tuple(sorted(config.items()))
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = AdminClient({**config, "socket.connection.setup.timeout.ms": "3000"})
                self._clients[key] = client
            return client

    def _probe(self, config: Mapping[str, str], group: str) -> Consumer:
        key = (tuple(sorted(config.items())), group)
        with self._lock:
            probe = self._probes.get(key)
            if probe is None:
                probe = Consumer({
                    **config, "group.id": group, "enable.auto.commit": False,
                    "isolation.level": "read_uncommitted", "socket.connection.setup.timeout.ms": "3000",
                })
                self._probes[key] = probe
            return probe

    def forget_group(self, group: str) -> None:
        """Close the offset probes of a group nobody asks about any more (its resource is gone)."""
        with self._lock:
            probes = [self._probes.pop(k) for k in [k for k in self._probes if k[1] == group]]
        for probe in probes:
            probe.close()

    def forget(self, config: Mapping[str, str]) -> None:
        key = tuple(sorted(config.items()))
        with self._lock:
            self._clients.pop(key, None)
            stale = [k for k in self._probes if k[0] == key]
            probes = [self._probes.pop(k) for k in stale]
        for probe in probes:
            probe.close()

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
            committed = self._committed(self._probe(config, group), partitions)
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

    def _committed(self, probe: Consumer, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """The group's committed offsets via ``Consumer.committed`` on a consumer with the group's id
        that never subscribes (so never joins the group).

        Not ``AdminClient.list_consumer_group_offsets``: when the broker answers its OffsetFetch with
        NOT_COORDINATOR (a group not created yet, a fresh or restarting broker), librdkafka dereferences
        the admin client's missing group handle and the process dies with SIGSEGV (librdkafka#5040;
        seen here in 2 of 5 benchmark runs against a fresh broker). ``read_uncommitted``: the last
        completed commit, without waiting out a pending transaction's offsets."""
        request = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                result = probe.committed(request, timeout=max(0.5, deadline - time.monotonic()))
                break
            except KafkaException as exc:
                # A group's first lookup often meets NOT_COORDINATOR while the client finds its
                # coordinator; librdkafka looks it up again, so a retry shortly after succeeds.
                error = exc.args[0] if exc.args else None
                retriable = error is not None and (error.retriable() or error.code() in _COORDINATOR_ERRORS)
                if not retriable or time.monotonic() + _RETRY_PAUSE_S >= deadline:
                    raise
                time.sleep(_RETRY_PAUSE_S)
        out: dict[tuple[str, int], int] = {}
        for tp in result:
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
