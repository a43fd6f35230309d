"""``price_level``: alert when a symbol's trade price crosses a configured level.

Alert rules hold no state of their own: ``active`` (per state key, snapshotted by the pipeline)
remembers which side of each level the price was on, so only a crossing alerts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from smc_runtime.analytics.enrichers import EnrichedTrade
from smc_runtime.analytics.interfaces import Alert


class PriceLevelRule:
    name = "price_level"
    kinds = frozenset({"trade"})

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        levels: dict[str, list[float]] = Field(description="symbol -> price levels")
        severity: Literal["info", "warning", "critical"] = "info"

    def __init__(self, params: Params) -> None:
        self._levels = {symbol.upper(): sorted(levels) for symbol, levels in params.levels.items()}
        self._severity = params.severity

    def evaluate(self, kind: str, symbol: str, timestamp_ms: int, record: Any,
                 active: set[str]) -> list[Alert]:
        if not isinstance(record, EnrichedTrade):
            return []  # other trade enrichers' documents (plugins) are not trades
        alerts: list[Alert] = []
        for level in self._levels.get(symbol, ()):
            above, below = f"{self.name}:{level}:above", f"{self.name}:{level}:below"
            side, other = (above, below) if record.price >= level else (below, above)
            crossed = other in active
            active.discard(other)
            active.add(side)
            if crossed:
                direction = "above" if side == above else "below"
                alerts.append(Alert(self.name, self._severity, symbol, timestamp_ms,
                                    f"{symbol} crossed {direction} {level:g} at {record.price:g}",
                                    {"level": level, "direction": direction, "price": record.price,
                                     "trade_id": record.trade_id}))
        return alerts
