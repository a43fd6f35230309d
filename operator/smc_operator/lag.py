"""Consumer-group offsets from Kafka (the adapter: the only module here that talks to Kafka).

Per input partition: the group's committed offset (read by a consumer of the group that never joins it,
see ``LagReader._committed``), the log-end offset
under ``read_committed`` (so transaction markers of exactly-once producers do not count as lag) and the
log-start offset (a partition the group never committed to is read from its start:
``auto.offset.reset=earliest``). Failures come back as a ``LagError`` value for the handler to report.

Transactional inputs: every transaction ends in a control record (commit/abort marker) that takes an
offset but is never delivered. A consumer that commits "last record + 1" (the runtime does, as most EOS
consumers) leaves its committed offset on the final marker, so offsets alone say lag 1 per partition
forever (the KEDA bug class, kedacore/keda#5675). For a partition whose offset gap is small
(``<= MARKER_TAIL_MAX``) the reader fetches from the committed offset under ``read_committed``: when it
reaches the end without a record, the gap is markers (or aborted records) only and the lag is 0. The
verdict is cached per (partition, committed, log end), so an idle partition costs one fetch, not one per poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from smc_operator.scaling import LagSample, PartitionLag

_COORDINATOR_ERRORS = frozenset({KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                 KafkaError.COORDINATOR_LOAD_IN_PROGRESS})
_RETRY_PAUSE_S = 0.1
MARKER_TAIL_MAX = 16  # offset gaps up to this are checked for being control records only
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
        self._tails: dict[tuple[tuple[str, str], ...], Consumer] = {}
        self._tail_verdicts: dict[tuple[str, int, int, int], bool] = {}
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

    def _tail_reader(self, config: Mapping[str, str]) -> Consumer:
        key = tuple(sorted(config.items()))
        with self._lock:
            reader = self._tails.get(key)
            if reader is None:
                # Assigned partitions only (never subscribes, never commits): the group id is a placeholder.
                reader = Consumer({
                    **config, "group.id": "smc-operator-marker-probe", "enable.auto.commit": False,
                    "enable.auto.offset.store": False, "isolation.level": "read_committed",
                    "enable.partition.eof": True, "fetch.wait.max.ms": 50,
                    "socket.connection.setup.timeout.ms": "3000",
                })
                self._tails[key] = reader
            return reader

    def markers_only(
        self, config: Mapping[str, str], gaps: list[tuple[str, int, int, int]]
    ) -> set[tuple[str, int]]:
        """Of ``(topic, partition, committed, log_end)`` gaps, those holding no deliverable record."""
        verdicts: dict[tuple[str, int], bool] = {}
        todo: list[tuple[str, int, int, int]] = []
        for gap in gaps:
            known = self._tail_verdicts.get(gap)
            if known is None:
                todo.append(gap)
            else:
                verdicts[(gap[0], gap[1])] = known
        if todo:
            reader = self._tail_reader(config)
            ends = {(t, p): end for t, p, _, end in todo}
            reader.assign([TopicPartition(t, p, committed) for t, p, committed, _ in todo])
            pending = set(ends)
            deadline = time.monotonic() + self._timeout
            try:
                while pending and time.monotonic() < deadline:
                    msg = reader.poll(0.2)
                    if msg is None:
                        continue
                    key = (msg.topic(), msg.partition())
                    if key not in pending:
                        continue
                    error = msg.error()
                    if error is not None and error.code() == KafkaError._PARTITION_EOF:
                        verdicts[key] = True
                        pending.discard(key)
                    elif error is None:
                        offset = msg.offset()
                        verdicts[key] = offset is not None and offset >= ends[key]
                        pending.discard(key)
            finally:
                reader.unassign()
            for t, p, committed, end in todo:
                if (t, p) in verdicts:
                    self._tail_verdicts[(t, p, committed, end)] = verdicts[(t, p)]
            if len(self._tail_verdicts) > 100_000:
                self._tail_verdicts.clear()
        return {key for key, only_markers in verdicts.items() if only_markers}

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
            tail = self._tails.pop(key, None)
            if tail is not None:
                probes.append(tail)
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
        rows = [
            PartitionLag(
                topic=tp.topic,
                partition=tp.partition,
                log_end=latest[(tp.topic, tp.partition)],
                committed=committed.get((tp.topic, tp.partition)),
                log_start=earliest[(tp.topic, tp.partition)],
            )
            for tp in partitions
        ]
        gaps = [(r.topic, r.partition, r.committed, r.log_end) for r in rows
                if r.committed is not None and 0 < r.lag <= MARKER_TAIL_MAX]
        if gaps:
            try:
                markers = self.markers_only(config, gaps)
            except KafkaException:
                markers = set()  # unverified: count the gap (an over-estimate, never a missed backlog)
            rows = [replace(r, committed=r.log_end) if (r.topic, r.partition) in markers else r for r in rows]
        return LagSample(time=now, partitions=tuple(rows))

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
