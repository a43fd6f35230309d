"""Whether the consumer is back in its group after it lost its partitions (pure: the caller passes the time).

A member that lost its assignment (its session timed out, typically while the broker was away) or has
just subscribed rejoins on its own: the next completed rebalance calls the assignment callback, with an
empty list if nothing is assigned. A rebalance lasts at most the rebalance timeout
(``max.poll.interval.ms``) plus a session timeout, so a member without one long after the broker
answers again is not waiting its turn: its client is not rejoining (seen once in CI after a broker
restart, the pod alive and never ready again; the cause is not established). Waiting longer would only
stall the partitions. First
the consumer subscribes again (it leaves and joins: no restart, no lost work, the transaction is
already aborted); if that brings no rebalance within the same time, only fresh clients help, and the
loop exits for a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# Beyond the longest legitimate rebalance: the defaults give 120 s + 6 s, plus a margin.
REJOIN_MARGIN_S = 24.0


class Rejoin(Enum):
    WAIT = "wait"
    RESUBSCRIBE = "resubscribe"
    RESTART = "restart"


def rejoin_deadline_s(max_poll_interval_ms: int, session_timeout_ms: int) -> float:
    """How long a member may go without a completed rebalance once the broker answers."""
    return (max_poll_interval_ms + session_timeout_ms) / 1000 + REJOIN_MARGIN_S


# The runtime's consumer settings (``clients.consumer_settings``): 150 s.
DEFAULT_DEADLINE_S = rejoin_deadline_s(120_000, 6_000)


@dataclass
class GroupMembership:
    """Out of the group since ``waiting_since`` (None: the last rebalance completed)."""

    deadline_s: float
    waiting_since: float | None = None
    resubscribed: bool = False

    def left(self, now: float) -> None:
        """Subscribed, or the assignment was lost: a rebalance is due (the earliest moment counts)."""
        if self.waiting_since is None:
            self.waiting_since = now

    def joined(self) -> None:
        """A rebalance completed (the assignment callback ran)."""
        self.waiting_since = None
        self.resubscribed = False

    def waited(self, now: float, broker_down: bool, broker_down_at: float | None) -> float:
        """Seconds out of the group since the broker last answered (0 while it does not)."""
        if self.waiting_since is None or broker_down:
            return 0.0
        since = self.waiting_since if broker_down_at is None else max(self.waiting_since, broker_down_at)
        return max(0.0, now - since)

    def verdict(self, now: float, broker_down: bool, broker_down_at: float | None) -> Rejoin:
        if self.waited(now, broker_down, broker_down_at) < self.deadline_s:
            return Rejoin.WAIT
        return Rejoin.RESTART if self.resubscribed else Rejoin.RESUBSCRIBE

    def resubscribing(self, now: float) -> None:
        """The consumer subscribes again: the restart, if it comes, is a full deadline later."""
        self.resubscribed = True
        self.waiting_since = now
