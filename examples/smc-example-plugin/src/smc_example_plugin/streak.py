"""``trade_streak``: how many trades in a row moved the price the same way, per symbol.

A minimal stateful enricher: the state is a msgspec struct kept by the pipeline per state key
(one symbol), so it snapshots to bytes and survives crashes like the built-ins' state.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from smc_runtime.analytics.interfaces import SimpleState
from smc_runtime.messages import TradeMessage


class StreakState(msgspec.Struct, array_like=True):
    """Per-symbol state: the last price and the signed length of the current run."""

    last_price: float = 0.0
    streak: int = 0
    longest_up: int = 0
    longest_down: int = 0


class TradeStreak(msgspec.Struct):
    """The document produced (into ``enriched_trades``; ``type`` tells it from the built-in one)."""

    symbol: str
    trade_id: int
    trade_time: int
    price: float
    streak: int
    direction: Literal["up", "down"]
    longest_up: int
    longest_down: int
    type: str = "trade_streak"


class TradeStreakEnricher:
    """Emits a document while a run of same-direction ticks is at least ``min_streak`` long."""

    name = "trade_streak"
    kind = "trade"

    class Params(BaseModel):
        """Validated by the runtime at start-up; unknown keys are an error."""

        model_config = ConfigDict(extra="forbid", frozen=True)
        min_streak: int = Field(3, ge=1, le=10_000, description="shortest run that produces a document")

    def __init__(self, params: Params) -> None:
        self._min_streak = params.min_streak
        self._codec = SimpleState(StreakState)

    def new_state(self) -> StreakState:
        return StreakState()

    def update(self, state: StreakState, message: TradeMessage) -> TradeStreak | None:
        price = message.price
        previous = state.last_price
        state.last_price = price
        if previous == 0.0 or price == previous:
            return None  # first trade, or no move: the run neither grows nor breaks
        if price > previous:
            state.streak = state.streak + 1 if state.streak > 0 else 1
            state.longest_up = max(state.longest_up, state.streak)
        else:
            state.streak = state.streak - 1 if state.streak < 0 else -1
            state.longest_down = max(state.longest_down, -state.streak)
        if abs(state.streak) < self._min_streak:
            return None
        return TradeStreak(message.symbol, message.trade_id, message.trade_time, price, abs(state.streak),
                           "up" if state.streak > 0 else "down", state.longest_up, state.longest_down)

    def dump_state(self, state: StreakState) -> bytes:
        return self._codec.dump(state)

    def load_state(self, data: bytes) -> StreakState:
        return self._codec.load(data)
