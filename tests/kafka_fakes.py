"""A stand-in for ``confluent_kafka.Message``, shared by the unit tests and the Kafka-free benchmark
(``benchmarks/bench_commit_path.py``); both import it with the repository root on ``sys.path``.

Slotted: the benchmark builds and reads 100,000s of them, and what it measures is the loop around
them, not attribute look-ups."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError


@dataclass(slots=True)
class FakeMessage:
    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _key: bytes | None = None
    _headers: list[tuple[str, bytes]] | None = None
    _error: KafkaError | None = None
    _timestamp_ms: int | None = None  # None: 1,000 + the offset (distinct, increasing)

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        """(TIMESTAMP_CREATE_TIME, milliseconds), as the client returns it."""
        ts = self._timestamp_ms
        return (1, 1_000 + self._offset if ts is None else ts)
