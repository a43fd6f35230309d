"""Producer-queue backpressure with hysteresis (pure).

Above ``high_water`` queued messages the loop pauses its partitions; it resumes only once the queue
drained below ``low_water``, so it does not flap around one threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FlowAction(Enum):
    NONE = "none"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass
class Backpressure:
    high_water: int = 100_000
    low_water: int = 20_000
    paused: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.low_water < self.high_water:
            raise ValueError("need 0 <= low_water < high_water")

    def update(self, queued: int) -> FlowAction:
        """Decide from the producer queue depth whether to pause, resume or leave consumption as is."""
        if not self.paused and queued >= self.high_water:
            self.paused = True
            return FlowAction.PAUSE
        if self.paused and queued <= self.low_water:
            self.paused = False
            return FlowAction.RESUME
        return FlowAction.NONE
