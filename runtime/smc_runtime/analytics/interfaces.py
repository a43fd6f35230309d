"""The small typed interfaces every enricher, bar detector and alert rule implements.

Built-ins implement exactly these (no private fast path), so a plugin is a peer of a built-in.
State lives outside the object, in a value the pipeline owns per (source partition, state key):
the object holds configuration only, which is what makes snapshot/restore and partition
hand-over trivial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar

import msgspec

from smc_runtime.analytics.smc.bars import Bar

MessageKind = Literal["trade", "orderbook", "kline"]

MsgT = TypeVar("MsgT", contravariant=True)
StateT = TypeVar("StateT")


class NonFiniteState(ArithmeticError):
    """Raised by an enricher or detector whose state is no longer finite: the pipeline resets the
    key with a ``state_reset`` alert (dead letter ``non_finite_state``) instead of publishing NaN.
    Inputs within ``InputBounds`` cannot cause it with the built-ins; it guards their sums anyway."""


class Enricher(Protocol[MsgT, StateT]):
    """Turns one message of ``kind`` into one output document, updating per-key state.

    ``update`` returns None when the message yields no document (e.g. a book not yet synced).
    The document is any msgspec-encodable object (a ``Struct`` for built-ins).
    """

    name: str
    kind: MessageKind

    def new_state(self) -> StateT: ...

    def update(self, state: StateT, message: MsgT) -> Any | None: ...

    def dump_state(self, state: StateT) -> bytes: ...

    def load_state(self, data: bytes) -> StateT: ...


class DetectorEvent(Protocol):
    """What the pipeline needs from a detector event (``SmcEvent`` satisfies it)."""

    def to_dict(self) -> Mapping[str, object]: ...


class BarDetector(Protocol):
    """A streaming detector over closed bars of one (symbol, interval)."""

    def on_bar(self, bar: Bar) -> Sequence[DetectorEvent]: ...

    def finalize(self) -> Sequence[DetectorEvent]: ...

    def snapshot(self) -> bytes: ...


class DetectorFactory(Protocol):
    """Creates fresh detectors and restores snapshotted ones."""

    name: str

    def create(self) -> BarDetector: ...

    def restore(self, data: bytes) -> BarDetector: ...


class Alert(msgspec.Struct, frozen=True):
    """One alert record (``alerts`` output role)."""

    rule: str
    severity: Literal["info", "warning", "critical"]
    symbol: str
    timestamp_ms: int
    message: str
    details: dict[str, Any] = {}


class AlertRule(Protocol):
    """Looks at one enriched document or detector event and may raise alerts.

    ``kind`` is ``trade`` / ``orderbook`` / ``kline`` for enriched documents and ``signal`` for
    detector events (``record`` is then the event's dict). ``active`` is the per-key set of
    conditions currently raised; rules use it to alert on the edge, not on every message.
    """

    name: str
    kinds: frozenset[str]

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any,
                 active: set[str]) -> list[Alert]: ...


class SimpleState(Generic[StateT]):
    """Shared msgpack (de)serialisation for enrichers whose state is a msgspec ``Struct``."""

    def __init__(self, state_type: type[StateT]) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[StateT] = msgspec.msgpack.Decoder(state_type)

    def dump(self, state: StateT) -> bytes:
        return self._encoder.encode(state)

    def load(self, data: bytes) -> StateT:
        return self._decoder.decode(data)
