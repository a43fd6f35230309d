"""Subscribing again, as the loop does for a consumer that is not back in its group long after the broker
answers (``kafka/membership.py``), with a real librdkafka consumer and broker: the member leaves and
rejoins, the handler sees the revoke and a new assignment of the same partitions, and the membership
clock stops."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer

from smc_runtime.config import KafkaSettings, ProcessorSettings
from smc_runtime.kafka import changelog as cl
from smc_runtime.kafka.clients import consumer_settings
from smc_runtime.kafka.membership import Rejoin
from smc_runtime.kafka.processor import ProcessorRunner
from smc_runtime.service.metrics import RuntimeMetrics
from smc_runtime.service.status import ProcessorStatus
from tests.testbed.fixture_types import MakeTopic
from tests.unit.runtime.test_resume import FakePipeline, FakeProducer

pytestmark = pytest.mark.kafka


def _poll_until(consumer: Consumer, what: str, check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        consumer.consume(num_messages=100, timeout=0.2)


def test_subscribing_again_rejoins_with_the_same_partitions(
        kafka_bootstrap: str, make_topic: MakeTopic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cl, "read_changelog", lambda *_, **__: cl.RestoredState({}, 0, {}))  # no state here
    topic = make_topic(partitions=3)
    settings = ProcessorSettings(consumer_group=f"rejoin-{uuid.uuid4().hex[:8]}", input_topics=[topic])
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    conf = consumer_settings(kafka, settings, "rejoin-test")
    consumer = Consumer(conf)
    status = ProcessorStatus("p", settings.consumer_group, "exactly_once", [topic], {}, 100, 10_000)
    runner = ProcessorRunner("p", settings, kafka, "t-0", FakePipeline(), status, RuntimeMetrics())
    runner.attach(FakeProducer(), consumer, consumer)  # type: ignore[arg-type]
    handler = runner._rebalance
    assert handler is not None
    try:
        handler.subscribe(consumer, [topic], conf)
        assert handler.membership.deadline_s == pytest.approx(150.0)
        _poll_until(consumer, "the first assignment", lambda: len(consumer.assignment()) == 3)
        assert handler.membership.waiting_since is None and handler.error is None

        # As if the last rebalance were long ago and the member never came back.
        now = time.monotonic()
        handler.membership.left(now - handler.membership.deadline_s - 1.0)
        assert handler.membership.verdict(now, False, None) is Rejoin.RESUBSCRIBE
        handler.check_membership(consumer, [topic], now)
        assert handler.membership.resubscribed
        _poll_until(consumer, "the assignment after subscribing again",
                    lambda: handler.membership.waiting_since is None and len(consumer.assignment()) == 3)
        assert handler.error is None
        assert not handler.membership.resubscribed
        assert sorted(p for _, p in runner.partitions.by_tp) == [0, 1, 2]
    finally:
        consumer.close()
