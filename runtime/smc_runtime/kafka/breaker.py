"""Circuit breaker around output production (pure: the caller passes the time).

closed --(failure_threshold consecutive failures)--> open --(cooldown elapsed)--> half_open
half_open --(success)--> closed; half_open --(failure)--> open again.
While open the loop pauses consumption, so failing output does not pile up unprocessed work.

A failure may name the topics that refused records (a topic whose ``max.message.bytes`` was lowered
below the batches, one without enough in-sync replicas). Then a success counts only if the transaction
wrote to those topics: a transaction that happened to touch only healthy topics (the records of
other input partitions) proves nothing about the sick one, so it neither resets the streak nor closes
a half-open breaker; otherwise the breaker would flap closed/open with every such transaction, and
an operator reading it would see "closed" while the output is still refused. Failing topics are
forgotten ``memory_s`` after the last failure (their records may never come back: revoked partitions).

Every change of ``state`` goes through ``_move``, which tells ``on_transition`` (set by
``output_health.OutputHealth``): consumption is paused exactly while open and /health and /ready
follow the breaker at once, whoever moved it (a failed commit, a commit retrying too long, an abort
waiting for the broker, the cooldown running out), instead of being polled on every pass.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
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
    memory_s: float = 30.0
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    times_opened: int = 0
    last_failure_at: float = 0.0
    failing_topics: set[str] = field(default_factory=set)
    on_transition: Callable[[BreakerState], None] | None = field(default=None, repr=False, compare=False)

    def _move(self, state: BreakerState) -> None:
        """The one place ``state`` changes; a change (not a repeated open) is told to the listener."""
        if state is self.state:
            return
        if state is BreakerState.OPEN:
            self.times_opened += 1
        self.state = state
        if self.on_transition is not None:
            self.on_transition(state)

    def allows_work(self, now: float) -> bool:
        """True if the loop may consume and produce; moves open -> half_open once the cooldown passed."""
        if self.state is BreakerState.OPEN and now - self.opened_at >= self.cooldown_s:
            self._move(BreakerState.HALF_OPEN)
        return self.state is not BreakerState.OPEN

    def record_success(self, now: float | None = None, written: Collection[str] | None = None) -> None:
        """A transaction committed. ``written``: the topics it wrote to (None: unknown, counts as a full
        success). While topics that refused records are remembered, only a transaction that wrote to
        all of them closes the breaker and resets the streak; one that wrote to some of them clears those."""
        if self.failing_topics and written is not None:
            if now is not None and now - self.last_failure_at >= self.memory_s:
                self.failing_topics.clear()
            else:
                self.failing_topics.difference_update(written)
                if self.failing_topics:
                    return
        self.failing_topics.clear()
        self.consecutive_failures = 0
        self._move(BreakerState.CLOSED)

    def trip(self, now: float) -> None:
        """Open at once (the broker is unreachable or output stalls: no need to count failures); the
        cooldown restarts."""
        self.opened_at = now
        self.last_failure_at = now
        self.consecutive_failures = max(self.consecutive_failures, self.failure_threshold)
        self._move(BreakerState.OPEN)

    def record_failure(self, now: float, topics: Collection[str] = ()) -> None:
        """A transaction failed (aborted); ``topics``: those that refused its records, if known."""
        self.consecutive_failures += 1
        self.last_failure_at = now
        self.failing_topics.update(topics)
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            self.opened_at = now
            self._move(BreakerState.OPEN)
