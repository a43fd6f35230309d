"""A consumer that lost its partitions and never comes back to its group: the verdicts (pure), and the
rebalance handler subscribing again, then asking for a restart, with a fake consumer."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import TopicPartition

from smc_runtime.kafka.errors import FatalKafkaError, exit_of
from smc_runtime.kafka.membership import GroupMembership, Rejoin, rejoin_deadline_s
from smc_runtime.kafka.processor import ProcessorRunner
from tests.unit.runtime.test_rebalance_order import Events, GroupConsumer, _runner
from tests.unit.runtime.test_resume import FakeProducer


def test_the_deadline_outlasts_the_longest_legitimate_rebalance() -> None:
    assert rejoin_deadline_s(120_000, 6_000) == pytest.approx(150.0)
    assert rejoin_deadline_s(300_000, 45_000) > 345.0


def test_a_member_in_its_group_never_waits() -> None:
    membership = GroupMembership(deadline_s=10.0)
    assert membership.verdict(1_000.0, False, None) is Rejoin.WAIT
    membership.left(0.0)
    membership.joined()
    assert membership.verdict(1_000.0, False, None) is Rejoin.WAIT


def test_the_clock_runs_from_when_the_broker_last_did_not_answer() -> None:
    membership = GroupMembership(deadline_s=10.0)
    membership.left(100.0)  # lost during an outage
    assert membership.verdict(200.0, True, 199.0) is Rejoin.WAIT  # still down: an outage, not a stuck join
    assert membership.verdict(205.0, False, 199.0) is Rejoin.WAIT  # back 6 s ago
    assert membership.waited(205.0, False, 199.0) == pytest.approx(6.0)
    assert membership.verdict(209.5, False, 199.0) is Rejoin.RESUBSCRIBE
    membership.left(209.0)  # a second loss keeps the first moment
    assert membership.waiting_since == 100.0


def test_subscribing_again_restarts_the_clock_and_the_next_verdict_is_a_restart() -> None:
    membership = GroupMembership(deadline_s=10.0)
    membership.left(0.0)
    assert membership.verdict(11.0, False, None) is Rejoin.RESUBSCRIBE
    membership.resubscribing(11.0)
    assert membership.verdict(20.0, False, None) is Rejoin.WAIT
    assert membership.verdict(21.5, False, None) is Rejoin.RESTART
    membership.joined()  # the rejoin came after all
    assert membership.verdict(100.0, False, None) is Rejoin.WAIT and not membership.resubscribed


class SubscribingConsumer(GroupConsumer):
    def __init__(self, events: Events) -> None:
        super().__init__(events, {})
        self.subscriptions: list[list[str]] = []

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.events.seen.append("subscribe")
        assert set(callbacks) == {"on_assign", "on_revoke", "on_lost"}
        self.subscriptions.append(topics)

    def unsubscribe(self) -> None:
        self.events.seen.append("unsubscribe")


def _subscribed(deadline_conf: dict[str, Any]) -> tuple[ProcessorRunner, SubscribingConsumer]:
    events = Events()
    consumer = SubscribingConsumer(events)
    runner = _runner(consumer, FakeProducer())
    assert runner._rebalance is not None
    runner._rebalance.subscribe(consumer, ["in"], deadline_conf)  # type: ignore[arg-type]
    return runner, consumer


def test_the_handler_subscribes_again_then_asks_for_a_restart() -> None:
    runner, consumer = _subscribed({"max.poll.interval.ms": 1_000, "session.timeout.ms": 1_000})
    handler = runner._rebalance
    assert handler is not None and handler.membership.deadline_s == pytest.approx(26.0)
    handler.on_assign(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]
    handler.on_lost(consumer, [TopicPartition("in", 0)])  # type: ignore[arg-type]
    lost_at = handler.membership.waiting_since
    assert lost_at is not None
    consumer.events.seen.clear()
    handler.check_membership(consumer, ["in"], lost_at + 20.0)  # type: ignore[arg-type]
    assert consumer.events.seen == []
    assert handler.telemetry.status.detail(lost_at + 20.0)["rejoining_group_for_s"] == 20.0  # in /status
    handler.check_membership(consumer, ["in"], lost_at + 27.0)  # type: ignore[arg-type]
    assert consumer.events.seen == ["unsubscribe", "subscribe"] and consumer.subscriptions[-1] == ["in"]
    with pytest.raises(FatalKafkaError) as raised:
        handler.check_membership(consumer, ["in"], lost_at + 27.0 + 27.0)  # type: ignore[arg-type]
    assert exit_of(raised.value)[0] == exit_of(FatalKafkaError("x"))[0]  # the fatal exit: a restart


def test_a_broker_still_down_or_a_completed_rebalance_asks_for_nothing() -> None:
    runner, consumer = _subscribed({"max.poll.interval.ms": 1_000, "session.timeout.ms": 1_000})
    handler = runner._rebalance
    assert handler is not None
    start = handler.membership.waiting_since
    assert start is not None
    handler.telemetry.status.broker_probed(start + 1.0, reachable=False)
    handler.check_membership(consumer, ["in"], start + 100.0)  # type: ignore[arg-type]
    assert "subscribe" not in consumer.events.seen[1:]  # only the first subscription
    handler.telemetry.status.broker_probed(start + 100.0, reachable=True)
    handler.on_assign(consumer, [])  # type: ignore[arg-type]  # an empty assignment still completes a rebalance
    handler.check_membership(consumer, ["in"], start + 1_000.0)  # type: ignore[arg-type]
    assert consumer.events.seen == ["subscribe"]
    assert handler.telemetry.status.detail(start + 1_000.0)["rejoining_group_for_s"] is None
