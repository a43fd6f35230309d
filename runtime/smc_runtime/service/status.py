"""What each processor loop tells the health server: state, counters, assignment, last commit.

The loop thread writes, HTTP threads read; one lock per processor keeps reads consistent. Throughput
is measured over a sliding window of (time, processed) samples so it reflects the recent rate.

Once running, the state is not set but derived (``running_state``) from the breaker state and the
pause reasons, each written when it changes: /ready then follows the breaker without lag and no
writer can leave a stale ``breaker_open`` (or a ``running`` while open) behind.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ProcessorState(Enum):
    STARTING = "starting"
    RESTORING = "restoring"
    RUNNING = "running"
    PAUSED = "paused"          # backpressure
    BREAKER_OPEN = "breaker_open"  # output failing (e.g. broker down): alive, not ready
    WAITING_FOR_TOPICS = "waiting_for_topics"  # output/changelog topics missing: alive, not ready
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


# The states of a started loop that ``running_state`` decides; the others are lifecycle steps.
RUNNING_STATES = frozenset({ProcessorState.RUNNING, ProcessorState.PAUSED, ProcessorState.BREAKER_OPEN})


def running_state(breaker_state: str, paused_by: Collection[str]) -> ProcessorState:
    """The state of a running loop: an open breaker wins (not ready: output is failing), then any
    pause (backpressure: ready, it is working off its queue), else running. Half-open is running:
    consumption has resumed and the next transaction is the probe (/health says ``half_open``)."""
    if breaker_state == "open":
        return ProcessorState.BREAKER_OPEN
    if paused_by:
        return ProcessorState.PAUSED
    return ProcessorState.RUNNING


STALL_AFTER_S = 30.0
THROUGHPUT_WINDOW_S = 10.0


@dataclass
class ProcessorStatus:
    name: str
    consumer_group: str
    processing_mode: str
    input_topics: list[str]
    output_topics: dict[str, str]
    commit_interval_ms: int
    batch_size: int
    state: ProcessorState = ProcessorState.STARTING
    assigned: set[tuple[str, int]] = field(default_factory=set)
    restoring: set[tuple[str, int]] = field(default_factory=set)
    # Partitions replaying [snapshot offset, committed offset) after a restore or abort: they are
    # restored and processing (ready), their outputs up to the committed offset are suppressed.
    replaying: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    replayed_records: int = 0
    messages_processed: int = 0
    messages_failed: int = 0
    outputs_produced: int = 0
    latency_ewma_ms: float = 0.0
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    last_commit_at: float | None = None
    last_commit_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    transactions_committed: int = 0
    transactions_aborted: int = 0
    breaker_state: str = "closed"
    paused_by: frozenset[str] = frozenset()  # why consumption is paused ("breaker", "backpressure")
    producer_queue: int = 0
    last_error: str | None = None
    # Output, dead-letter or changelog topics the broker does not have (item 10 of issue 12): the
    # processor does not consume until they exist; /ready is false and /status lists them.
    missing_topics: list[str] = field(default_factory=list)
    created_topics: list[str] = field(default_factory=list)
    heartbeat: float = field(default_factory=time.monotonic)
    # Set by the broker probe (service/app.py) while the loop has not beaten for a while: the last
    # time the broker did not answer. A loop blocked in a client call during an outage is waiting,
    # not wedged: it counts as stalled only STALL_AFTER_S after the broker answers again.
    broker_unreachable: bool = False
    broker_unreachable_at: float | None = None
    # Seconds out of the consumer group since the broker last answered (None: the last rebalance
    # completed; kafka/membership.py), refreshed by the loop about once a second.
    rejoin_wait_s: float | None = None
    _samples: deque[tuple[float, int]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- written by the loop -------------------------------------------------------------------------

    def beat(self, now: float) -> None:
        """Called every loop pass: proves liveness and feeds the throughput window."""
        with self.lock:
            self.heartbeat = now
            self._samples.append((now, self.messages_processed))
            while len(self._samples) > 2 and now - self._samples[0][0] > THROUGHPUT_WINDOW_S:
                self._samples.popleft()

    def record_batch(self, processed: int, failed: int, outputs: int, per_message_ms: float) -> None:
        with self.lock:
            self.messages_processed += processed
            self.messages_failed += failed
            self.outputs_produced += outputs
            if processed:
                alpha = 0.2
                self.latency_ewma_ms = (1 - alpha) * self.latency_ewma_ms + alpha * per_message_ms

    def set_state(self, state: ProcessorState, error: str | None = None) -> None:
        """A lifecycle step (starting, restoring, stopping, ...), taken as given."""
        with self.lock:
            self.state = state
            if error is not None:
                self.last_error = error

    def flow_changed(self, *, breaker_state: str | None = None,
                     paused_by: frozenset[str] | None = None) -> None:
        """The breaker moved or the pause reasons changed: a running loop's state follows at once."""
        with self.lock:
            if breaker_state is not None:
                self.breaker_state = breaker_state
            if paused_by is not None:
                self.paused_by = paused_by
            if self.state in RUNNING_STATES:
                self.state = running_state(self.breaker_state, self.paused_by)

    def enter_running(self) -> None:
        """Assigned partitions restored: running, paused or breaker-open as breaker and pauses say."""
        with self.lock:
            self.state = running_state(self.breaker_state, self.paused_by)

    # --- read by the HTTP server ---------------------------------------------------------------------

    def throughput(self) -> float:
        with self.lock:
            if len(self._samples) < 2:
                return 0.0
            (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
            return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def is_ready(self) -> bool:
        with self.lock:
            return (self.state in (ProcessorState.RUNNING, ProcessorState.PAUSED)
                    and bool(self.assigned) and not self.restoring and not self.missing_topics
                    and not self.broker_unreachable)

    def broker_probed(self, now: float, reachable: bool) -> None:
        with self.lock:
            self.broker_unreachable = not reachable
            if not reachable:
                self.broker_unreachable_at = now

    def broker_outage(self) -> tuple[bool, float | None]:
        """(the broker does not answer now, when it last did not)."""
        with self.lock:
            return self.broker_unreachable, self.broker_unreachable_at

    def rejoining(self, waited_s: float | None) -> None:
        with self.lock:
            self.rejoin_wait_s = waited_s

    def stalled_for(self, now: float) -> float:
        """Seconds since the loop last showed progress, an outage counting as progress (see
        ``broker_unreachable_at``)."""
        with self.lock:
            return self._stalled_for(now)

    def _stalled_for(self, now: float) -> float:
        last = self.heartbeat
        if self.broker_unreachable_at is not None and self.broker_unreachable_at > last:
            last = self.broker_unreachable_at
        return now - last

    def is_healthy(self, now: float) -> bool:
        """Liveness: the loop comes round (heartbeat) and has not failed or stopped.

        An open breaker, missing topics or an unreachable broker are *not* liveness failures: a
        restart cannot fix them and would only restart into the same outage (the loop keeps
        retrying; readiness is false meanwhile). A loop stuck inside a call stops beating and fails
        this check (and the watchdog in ``service/app.py`` exits it)."""
        with self.lock:
            if self.state in (ProcessorState.FAILED, ProcessorState.STOPPED):
                return False
            return self._stalled_for(now) < STALL_AFTER_S

    def health(self, now: float) -> dict[str, Any]:
        throughput = self.throughput()
        healthy = self.is_healthy(now)
        ready = self.is_ready()
        with self.lock:
            return {
                "state": self.state.value,
                "healthy": healthy,
                "checks": {
                    "loop_alive": self._stalled_for(now) < STALL_AFTER_S,
                    "broker_reachable": not self.broker_unreachable,
                    "partitions_assigned": bool(self.assigned),
                    "state_restored": not self.restoring,
                    "ready": ready,
                    "circuit_breaker": self.breaker_state,
                    "topics_present": not self.missing_topics,
                },
                "metrics": {
                    "messages_processed": self.messages_processed,
                    "messages_failed": self.messages_failed,
                    "processing_latency_ms": round(self.latency_ewma_ms, 4),
                    "throughput_per_second": round(throughput, 2),
                },
            }

    def detail(self, now: float) -> dict[str, Any]:
        with self.lock:
            return {
                "state": self.state.value,
                "consumer_group": self.consumer_group,
                "processing_mode": self.processing_mode,
                "assignment": sorted(f"{t}[{p}]" for t, p in self.assigned),
                "restoring": sorted(f"{t}[{p}]" for t, p in self.restoring),
                "replaying": {f"{t}[{p}]": {"from": start, "until": until}
                              for (t, p), (start, until) in sorted(self.replaying.items())},
                "replayed_records": self.replayed_records,
                "lag": {f"{t}[{p}]": lag for (t, p), lag in sorted(self.lag.items())},
                "positions": {f"{t}[{p}]": o for (t, p), o in sorted(self.positions.items())},
                "last_commit": None if self.last_commit_at is None else {
                    "seconds_ago": round(now - self.last_commit_at, 3),
                    "offsets": {f"{t}[{p}]": o for (t, p), o in sorted(self.last_commit_offsets.items())},
                },
                "transactions": {"committed": self.transactions_committed,
                                 "aborted": self.transactions_aborted},
                "circuit_breaker": self.breaker_state,
                "paused_by": sorted(self.paused_by),
                "broker_reachable": not self.broker_unreachable,
                "rejoining_group_for_s": self.rejoin_wait_s,
                "missing_topics": list(self.missing_topics),
                "created_topics": list(self.created_topics),
                "producer_queue": self.producer_queue,
                "outputs_produced": self.outputs_produced,
                "last_error": self.last_error,
                "config": {
                    "input_topics": self.input_topics,
                    "output_topics": self.output_topics,
                    "commit_interval_ms": self.commit_interval_ms,
                    "batch_size": self.batch_size,
                },
            }
