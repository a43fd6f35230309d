"""Pausing and resuming consumption: for backpressure (the producer queue, ``backpressure.py``) and
while the circuit breaker is open (``breaker.py``). Either reason pauses; consumption resumes only
once no reason is left.
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition

from smc_runtime.kafka.backpressure import Backpressure, FlowAction
from smc_runtime.kafka.telemetry import Telemetry
from smc_runtime.logs import StructLogger


class FlowControl:
    """The pause state of one processor's consumer (``consumer()`` is None before start)."""

    def __init__(self, consumer: Callable[[], Consumer | None], backpressure: Backpressure,
                 telemetry: Telemetry, log: StructLogger) -> None:
        self.consumer = consumer
        self.backpressure = backpressure
        self.telemetry = telemetry
        self.log = log
        self.paused_by: set[str] = set()

    @property
    def paused(self) -> bool:
        return bool(self.paused_by)

    def producer_queue(self, queued: int) -> None:
        """The producer's queue depth after a pass (or while a full queue is waited out)."""
        action = self.backpressure.update(queued)
        if action is FlowAction.PAUSE:
            self.log.info("producer queue above high water: pausing", queued=queued)
            self.pause("backpressure")
        elif action is FlowAction.RESUME:
            self.log.info("producer queue drained: resuming", queued=queued)
            self.resume("backpressure")

    def hold_while_open(self, consumer: Consumer, producer: Producer) -> None:
        """The breaker is open: pause and serve rebalance callbacks; a record that still slips
        through is put back, not lost."""
        self.pause("breaker")
        for stray in consumer.consume(num_messages=1, timeout=0.1):
            topic, partition, offset = stray.topic(), stray.partition(), stray.offset()
            if stray.error() is None and topic and partition is not None and offset is not None:
                consumer.seek(TopicPartition(topic, partition, offset))
        producer.poll(0)

    def pause(self, reason: str) -> None:
        if reason in self.paused_by:
            return
        self.paused_by.add(reason)
        consumer = self.consumer()
        if consumer is None:
            raise RuntimeError("processor not started")
        consumer.pause(consumer.assignment())
        self.telemetry.paused(frozenset(self.paused_by))

    def resume(self, reason: str) -> None:
        if reason not in self.paused_by:
            return
        self.paused_by.discard(reason)
        if not self.paused_by:
            consumer = self.consumer()
            if consumer is None:
                raise RuntimeError("processor not started")
            consumer.resume(consumer.assignment())
        self.telemetry.paused(frozenset(self.paused_by))
