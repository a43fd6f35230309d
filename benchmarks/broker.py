"""Find the Kafka broker to measure against: a flag, ``KAFKA_BOOTSTRAP_SERVERS``, or the test bed.

When none is given and the test bed is down, its Kafka is started (``python -m tests.testbed up kafka``)
and stopped again afterwards, so a clean clone can run the benchmarks with one command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _testbed(*args: str) -> subprocess.CompletedProcess[str]:
    """The test bed belongs to the dev venv (``make setup``); fall back to this interpreter."""
    dev_python = REPO_ROOT / ".venv" / "bin" / "python"
    python = str(dev_python) if dev_python.exists() else sys.executable
    return subprocess.run([python, "-m", "tests.testbed", *args], cwd=REPO_ROOT, text=True,
                          capture_output=True, check=False)


def _parse_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip().removeprefix("export ").strip()
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip("'\"")
    return env


def resolve(explicit: str | None) -> tuple[str, bool]:
    """(bootstrap servers, whether this call started the test bed's Kafka)."""
    if explicit:
        return explicit, False
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"], False
    current = _testbed("env")
    bootstrap = _parse_env(current.stdout).get("KAFKA_BOOTSTRAP_SERVERS") if current.returncode == 0 else None
    if bootstrap and "kafka: up" in _testbed("status").stdout:
        return bootstrap, False
    print("starting the test bed's Kafka (python -m tests.testbed up kafka)", file=sys.stderr, flush=True)
    started = _testbed("up", "kafka")
    bootstrap = _parse_env(started.stdout).get("KAFKA_BOOTSTRAP_SERVERS")
    if started.returncode != 0 or not bootstrap:
        raise SystemExit(f"could not start the test bed's Kafka:\n{started.stderr[-3000:]}")
    return bootstrap, True


def release(started: bool) -> None:
    if started:
        _testbed("down", "kafka")
