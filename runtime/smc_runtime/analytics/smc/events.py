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
    "SCOPES",
    "SmcEvent",
    "conformance_dict",
    "event_key",
    "sort_key",
]

# the five library patterns first (their ranks are part of event_key), then the context ones
PATTERNS: Final = (
    "swing",
    "fvg",
    "bos",
    "choch",
    "order_block",
    "liquidity",
    "ifvg",
    "breaker_block",
    "trend",
    "zones",
)
_LIBRARY_PATTERNS: Final = 6
ACTIONS: Final = ("formed", "updated", "mitigated", "broken", "swept", "retested", "retracted", "final")
SCOPES: Final = ("internal", "swing")
_PATTERN_RANK: Final = {p: i for i, p in enumerate(PATTERNS)}

# SPEC 7: the pattern's fields, in output order, after pattern/direction/index/timestamp_ms.
PATTERN_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "swing": ("level",),
    "fvg": ("top", "bottom", "mitigated_index"),
    "bos": ("level", "broken_index"),
    "choch": ("level", "broken_index"),
    "order_block": ("top", "bottom", "volume", "percentage", "mitigated_index"),
    "liquidity": ("level", "end", "swept"),
    "ifvg": ("top", "bottom", "mitigated_index"),
    "breaker_block": ("top", "bottom", "mitigated_index", "retest_index"),
    "trend": ("level", "swing_index", "bias"),
    "zones": (
        "top",
        "bottom",
        "equilibrium",
        "ote_618",
        "ote_705",
        "ote_786",
        "bias",
        "strong_high",
        "strong_low",
    ),
}
# context fields: left out of to_dict() while unset, so the library patterns' records stay as
# they were before the context features existed
_EXTENSION_FIELDS: Final = (
    "scope",
    "outcome",
    "retest_index",
    "bias",
    "equilibrium",
    "ote_618",
    "ote_705",
    "ote_786",
    "strong_high",
    "strong_low",
)
_INDEX_FIELDS: Final = frozenset({"mitigated_index", "broken_index", "end", "swept", "retest_index"})


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

    Context fields (unset unless the feature is on, see the SMC README): ``scope`` (``internal``
    | ``swing``) on swing/bos/choch/order_block/breaker_block when internal structure runs;
    liquidity ``outcome`` (``sweep`` | ``breakout``); breaker_block ``retest_index``; trend and
    zones ``bias``; zones ``equilibrium``, ``ote_618/705/786``, ``strong_high``, ``strong_low``.
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
    scope: str | None = None
    outcome: str | None = None
    retest_index: int | None = None
    bias: int | None = None
    equilibrium: float | None = None
    ote_618: float | None = None
    ote_705: float | None = None
    ote_786: float | None = None
    strong_high: bool | None = None
    strong_low: bool | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict in declaration order (stable): every library field, the context fields
        of the event's pattern (``PATTERN_FIELDS``, null when unset) and other context fields only
        when set, so records of the five patterns look as they always did."""
        d = {f: getattr(self, f) for f in self.__struct_fields__}
        own = PATTERN_FIELDS[self.pattern]
        for f in _EXTENSION_FIELDS:
            if d[f] is None and f not in own:
                del d[f]
        return d


def event_key(ev: SmcEvent) -> int:
    """Identity of a pattern instance: (pattern, scope, direction, index) packed in one int.

    The five library patterns without the internal scope keep the original non-negative packing
    (engine snapshots store these keys); the others use negative keys.
    """
    rank = _PATTERN_RANK[ev.pattern]
    up = 1 if ev.direction > 0 else 0
    internal = ev.scope == "internal"
    if rank < _LIBRARY_PATTERNS and not internal:
        return ev.index * 16 + rank * 2 + up
    return -1 - (ev.index * 64 + (rank * 2 + internal) * 2 + up)


def sort_key(ev: SmcEvent) -> tuple[int, int, int, bool]:
    """SPEC 7 line order: pattern (in PATTERNS order), index, direction (internal scope last)."""
    return (_PATTERN_RANK[ev.pattern], ev.index, ev.direction, ev.scope == "internal")


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
    if ev.scope is not None:
        out["scope"] = ev.scope
    if ev.outcome is not None:
        out["outcome"] = ev.outcome
    return out
