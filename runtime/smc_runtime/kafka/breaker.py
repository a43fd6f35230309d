"""Circuit breaker around output production (pure: the caller passes the time).

closed --(failure_threshold consecutive failures)--> open --(cooldown elapsed)--> half_open
half_open --(one success)--> closed; half_open --(failure)--> open again.
While open the loop pauses consumption, so failing output does not pile up unprocessed work.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class BreakerState(Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def gauge(self) -> int:
        """Prometheus encoding: 0 closed, 1 half-open, 2 open."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


@dataclass
class CircuitBreaker:
    failure_threshold: int = 3
    cooldown_s: float = 5.0
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    times_opened: int = 0

    def allows_work(self, now: float) -> bool:
        """True if the loop may consume and produce; moves open -> half_open once the cooldown passed."""
        if self.state is BreakerState.OPEN and now - self.opened_at >= self.cooldown_s:
            self.state = BreakerState.HALF_OPEN
        return self.state is not BreakerState.OPEN

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.state = BreakerState.CLOSED

    def trip(self, now: float) -> None:
        """Open at once (the broker is unreachable: no need to count failures); the cooldown restarts."""
        if self.state is not BreakerState.OPEN:
            self.times_opened += 1
        self.state = BreakerState.OPEN
        self.opened_at = now
        self.consecutive_failures = max(self.consecutive_failures, self.failure_threshold)

    def record_failure(self, now: float) -> None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            if self.state is not BreakerState.OPEN:
                self.times_opened += 1
            self.state = BreakerState.OPEN
            self.opened_at = now
