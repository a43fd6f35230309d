"""The topics a processor writes to, checked (and optionally created) before it consumes anything.

Without this, a processor started against a broker that does not auto-create topics consumes, then
aborts a transaction every few seconds with "Unknown topic or partition" and nothing says why
(issue 12, item 10). At start the loop calls ``check_topics``: every output topic (dead letters
included) and the changelog must exist. Missing ones are created when the policy allows it
(``TopicPolicy.create_missing``, on by default, like Kafka Streams for its internal topics and Quix
Streams for all of its topics); the changelog is always created (compacted), as before. Whatever is
still missing (creation disabled or refused, e.g. no CreateTopics ACL) is reported: the processor
stays alive but not ready, lists the names in ``/status`` and one log line, and checks again.

The same metadata answers item 5 of the issue on the Kafka side: ``max.message.bytes`` of every
topic written to bounds the producer's ``message.max.bytes``, so a record that would not fit a topic
fails locally at ``produce()`` (where the loop can replace it, see ``processor.py``) and never as a
broker-side delivery error that aborts the transaction on every replay.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from smc_runtime.config import ProcessorSettings

CHANGELOG_TOPIC_CONFIG: dict[str, str] = {
    "cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "600000",
}
# Room for the record batch framing (61 bytes) and the record's own overhead: the producer's
# message.max.bytes counts key + value + headers + a per-record maximum, the broker the whole batch.
BATCH_FRAMING_BYTES = 512
METADATA_TIMEOUT_S = 10.0
CREATE_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class TopicPolicy:
    """What to do about missing output topics (the processor's ``topics`` config section).

    ``create_missing``: create them (default true); ``partitions``: for created output topics
    (None: as many as the widest input topic); ``replication_factor``: -1 = the broker's
    ``default.replication.factor``."""

    create_missing: bool = True
    partitions: int | None = None
    replication_factor: int = -1

    @classmethod
    def of(cls, settings: ProcessorSettings) -> TopicPolicy:
        section = settings.topics
        return cls(create_missing=section.create_missing, partitions=section.partitions,
                   replication_factor=section.replication_factor)


@dataclass
class TopicCheck:
    """The outcome of one check: what is missing, what was created, and the size limits found."""

    missing: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # topic -> why it could not be created
    changelog_partitions: int = 0
    max_message_bytes: dict[str, int] = field(default_factory=dict)  # topic -> max.message.bytes

    @property
    def smallest_max_message_bytes(self) -> int | None:
        return min(self.max_message_bytes.values(), default=None)


def _present(metadata: Any) -> dict[str, int]:
    """Topics with metadata and partitions (name -> partition count)."""
    return {name: len(t.partitions) for name, t in metadata.topics.items()
            if t.error is None and t.partitions}


def check_topics(admin: AdminClient, outputs: Sequence[str], changelog: str, inputs: Iterable[str],
                 policy: TopicPolicy, record_bytes: int | None = None,
                 timeout_s: float = CREATE_TIMEOUT_S) -> TopicCheck:
    """Check that ``outputs`` and ``changelog`` exist, creating what the policy allows (with
    ``max.message.bytes`` room for records of ``record_bytes``); raises ``KafkaException`` when the
    broker does not answer (the caller retries)."""
    sized = {} if record_bytes is None else {"max.message.bytes": str(record_bytes + BATCH_FRAMING_BYTES)}
    present = _present(admin.list_topics(timeout=METADATA_TIMEOUT_S))
    widest = max((present[t] for t in inputs if t in present), default=1)
    wanted = sorted(set(outputs) | {changelog})
    check = TopicCheck()
    new: list[Any] = []
    for topic in wanted:
        if topic in present:
            continue
        if topic == changelog:
            # Internal state: always created, one partition per source partition of the widest input.
            new.append(NewTopic(topic, num_partitions=widest, replication_factor=policy.replication_factor,
                                config={**CHANGELOG_TOPIC_CONFIG, **sized}))
        elif policy.create_missing:
            new.append(NewTopic(topic, num_partitions=policy.partitions or widest,
                                replication_factor=policy.replication_factor, config=dict(sized)))
        else:
            check.errors[topic] = "missing and topic creation is disabled"
    if new:
        for topic, future in admin.create_topics(new, operation_timeout=timeout_s).items():
            try:
                future.result()
                check.created.append(topic)
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a concurrent creator: fine
                    check.errors[topic] = error.str()
        present = _wait_visible(admin, [t for t in wanted if t not in check.errors], present, timeout_s)
    check.created.sort()
    check.missing = [t for t in wanted if t not in present]
    check.changelog_partitions = present.get(changelog, 0)
    existing = [t for t in wanted if t in present]
    if existing:
        check.max_message_bytes = max_message_bytes(admin, existing)
    return check


def _wait_visible(admin: AdminClient, topics: list[str], present: dict[str, int],
                  timeout_s: float) -> dict[str, int]:
    """CreateTopics returns when the controller has the topics; wait until the metadata shows them."""
    deadline = time.monotonic() + timeout_s
    while True:
        if all(t in present for t in topics) or time.monotonic() > deadline:
            return present
        time.sleep(0.1)
        present = _present(admin.list_topics(timeout=METADATA_TIMEOUT_S))


def max_message_bytes(admin: AdminClient, topics: Sequence[str]) -> dict[str, int]:
    """Effective ``max.message.bytes`` of each topic (topics whose configs cannot be read are left out:
    the describe needs DescribeConfigs, which a restricted principal may lack)."""
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    limits: dict[str, int] = {}
    try:
        futures = admin.describe_configs(resources, request_timeout=METADATA_TIMEOUT_S)
    except KafkaException:
        return limits
    for resource, future in futures.items():
        try:
            entry = future.result().get("max.message.bytes")
        except KafkaException:
            continue
        if entry is not None and entry.value is not None and str(entry.value).isdigit():
            limits[resource.name] = int(entry.value)
    return limits


def producer_max_message_bytes(check: TopicCheck, record_bytes: int) -> int:
    """The producer's ``message.max.bytes``: ``record_bytes`` (the configured ``max_record_bytes``,
    which the Pipeline's dead-letter cap and snapshot validation keep records within), lowered to
    what every topic written to accepts. A larger record then fails locally in ``produce()``."""
    smallest = check.smallest_max_message_bytes
    if smallest is None:
        return record_bytes
    return max(1_000, min(record_bytes, smallest - BATCH_FRAMING_BYTES))
