"""Types of the pytest fixtures in `tests/conftest.py`, importable for annotations in tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class KubectlError(AssertionError):
    """kubectl exited non-zero; the message carries the command and its stderr."""


class Kubectl(Protocol):
    """The `kubectl` fixture: `kubectl("get", "ns", check=False, input=yaml_text, kubeconfig=other)`."""

    def __call__(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60.0,
        kubeconfig: str | Path | None = None,
    ) -> subprocess.CompletedProcess[str]: ...


class MakeTopic(Protocol):
    """The `make_topic` fixture: returns the name of a new, uniquely named topic."""

    def __call__(
        self, partitions: int = 1, config: Mapping[str, str] | None = None, prefix: str = "test"
    ) -> str: ...


@dataclass(frozen=True)
class Testbed:
    """The `testbed` fixture: how to reach the bed; `env` is os.environ plus the bed's variables."""

    __test__ = False  # not a test class, despite the name

    kafka_bootstrap: str | None
    kubeconfig: Path | None
    operator_kubeconfig: Path | None
    kubectl: Path | None
    env: dict[str, str]
    # Set when the broker has its pod listener / the node runs (see `testbed_node`).
    pod_kafka_bootstrap: str | None = None
    containerd_socket: Path | None = None
    node_name: str | None = None


@dataclass(frozen=True)
class Node:
    """The `testbed_node` fixture: the real node (kubelet + containerd) pods run on.

    `import_image(archive)` loads an OCI/Docker archive into containerd's `k8s.io` namespace, where the
    kubelet finds it (use `imagePullPolicy: Never` or `IfNotPresent`; no registry is reachable).
    `ctr(*args)` runs `ctr` against this containerd in that namespace.
    """

    name: str
    containerd_socket: Path
    gateway: str
    pod_cidr: str
    ctr: Callable[..., subprocess.CompletedProcess[str]]
    import_image: Callable[[Path], None]


@dataclass(frozen=True)
class Images:
    """The `smc_images` fixture: images built from our Dockerfiles and loaded into the node's containerd."""

    runtime: str  # localhost/smc-runtime:dev
    operator: str  # localhost/smc-operator:dev
    pause: str  # localhost/pause:3.10 (the sandbox image)
    base: str  # localhost/smc-python:3.11-bookworm
    ids: Mapping[str, str]  # image name -> image id
