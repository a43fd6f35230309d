"""Types of the pytest fixtures in `tests/conftest.py`, importable for annotations in tests."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
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
