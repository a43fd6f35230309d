"""leader.lease_action: who may take the Lease when (client-go leaderelection semantics)."""

from __future__ import annotations

from smc_operator.leader import LeaseView, lease_action


def test_no_lease_is_created() -> None:
    assert lease_action(None, "a", 100.0) == "create"


def test_the_holder_renews_its_own_lease_even_late() -> None:
    assert lease_action(LeaseView("a", 0.0, 15.0), "a", 100.0) == "renew"


def test_a_live_holder_keeps_it() -> None:
    assert lease_action(LeaseView("b", 90.0, 15.0), "a", 100.0) == "wait"
    assert lease_action(LeaseView("b", 85.0, 15.0), "a", 100.0) == "wait"  # exactly at the duration


def test_an_expired_or_released_lease_is_taken() -> None:
    assert lease_action(LeaseView("b", 84.9, 15.0), "a", 100.0) == "acquire"
    assert lease_action(LeaseView(None, None, 15.0), "a", 100.0) == "acquire"
    assert lease_action(LeaseView("", 99.0, 15.0), "a", 100.0) == "acquire"
