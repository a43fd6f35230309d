"""The records a Pipeline returns (``OutputRecord``) and how they are made: the fast constructor of
the hot path, dead letters that always fit a record (value, key and error text capped), and the
``smc_signals`` document. The Kafka edge produces them as they are (``kafka/output.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

# What a dead letter may spend besides the echoed value: key, headers (error text capped below) and
# the record framing. The value is cut to max_record_bytes minus this.
DEAD_LETTER_KEY_MAX = 256
DEAD_LETTER_ERROR_MAX = 1024
DEAD_LETTER_OVERHEAD = 8192


def dead_letter_value_cap(max_record_bytes: int) -> int:
    """Bytes of the original value a dead letter echoes at most, for records up to ``max_record_bytes``."""
    return max_record_bytes - DEAD_LETTER_OVERHEAD


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One record to produce; ``role`` names an ``OutputTopics`` field."""

    role: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    # An smc_signals record's pattern (``"unknown"`` when a plugin event has none), so telemetry counts
    # patterns without parsing the JSON just encoded; not part of the record (nor of equality).
    pattern: str = field(default="", compare=False, repr=False)


new_object = object.__new__
set_role = OutputRecord.__dict__["role"].__set__
set_key = OutputRecord.__dict__["key"].__set__
set_value = OutputRecord.__dict__["value"].__set__
set_headers = OutputRecord.__dict__["headers"].__set__
set_pattern = OutputRecord.__dict__["pattern"].__set__
NO_HEADERS: tuple[tuple[str, bytes], ...] = ()


def output(role: str, key: bytes, value: bytes) -> OutputRecord:
    """``OutputRecord(role, key, value)`` without headers, at a third of the cost: a frozen
    dataclass's ``__init__`` pays ``object.__setattr__`` per field; the slot descriptors do not."""
    record: OutputRecord = new_object(OutputRecord)
    set_role(record, role)
    set_key(record, key)
    set_value(record, value)
    set_headers(record, NO_HEADERS)
    set_pattern(record, "")
    return record


def exception_text(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # a __str__ that raises: the class name must do
        text = type(exc).__name__
    return text if len(text) <= DEAD_LETTER_ERROR_MAX else text[:DEAD_LETTER_ERROR_MAX] + "..."


def dead_letter(value: bytes | None, key: bytes | None, reason: str, error: str, topic: str, partition: int,
                offset: int, timestamp_ms: int, value_cap: int,
                extra: tuple[tuple[str, bytes], ...] = ()) -> OutputRecord:
    """The dead letter of one record: its value and key echoed (cut to ``value_cap`` and
    ``DEAD_LETTER_KEY_MAX`` bytes; then headers ``truncated`` = ``true`` and ``original_size`` = the
    value's size, plus ``original_key_size`` for a cut key), reason, error text (capped) and source."""
    value = value or b""
    key = key or b""
    if len(error) > DEAD_LETTER_ERROR_MAX:
        error = error[:DEAD_LETTER_ERROR_MAX] + "..."
    headers: tuple[tuple[str, bytes], ...] = (
        ("reason", reason.encode()),
        ("error", error.encode("utf-8", "replace")),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
        ("source_timestamp", str(timestamp_ms).encode()),
        *extra,
    )
    if len(value) > value_cap or len(key) > DEAD_LETTER_KEY_MAX:
        headers += (("truncated", b"true"), ("original_size", str(len(value)).encode()))
        if len(key) > DEAD_LETTER_KEY_MAX:
            headers += (("original_key_size", str(len(key)).encode()),)
        value = value[:value_cap]
        key = key[:DEAD_LETTER_KEY_MAX]
    return OutputRecord("dead_letters", key, value, headers)


class SmcSignal(msgspec.Struct):
    """The ``smc_signals`` document: one detector event with its stream (see docs/schemas.md)."""

    symbol: str
    interval: str
    source: str
    detector: str
    event: dict[str, Any]
    type: str = "smc_signal"
