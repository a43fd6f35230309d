"""leader.lease_action: who may take the Lease when (client-go leaderelection semantics); LeaseRenewer:
how the active replica keeps, hands over or loses it."""

from __future__ import annotations

import threading

import pytest

from smc_operator import leader
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


# --- LeaseRenewer: the active replica's loop, with a stand-in elector (no API) -------------------------


class _Elector:
    """Answers renewals from a script: True (renewed), False (someone else holds it) or an exception."""

    identity = "me"

    def __init__(self, answers: list[object], duration_s: float = 0.3) -> None:
        self.answers, self.duration_s = answers, duration_s
        self.calls = 0
        self.released = threading.Event()

    def try_acquire_or_renew(self) -> bool:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    def release(self) -> None:
        self.released.set()


@pytest.fixture(autouse=True)
def _fresh_flags() -> None:
    leader._stopping.clear()
    leader._wake.clear()


def _renewer(elector: _Elector, stopped: list[str]) -> leader.LeaseRenewer:
    made: list[leader.LeaseRenewer] = []

    def stop_operator() -> None:  # in production: SIGTERM to kopf, whose return finishes the renewer
        stopped.append("stop")
        made[0].finish()

    made.append(leader.LeaseRenewer(elector, 0.01, stop_operator=stop_operator))
    return made[0]


def test_kopf_stopping_hands_the_lease_over_without_counting_as_lost() -> None:
    elector, stopped = _Elector([True]), []
    renewer = _renewer(elector, stopped)
    renewer.start()
    leader._hand_over_on_shutdown()
    assert elector.released.wait(2)
    renewer.join(2)
    assert not renewer.is_alive() and not renewer.lost.is_set() and stopped == []


def test_another_holder_means_lost_and_the_operator_is_stopped() -> None:
    elector, stopped = _Elector([True, True, False]), []
    renewer = _renewer(elector, stopped)
    renewer.start()
    renewer.join(2)
    assert renewer.lost.is_set() and stopped == ["stop"] and elector.calls == 3
    assert not elector.released.is_set()


def test_api_errors_are_ridden_out_until_the_lease_would_expire() -> None:
    elector, stopped = _Elector([True, RuntimeError("apiserver down")], duration_s=0.3), []
    renewer = _renewer(elector, stopped)
    renewer.start()
    renewer.join(2)
    assert renewer.lost.is_set() and stopped == ["stop"]
    # renew period 0.01 s, duration 0.3 s: it kept trying for roughly the lease duration, not once
    assert elector.calls > 10


def test_finish_ends_a_healthy_renewer() -> None:
    elector, stopped = _Elector([True]), []
    renewer = _renewer(elector, stopped)
    renewer.start()
    renewer.finish()
    renewer.join(2)
    assert not renewer.is_alive() and not renewer.lost.is_set() and stopped == []
