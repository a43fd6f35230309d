"""Leader election for several operator replicas: one active, the others on standby.

Why a ``coordination.k8s.io/v1`` Lease and not kopf peering: kopf's peering pauses lower-priority
operators by priority, it does not elect a leader (equal priorities freeze everyone, and a dead pod's
peering record can pause a new one until it expires). A Lease is what Strimzi, KEDA, the Flink operator and
controller-runtime use, ``kubectl get lease`` shows who leads, and its optimistic concurrency
(``resourceVersion``) makes acquisition atomic.

Protocol (client-go's ``leaderelection`` semantics): a candidate takes the Lease when it is free or it
has not seen the record change for ``leaseDurationSeconds`` (on its own clock); the leader renews every
``renew_period``. A leader
that cannot renew before its lease would expire stops kopf and exits non-zero (the pod restarts as a
standby): it must stop acting before anyone else may start. On a graceful stop the leader releases the
Lease so a standby takes over at once instead of after a lease duration. Only the leader runs kopf at all,
so standbys watch nothing and write nothing.

``lease_action`` is the pure decision; the rest is I/O against the API.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from smc_operator import metrics

log = logging.getLogger("smc_operator")


@dataclass(frozen=True, slots=True)
class LeaseView:
    """The fields of a Lease the election reads (``None``: no Lease yet)."""

    holder: str | None
    renewed_at: float | None  # epoch seconds on the reader's clock: when it first saw this record
    duration_s: float
    transitions: int = 0


def lease_action(lease: LeaseView | None, me: str, now: float) -> str:
    """``create`` (no Lease), ``renew`` (mine), ``acquire`` (free or expired), ``wait`` (held by a live
    other)."""
    if lease is None:
        return "create"
    if lease.holder == me:
        return "renew"
    if not lease.holder or lease.renewed_at is None or now - lease.renewed_at > lease.duration_s:
        return "acquire"
    return "wait"


def default_identity() -> str:
    """The pod name in a cluster (``POD_NAME`` from the downward API), else host + pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def _micro(now: float) -> str:
    return dt.datetime.fromtimestamp(now, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class LeaseElector:
    """Acquire, renew and release one Lease (raw dicts through the API client; no watches)."""

    def __init__(self, namespace: str, name: str, identity: str, duration_s: float) -> None:
        self.namespace, self.name, self.identity, self.duration_s = namespace, name, identity, duration_s
        self._api = client.CoordinationV1Api()
        self._observed: tuple[object, float] = (None, 0.0)

    def _read(self) -> tuple[LeaseView | None, Any]:
        try:
            obj = self._api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None, None
            raise
        spec = obj.spec
        # Expiry is judged on this process's clock, from when it first saw the current record (as
        # client-go does), not from the holder's renewTime: clocks of two nodes may disagree.
        record = (spec.holder_identity, str(spec.renew_time), obj.metadata.resource_version)
        if record != self._observed[0]:
            self._observed = (record, time.time())
        view = LeaseView(
            holder=spec.holder_identity,
            renewed_at=self._observed[1] if spec.holder_identity else None,
            duration_s=float(spec.lease_duration_seconds or self.duration_s),
            transitions=int(spec.lease_transitions or 0),
        )
        return view, obj

    def _body(self, now: float, transitions: int, acquired_at: str, rv: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if rv is not None:
            meta["resourceVersion"] = rv
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.duration_s)),
                "acquireTime": acquired_at,
                "renewTime": _micro(now),
                "leaseTransitions": transitions,
            },
        }

    def try_acquire_or_renew(self, now: float | None = None) -> bool:
        """One step; True while we hold the Lease. Conflicts (another candidate won the race) are False."""
        now = time.time() if now is None else now
        view, obj = self._read()
        action = lease_action(view, self.identity, now)
        try:
            if action == "create":
                self._api.create_namespaced_lease(self.namespace, self._body(now, 0, _micro(now), None))
            elif action == "renew":
                assert view is not None
                acquired = obj.spec.acquire_time
                body = self._body(
                    now, view.transitions, _micro(_epoch(acquired) or now), obj.metadata.resource_version
                )
                self._api.replace_namespaced_lease(self.name, self.namespace, body)
            elif action == "acquire":
                assert view is not None
                body = self._body(now, view.transitions + 1, _micro(now), obj.metadata.resource_version)
                self._api.replace_namespaced_lease(self.name, self.namespace, body)
            else:
                return False
        except ApiException as exc:
            if exc.status in (409, 422):  # lost the race / stale resourceVersion
                return False
            raise
        if action != "renew":
            log.info(
                "leader elected",
                extra={
                    "smc": {
                        "event": "leader_elected",
                        "identity": self.identity,
                        "lease": f"{self.namespace}/{self.name}",
                    }
                },
            )
        return True

    def release(self) -> None:
        """Hand the Lease back (empty holder) so a standby need not wait out the duration."""
        try:
            view, obj = self._read()
            if view is None or view.holder != self.identity:
                return
            obj.spec.holder_identity = None
            obj.spec.renew_time = None
            obj.spec.acquire_time = None
            self._api.replace_namespaced_lease(self.name, self.namespace, obj)
        except ApiException as exc:
            log.warning("could not release the lease: %s", exc.reason)


_stopping = threading.Event()
_wake = threading.Event()  # interrupts the renewer's sleep: kopf stopping, or run() returned


@kopf.on.cleanup(id="hand-over-lease")
def _hand_over_on_shutdown(**_: Any) -> None:
    """kopf is stopping (the kubelet's SIGTERM): stop renewing now so the standby takes over at once,
    not after the pod's whole termination grace period or the next renewal tick."""
    _stopping.set()
    _wake.set()


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    # A standby runs as the container's PID 1, where an unhandled SIGTERM is ignored: leave at once.
    raise SystemExit(0)


class LeaseRenewer(threading.Thread):
    """The active replica's renewal loop. It ends in one of three ways: ``finish()`` (kopf returned),
    kopf stopping (it hands the Lease over), or the Lease lost: then it calls ``stop_operator`` and, if
    the process has not finished within half a lease duration, exits hard."""

    def __init__(self, elector: LeaseElector, renew_period_s: float,
                 stop_operator: Callable[[], None] | None = None) -> None:
        super().__init__(name="smc-lease-renewer", daemon=True)
        self.elector, self.renew_period_s = elector, renew_period_s
        self.lost, self.done = threading.Event(), threading.Event()
        self._stop_operator = stop_operator or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        self._last_ok = time.monotonic()

    def finish(self) -> None:
        self.done.set()
        _wake.set()

    def run(self) -> None:
        while True:
            _wake.wait(self.renew_period_s)
            if self.done.is_set():
                return
            if _stopping.is_set():  # kopf is shutting down: hand the Lease over at once
                log.info("operator stopping: releasing the lease",
                         extra={"smc": {"event": "leader_released", "identity": self.elector.identity}})
                metrics.LEADER.set(0)
                self.elector.release()
                return
            reason = self._renew()
            if reason is not None:
                self._give_up(reason)
                return

    def _renew(self) -> str | None:
        """One renewal; the reason leadership is lost, or ``None`` while it holds (or may still)."""
        try:
            if self.elector.try_acquire_or_renew():
                self._last_ok = time.monotonic()
                return None
            return "another candidate holds the lease"
        except Exception as exc:  # API down: keep trying until the lease would expire
            if time.monotonic() - self._last_ok < self.elector.duration_s - self.renew_period_s:
                return None
            return f"renewal failed: {exc}"

    def _give_up(self, reason: str) -> None:
        log.error("leadership lost (%s): stopping", reason,
                  extra={"smc": {"event": "leader_lost", "identity": self.elector.identity}})
        metrics.LEADER.set(0)
        self.lost.set()
        self._stop_operator()
        # If kopf does not stop in time, leave anyway: a standby may act after the lease duration.
        if not self.done.wait(max(1.0, self.elector.duration_s / 2)):
            os._exit(1)


def wait_until_elected(elector: LeaseElector, retry_period_s: float) -> None:
    """Block (as a standby) until this candidate holds the Lease; API errors are retried."""
    while True:
        try:
            if elector.try_acquire_or_renew():
                return
        except ApiException as exc:
            log.warning("lease check failed: %s", exc.reason)
        time.sleep(retry_period_s)


def run_as_leader(
    elector: LeaseElector,
    run: Callable[[], None],
    renew_period_s: float,
    retry_period_s: float,
    *,
    standby: Callable[[], None] | None = None,
    active: Callable[[], None] | None = None,
) -> int:
    """Wait until elected, then ``run()`` (kopf, in the main thread) while a ``LeaseRenewer`` renews;
    losing the Lease stops kopf the way SIGTERM does (kopf's own graceful stop; a ``stop_flag`` would
    leave an executor thread blocked on it when kopf stops for a signal) and the exit code becomes 1.
    ``standby``/``active`` are called on entering each role."""
    metrics.LEADER.set(0)
    if standby is not None:
        standby()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)  # kopf installs its own once it runs
    wait_until_elected(elector, retry_period_s)
    metrics.LEADER.set(1)
    if active is not None:
        active()
    _stopping.clear()  # this kopf run has not begun stopping yet
    _wake.clear()
    renewer = LeaseRenewer(elector, renew_period_s)
    renewer.start()
    try:
        run()
    finally:
        renewer.finish()
        renewer.join(timeout=5)
        if not renewer.lost.is_set():
            elector.release()
        metrics.LEADER.set(0)
    return 1 if renewer.lost.is_set() else 0
