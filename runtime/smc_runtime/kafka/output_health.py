"""What the circuit breaker learns from the commits of one processor: a commit that succeeded (and which
topics it wrote), a failure with the topics the broker refused, and a commit call retrying too long.

Kept apart from the loop so the breaker's accounting reads in one place: the loop only reports
``committed``, ``failed`` and hands ``on_retry`` to the commit's retry loop. It also listens to every
transition of the breaker (``breaker_moved``): consumption is paused exactly while it is open, and
the gauge and /status (whose state is derived from breaker and pauses) follow at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError

from smc_runtime.kafka import topics
from smc_runtime.kafka.breaker import BreakerState, CircuitBreaker
from smc_runtime.kafka.flow import FlowControl
from smc_runtime.kafka.output import DeliveryReport
from smc_runtime.kafka.startup import BrokerWaits
from smc_runtime.kafka.telemetry import Telemetry
from smc_runtime.logs import StructLogger

STALLED_OUTPUT_S = 8.0  # a commit retrying this long opens the breaker (``on_retry``)


@dataclass
class OutputHealth:
    breaker: CircuitBreaker
    telemetry: Telemetry
    deliveries: DeliveryReport
    waits: BrokerWaits
    flow: FlowControl
    log: StructLogger
    max_message_bytes: Callable[[], int]  # the producer's, known once it is configured

    def __post_init__(self) -> None:
        self.breaker.on_transition = self.breaker_moved

    def breaker_moved(self, state: BreakerState) -> None:
        """Every transition of the breaker, whatever caused it: a commit retrying too long
        (``on_retry``) or an abort waiting for the broker opens it mid-call, the cooldown half-opens
        it in ``allows_work``, a commit closes it. Open pauses consumption (also partitions assigned
        meanwhile, see ``rebalance.py``), half-open and closed resume it, and the reported state is
        derived from both in the same step: /ready is 503 exactly while open (was: ``breaker_open``
        until a commit closed it, up to ``memory_s`` = 30 s into the half-open probing)."""
        self.telemetry.breaker(state)
        if self.flow.consumer() is None:  # not started: nothing to pause
            return
        if state is BreakerState.OPEN:
            self.flow.pause("breaker")
        else:
            self.flow.resume("breaker")

    def committed(self, written: set[str]) -> None:
        """A transaction that wrote to ``written`` committed: it closes the breaker only if it wrote to
        the topics that refused records (``CircuitBreaker.record_success``)."""
        if self.deliveries.failed_topics:  # late reports of a transaction aborted already: not this one
            self.deliveries.take_failed_topics()
        self.breaker.record_success(time.monotonic(), written)

    def failed(self) -> None:
        """An abortable failure, after its abort: counted against the topics that refused records
        (known once the abort's flush has served their delivery reports)."""
        refused = self.deliveries.take_failed_topics()
        opened = self.breaker.times_opened
        self.breaker.record_failure(time.monotonic(), refused)
        if self.breaker.times_opened != opened and refused:
            self._explain_refusal(refused)

    def _explain_refusal(self, refused: dict[str, int]) -> None:
        """The breaker opened on topics that refuse records: one ERROR line saying which and, for a
        size refusal, the topic's limit now against the producer's (read at start). The broker refuses
        whole batches, so the loop cannot tell a record over a lowered limit from a batch over it: it
        holds (nothing is dropped or dead-lettered) until the limit is restored or the pod restarts
        and applies it (docs/runtime.md, "Backpressure and circuit breaker")."""
        too_large = sorted(t for t, code in refused.items() if code == KafkaError.MSG_SIZE_TOO_LARGE)
        admin = self.waits.admin
        limits = topics.max_message_bytes(admin, too_large) if too_large and admin is not None else {}
        self.log.error("circuit breaker open: the broker refuses records of these topics; consumption "
                       "paused, input not committed",
                       refused={t: KafkaError(c).str() for t, c in refused.items()},
                       topic_max_message_bytes=limits or None,
                       producer_message_max_bytes=self.max_message_bytes() if too_large else None)

    def on_retry(self, what: str) -> Callable[[KafkaError], None]:
        """The retry hook of one commit call (``call_with_retry``): logs each retry and, once the call
        has been retrying for ``STALLED_OUTPUT_S``, opens the breaker while it goes on retrying. A
        commit waiting on a broker that does not answer, or on records it keeps refusing with a
        retriable error (NOT_ENOUGH_REPLICAS), would otherwise look healthy for the whole retry
        deadline (60 s): /health says "open" within seconds and the operator holds its scale-out; a
        commit that succeeds in the end closes it again."""
        log = self.waits.log_retry(what)
        started = time.monotonic()

        def on_retry(error: KafkaError) -> None:
            log(error)
            now = time.monotonic()
            if now - started >= STALLED_OUTPUT_S and self.breaker.state is not BreakerState.OPEN:
                self.log.error("output stalled: breaker open while the call goes on retrying", call=what,
                               stalled_seconds=round(now - started, 1), error=error.str())
                self.breaker.trip(now)
        return on_retry
