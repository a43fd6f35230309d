"""The one SMC event type, used by the detectors, the pipeline, the CLI and the tests.

An event is an immutable record of one pattern instance at one moment of its life: the
detectors emit a new ``SmcEvent`` whenever an instance forms, changes (mitigated, broken,
swept, updated), becomes final or is retracted. Consumers keep the latest event per
``key`` and drop keys on ``retracted``: that fold is the "alive" set of SPEC 4.0.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = [
    "ACTIONS",
    "PATTERNS",
    "PATTERN_FIELDS",
    "SmcEvent",
    "conformance_dict",
    "event_key",
    "sort_key",
]

PATTERNS: Final = ("swing", "fvg", "bos", "choch", "order_block", "liquidity")
ACTIONS: Final = ("formed", "updated", "mitigated", "broken", "swept", "retracted", "final")
_PATTERN_RANK: Final = {p: i for i, p in enumerate(PATTERNS)}

# SPEC 7: the pattern's fields, in output order, after pattern/direction/index/timestamp_ms.
PATTERN_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "swing": ("level",),
    "fvg": ("top", "bottom", "mitigated_index"),
    "bos": ("level", "broken_index"),
    "choch": ("level", "broken_index"),
    "order_block": ("top", "bottom", "volume", "percentage", "mitigated_index"),
    "liquidity": ("level", "end", "swept"),
}
_INDEX_FIELDS: Final = frozenset({"mitigated_index", "broken_index", "end", "swept"})


class SmcEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One SMC pattern instance as of one bar.

    ``index`` is the library row (bar position from 0), ``confirmed_at`` the first bar at which
    a causal detector could emit it, ``final_at`` the bar after which it can no longer change
    (``None``: not yet, or only at end of stream). Index-valued fields use ``None`` for "never";
    compat mode converts that to the library's 0 sentinel only when printing.

    Pattern fields: swing ``level`` (``artificial`` for compat's endpoint swings); fvg ``top``,
    ``bottom``, ``mitigated_index``; bos/choch ``level``, ``broken_index``; order_block ``top``,
    ``bottom``, ``volume``, ``percentage``, ``mitigated_index``, ``swing_index`` (the crossed swing),
    ``formed_at`` (the breakout bar); liquidity ``level``, ``end``, ``swept``.
    """

    pattern: str
    action: str
    direction: int
    index: int
    timestamp_ms: int
    confirmed_at: int
    final_at: int | None = None
    level: float | None = None
    top: float | None = None
    bottom: float | None = None
    volume: float | None = None
    percentage: float | None = None
    mitigated_index: int | None = None
    broken_index: int | None = None
    end: int | None = None
    swept: int | None = None
    swing_index: int | None = None
    formed_at: int | None = None
    artificial: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict with every field, in declaration order (stable)."""
        return {f: getattr(self, f) for f in self.__struct_fields__}


def event_key(ev: SmcEvent) -> int:
    """Identity of a pattern instance: (pattern, direction, index) packed in one int."""
    return ev.index * 16 + _PATTERN_RANK[ev.pattern] * 2 + (1 if ev.direction > 0 else 0)


def sort_key(ev: SmcEvent) -> tuple[int, int, int]:
    """SPEC 7 line order: pattern (in PATTERNS order), index, direction."""
    return (_PATTERN_RANK[ev.pattern], ev.index, ev.direction)


def conformance_dict(ev: SmcEvent, compat: bool) -> dict[str, object]:
    """The ``smc-runtime detect`` line of SPEC 7 (key order fixed; 0 vs null by mode)."""
    out: dict[str, object] = {
        "pattern": ev.pattern,
        "direction": ev.direction,
        "index": ev.index,
        "timestamp_ms": ev.timestamp_ms,
    }
    for name in PATTERN_FIELDS[ev.pattern]:
        value = getattr(ev, name)
        if value is None and compat and name in _INDEX_FIELDS:
            value = 0
        out[name] = value
    return out
