"""``range_breakout``: a closed bar whose close leaves the range of the previous ``lookback`` bars.

A minimal bar detector with the ``on_bar``/``finalize``/``snapshot`` model of the SMC engine.
Unlike enrichers, a detector object holds its own state (one per (symbol, interval)); the factory
creates and restores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from smc_runtime.analytics.interfaces import BarDetector
from smc_runtime.analytics.smc.bars import Bar


class BreakoutEvent(msgspec.Struct, frozen=True):
    """One breakout; ``to_dict`` is what lands in the ``smc_signals`` document's ``event``."""

    direction: int
    index: int
    timestamp_ms: int
    level: float
    close: float
    pattern: str = "range_breakout"
    action: str = "formed"

    def to_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)


class BreakoutState(msgspec.Struct, array_like=True):
    lookback: int
    index: int = -1
    highs: list[float] = []
    lows: list[float] = []


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(BreakoutState)


class RangeBreakoutDetector:
    """Keeps the last ``lookback`` highs and lows; O(lookback) per bar, which is fine per closed bar."""

    def __init__(self, state: BreakoutState) -> None:
        self._s = state

    def on_bar(self, bar: Bar) -> Sequence[BreakoutEvent]:
        s = self._s
        s.index += 1
        events: list[BreakoutEvent] = []
        if len(s.highs) == s.lookback:
            top, bottom = max(s.highs), min(s.lows)
            if bar.close > top:
                events.append(BreakoutEvent(1, s.index, bar.timestamp_ms, top, bar.close))
            elif bar.close < bottom:
                events.append(BreakoutEvent(-1, s.index, bar.timestamp_ms, bottom, bar.close))
            del s.highs[0], s.lows[0]
        s.highs.append(bar.high)
        s.lows.append(bar.low)
        return events

    def finalize(self) -> Sequence[BreakoutEvent]:
        return ()  # nothing is pending confirmation

    def snapshot(self) -> bytes:
        return _ENCODER.encode(self._s)


class RangeBreakoutFactory:
    name = "range_breakout"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        lookback: int = Field(20, ge=2, le=10_000, description="bars forming the range")

    def __init__(self, params: Params) -> None:
        self._lookback = params.lookback

    def create(self) -> BarDetector:
        return RangeBreakoutDetector(BreakoutState(self._lookback))

    def restore(self, data: bytes) -> BarDetector:
        return RangeBreakoutDetector(_DECODER.decode(data))
