"""Helpers for the operator integration tests: run `smc-operator` as a subprocess against the test bed's
real kube-apiserver, apply StreamProcessors with kubectl, wait for conditions."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.testbed.common import free_ports
from tests.testbed.fixture_types import Kubectl

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "manifests" / "samples" / "market-data-processor.yaml"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class OperatorProcess:
    """`smc-operator --standalone -A` in a subprocess with its own kubeconfig; stopped by its own pid."""

    def __init__(self, kubeconfig: Path, env: Mapping[str, str], log_path: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_port = 0
        self.metrics_port = 0

    def start(self) -> None:
        self.health_port, self.metrics_port = free_ports(2)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "smc_operator.cli",
                "--standalone",
                "--all-namespaces",
                f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
                f"--metrics-port={self.metrics_port}",
                "--metrics-address=127.0.0.1",
            ],
            env={**self.env, "KUBECONFIG": str(self.kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(self.alive, timeout=60, what="operator liveness endpoint")

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited:\n{self.log()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text: str = r.read().decode()
            return text

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def install_manifests(kubectl: Kubectl) -> None:
    """CRD, namespace, RBAC and operator Deployment, as a user would: `kubectl apply -k manifests/`."""
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "manifests"))
    kubectl("wait", "--for=condition=Established", "crd/streamprocessors.smc-trading.io", "--timeout=60s")


@contextlib.contextmanager
def running_operator(
    kubectl: Kubectl, kubeconfig: Path, env: Mapping[str, str], log_dir: Path
) -> Iterator[OperatorProcess]:
    """The manifests installed (CRD, RBAC) and the operator running for the duration (a module fixture
    body: ``with running_operator(...) as op: yield op``)."""
    install_manifests(kubectl)
    proc = OperatorProcess(kubeconfig, env, log_dir / "operator.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def fresh_namespace(kubectl: Kubectl, prefix: str) -> Iterator[str]:
    """A namespace of its own; on exit its CRs are deleted first (they carry the operator's finalizer, so
    while the operator still runs), then the namespace (not waited for)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("-n", name, "delete", "streamprocessors", "--all", "--timeout=120s", check=False, timeout=130)
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def sample_cr(name: str, bootstrap: str, topics: list[str], **spec_overrides: Any) -> dict[str, Any]:
    """The sample CR pointed at the bed's broker and the test's own topics."""
    cr: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    cr = copy.deepcopy(cr)
    cr["metadata"] = {"name": name}
    cr["spec"]["kafka"]["bootstrapServers"] = bootstrap
    cr["spec"]["processor"]["inputTopics"] = topics
    cr["spec"]["processor"]["consumerGroup"] = f"{name}-group"
    for key, value in spec_overrides.items():
        cr["spec"][key] = value
    return cr


def apply(
    kubectl: Kubectl, namespace: str, obj: Mapping[str, Any], check: bool = True
) -> subprocess.CompletedProcess[str]:
    return kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(dict(obj)), check=check)


def get(kubectl: Kubectl, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    result = kubectl("-n", namespace, "get", kind, name, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr or "not found" in result.stderr:
            return None
        raise AssertionError(result.stderr)
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def status_of(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    cr = get(kubectl, namespace, "streamprocessor", name) or {}
    status: dict[str, Any] = cr.get("status") or {}
    return status


def table_rows(text: str) -> list[dict[str, str]]:
    """``kubectl get``'s table as one dict per row. Cells are cut at the header's column starts, not
    split on blanks: a printer column without a value (no lag yet) is an empty cell, not a shift."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    bounds = list(zip(header.split(), starts, [*starts[1:], None], strict=True))
    return [{name: row[start:end].strip() for name, start, end in bounds} for row in lines[1:]]


def printed_row(kubectl: Kubectl, namespace: str, kind: str, name: str) -> dict[str, str]:
    """The row ``kubectl get KIND NAME`` prints (printer columns), by column header."""
    rows = table_rows(kubectl("-n", namespace, "get", kind, name).stdout)
    assert len(rows) == 1, rows
    return rows[0]


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            found: dict[str, Any] = cond
            return found
    return {}


def sts_replicas(kubectl: Kubectl, namespace: str, name: str) -> int | None:
    sts = get(kubectl, namespace, "statefulset", name)
    return None if sts is None else int(sts["spec"].get("replicas", 0))


def wait_replicas(kubectl: Kubectl, namespace: str, name: str, count: int, *, timeout: float,
                  what: str | None = None) -> None:
    """Until the StatefulSet's ``spec.replicas`` is ``count``."""
    wait_for(
        lambda: sts_replicas(kubectl, namespace, name) == count,
        timeout=timeout,
        what=what or f"{name} at {count} replica(s)",
    )


def events(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    out = kubectl(
        "-n", namespace, "get", "events", "-o", "json", f"--field-selector=involvedObject.name={name}"
    )
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items
