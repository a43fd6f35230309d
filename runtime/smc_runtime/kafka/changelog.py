"""The state changelog: a compacted topic holding the latest snapshot of every state key.

Record key ``<source topic>|<source partition>|<state key>``, value the Pipeline's snapshot bytes
(a tombstone when the state is gone), header ``source_offset`` = the next source offset the snapshot
reflects. Snapshots are produced in the same transaction as the outputs and the consumed offsets,
but not in every transaction (``snapshot_interval_ms``): a snapshot of a source partition writes
every key touched since its previous snapshot plus one **marker** record, key
``<source topic>|<source partition>|`` (the empty state key, which the Pipeline never uses: every
state key starts with a non-empty symbol), value = the source offset S_p the snapshot reflects.
Recovery restores the latest committed record of every key (= the partition's state at S_p: keys
not in the last snapshot are unchanged since their own record), then replays the input from S_p up
to the committed offset with outputs suppressed.

A snapshot is written over consecutive commits, a few keys per commit (a *round*,
``partitions.SnapshotRound``): one transaction carrying every key of a partition was a latency spike
(a 170-key snapshot added ~3 ms to its commit's prepare and ~2 ms to its send at 20 ms commits). A
round covers the keys touched before its start S; each key is written with its state when written
(header ``source_offset`` h >= S) and the marker S follows the last key. A key whose record reflects
h > S_p already holds its records of [S_p, h): replay skips them (``RestoredState.key_floors``), so
the restored state is exact whether the process stopped before, during or after a round.

Why a marker rather than max(source_offset) of the partition's records: a snapshot in which no key
changed (only dead letters since the previous one) still moves S_p forward; the latest marker is
never compacted away, while a last snapshot made only of tombstones may be; and S_p is one explicit
value instead of a property of the key set. Changelogs written before markers existed (a snapshot
in every commit) fall back to max(source_offset), which was exact for them.

The topic is created at start if missing (``topics.check_topics``: compacted, one partition per
partition of the widest input topic). A source partition ``p`` maps to changelog partition
``p % changelog_partitions``; restore reads the changelog partitions it needs once and keeps the
keys of the source partitions being restored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

SourcePartition = tuple[str, int]
StateId = tuple[str, int, str]

SOURCE_OFFSET_HEADER = "source_offset"
MARKER_STATE_KEY = ""  # the snapshot marker's state key: never a Pipeline state key (symbols are non-empty)


def changelog_key(topic: str, partition: int, state_key: str) -> bytes:
    return f"{topic}|{partition}|{state_key}".encode()


def parse_changelog_key(key: bytes) -> StateId | None:
    """Inverse of ``changelog_key``; None for a key this runtime did not write."""
    parts = key.decode("utf-8", errors="replace").split("|", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


def marker_key(topic: str, partition: int) -> bytes:
    """Key of a source partition's snapshot marker (the empty state key)."""
    return changelog_key(topic, partition, MARKER_STATE_KEY)


def marker_value(offset: int) -> bytes:
    return str(offset).encode()


def changelog_partition(source_partition: int, changelog_partitions: int) -> int:
    return source_partition % changelog_partitions


def source_offset_header(offset: int) -> list[tuple[str, bytes]]:
    return [(SOURCE_OFFSET_HEADER, str(offset).encode())]


@dataclass(frozen=True)
class RestoredState:
    snapshots: dict[StateId, bytes]
    records_read: int
    source_offsets: dict[SourcePartition, int]  # max source_offset header per source partition
    markers: dict[SourcePartition, int] = field(default_factory=dict)  # latest marker per source partition
    # The source_offset header of every key's latest record, tombstones included: a key written in a
    # snapshot round after the marker reflects more than the marker (``key_floors``).
    key_offsets: dict[StateId, int] = field(default_factory=dict)

    def snapshot_offset(self, tp: SourcePartition) -> int | None:
        """S_p: the source offset the restored state of ``tp`` reflects; None if nothing was ever
        snapshotted. The marker if there is one, else (changelogs from before markers, where every
        commit snapshotted) the highest source_offset of the partition's records."""
        marker = self.markers.get(tp)
        return marker if marker is not None else self.source_offsets.get(tp)

    def key_floors(self) -> dict[SourcePartition, dict[str, int]]:
        """By source partition, the keys whose latest record reflects offsets beyond S_p, with that
        offset: replay from S_p skips their records below it (their state already holds them)."""
        floors: dict[SourcePartition, dict[str, int]] = {}
        for (t, p, key), offset in self.key_offsets.items():
            start = self.snapshot_offset((t, p))
            if start is not None and offset > start:
                floors.setdefault((t, p), {})[key] = offset
        return floors


def _apply_record(msg: Message, wanted: set[SourcePartition], snapshots: dict[StateId, bytes],
                  offsets: dict[SourcePartition, int], markers: dict[SourcePartition, int],
                  key_offsets: dict[StateId, int]) -> None:
    """One changelog record into the restored state: a marker, a snapshot or a tombstone of a key of
    the ``wanted`` source partitions (the rest is skipped)."""
    key = msg.key()
    state_id = parse_changelog_key(key) if key is not None else None
    if state_id is None or (state_id[0], state_id[1]) not in wanted:
        return
    source = (state_id[0], state_id[1])
    value = msg.value()
    if state_id[2] == MARKER_STATE_KEY:
        if value is None:
            markers.pop(source, None)
        else:
            markers[source] = int(value)
        return
    if value is None:
        snapshots.pop(state_id, None)
    else:
        snapshots[state_id] = value
    key_offsets.pop(state_id, None)
    for header in msg.headers() or ():
        name, raw = header[0], header[1]
        if name == SOURCE_OFFSET_HEADER and raw is not None:
            offsets[source] = max(offsets.get(source, 0), int(raw))
            key_offsets[state_id] = int(raw)


def read_changelog(consumer: Consumer, topic: str, changelog_partitions: int,
                   sources: Iterable[SourcePartition], timeout_s: float = 60.0,
                   on_progress: Callable[[], None] | None = None) -> RestoredState:
    """Latest committed snapshot of every state key of ``sources`` (tombstones remove keys).

    Reads each needed changelog partition from the beginning to its end under read_committed. The
    end is the partition-EOF event (it also fires when the log ends in a transaction marker, a case
    where comparing positions with the high watermark would wait forever).
    """
    wanted = set(sources)
    needed = sorted({changelog_partition(p, changelog_partitions) for _, p in wanted})
    snapshots: dict[StateId, bytes] = {}
    offsets: dict[SourcePartition, int] = {}
    markers: dict[SourcePartition, int] = {}
    key_offsets: dict[StateId, int] = {}
    records = 0
    if not needed:
        return RestoredState(snapshots, 0, offsets, markers, key_offsets)
    assignment = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in needed]
    consumer.assign(assignment)
    remaining = set(needed)
    deadline = time.monotonic() + timeout_s
    try:
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog {topic} partitions {sorted(remaining)} not read to the end "
                                   f"within {timeout_s:.0f}s")
            if on_progress is not None:
                on_progress()  # a long restore is progress, not a wedged loop
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(msg.partition())
                        continue
                    if err.fatal():
                        raise KafkaException(err)
                    continue
                records += 1
                _apply_record(msg, wanted, snapshots, offsets, markers, key_offsets)
    finally:
        consumer.unassign()
    return RestoredState(snapshots, records, offsets, markers, key_offsets)
