"""Test bed lifecycle: bring components up (reusing healthy ones), write `.testbed/env`, tear down.

State lives in `.testbed/state.json` (ports, paths) next to pid files in `.testbed/run/`; a component is
reused only if its processes are alive *and* answer a health probe, otherwise it is restarted cleanly.
`up`/`down` are explicit (the CLI); pytest sessions use `acquire`/`release` leases so that sessions
sharing one checkout never stop an instance another session still uses.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from . import kafka, kube
from .common import REPO_ROOT, TestbedError, load_state, pid_alive, progress, save_state, testbed_dir

COMPONENTS: dict[str, ModuleType] = {"kafka": kafka, "k8s": kube}
ALL = tuple(COMPONENTS)


@contextmanager
def _lock() -> Iterator[None]:
    """Serialise up/down across processes (e.g. a pytest session and `make testbed-up`)."""
    path = testbed_dir() / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def env_file() -> Path:
    return testbed_dir() / "env"


def env_vars(state: dict[str, dict[str, object]]) -> dict[str, str]:
    """Environment a client of the bed needs (PATH is only the directory to prepend)."""
    env: dict[str, str] = {}
    if "kafka" in state:
        env["KAFKA_BOOTSTRAP_SERVERS"] = str(state["kafka"]["bootstrap"])
    if "k8s" in state:
        env["KUBECONFIG"] = str(state["k8s"]["kubeconfig"])
        env["SMC_OPERATOR_KUBECONFIG"] = str(state["k8s"]["operator_kubeconfig"])
        env["PATH"] = str(Path(str(state["k8s"]["kubectl"])).parent)
    return env


def _write_env(state: dict[str, dict[str, object]]) -> None:
    variables = env_vars(state)
    path = env_file()
    if not variables:
        path.unlink(missing_ok=True)
        return
    lines = ["# Written by `python -m tests.testbed up`; use with `source .testbed/env`."]
    for key, value in variables.items():
        lines.append(
            f'export PATH={shlex.quote(value)}:"$PATH"'
            if key == "PATH"
            else f"export {key}={shlex.quote(value)}"
        )
    path.write_text("\n".join(lines) + "\n")


def process_env(state: dict[str, dict[str, object]] | None = None) -> dict[str, str]:
    """A copy of os.environ with the bed's variables applied (for subprocesses such as pytest)."""
    env = dict(os.environ)
    for key, value in env_vars(load_state() if state is None else state).items():
        env[key] = f"{value}{os.pathsep}{env.get('PATH', '')}" if key == "PATH" else value
    return env


def _check(components: Sequence[str]) -> None:
    unknown = set(components) - set(COMPONENTS)
    if unknown:
        raise TestbedError(f"unknown component(s): {', '.join(sorted(unknown))}")


def _up_locked(state: dict[str, dict[str, object]], components: Sequence[str], auto_stop: bool) -> list[str]:
    """Start what is not healthy (caller holds the lock); `auto_stop` marks instances leases may stop."""
    to_start = []
    for name in components:
        previous = state.get(name)
        if previous is not None and COMPONENTS[name].healthy(previous):
            progress(f"{name}: reusing the running instance")
            if not auto_stop:
                previous["auto_stop"] = False  # an explicit `up` makes it persistent until `down`
            continue
        COMPONENTS[name].stop()  # leftovers of a crashed or half-started instance
        state.pop(name, None)
        to_start.append(name)
    if to_start:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(to_start)) as pool:
            futures = {name: pool.submit(COMPONENTS[name].start) for name in to_start}
        errors = []
        for name, future in futures.items():
            try:
                state[name] = {**future.result(), "auto_stop": auto_stop}
            except Exception as exc:  # report every component's failure, then clean up all of them
                errors.append(f"{name}: {exc}")
        if errors:
            for name in to_start:
                COMPONENTS[name].stop()
                state.pop(name, None)
            save_state(state)
            _write_env(state)
            raise TestbedError("test bed failed to start:\n" + "\n".join(errors))
        progress(f"started {', '.join(to_start)} in {time.monotonic() - started:.1f}s")
    save_state(state)
    _write_env(state)
    return to_start


def up(components: Sequence[str] = ALL) -> list[str]:
    """Ensure `components` run until `down`; returns those this call started (the rest were reused)."""
    _check(components)
    with _lock():
        return _up_locked(load_state(), components, auto_stop=False)


def down(components: Sequence[str] = ALL) -> list[str]:
    """Stop `components` (process groups, SIGTERM then SIGKILL); returns those that were running."""
    _check(components)
    with _lock():
        state = load_state()
        stopped = [name for name in components if COMPONENTS[name].stop()]
        for name in components:
            state.pop(name, None)
        save_state(state)
        _write_env(state)
        return stopped


# --- leases: several pytest sessions may share one bed ---------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """A process's claim on running components; the last lease out stops what a lease started."""

    path: Path
    components: tuple[str, ...]


def _leases_dir() -> Path:
    return testbed_dir() / "leases"


def _live_leases() -> list[tuple[str, ...]]:
    """Components claimed by leases whose process still runs; stale lease files are removed."""
    live = []
    for path in _leases_dir().glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if pid_alive(int(data["pid"])):
            live.append(tuple(data["components"]))
        else:
            path.unlink(missing_ok=True)
    return live


def acquire(components: Sequence[str] = ALL) -> Lease:
    """Ensure `components` run and claim them for this process (pytest fixtures, `run-suite`).

    Instances started here are stopped by the last `release`; ones started by `up` stay up.
    """
    _check(components)
    with _lock():
        _up_locked(load_state(), components, auto_stop=True)
        _leases_dir().mkdir(parents=True, exist_ok=True)
        path = _leases_dir() / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps({"pid": os.getpid(), "components": list(components)}))
        return Lease(path, tuple(components))


def release(lease: Lease) -> list[str]:
    """Drop the claim; stop auto-started components nobody else claims. Returns those stopped."""
    with _lock():
        lease.path.unlink(missing_ok=True)
        claimed = {name for components in _live_leases() for name in components}
        state = load_state()
        stopped = []
        for name in lease.components:
            if name in state and state[name].get("auto_stop") and name not in claimed:
                COMPONENTS[name].stop()
                state.pop(name)
                stopped.append(name)
        save_state(state)
        _write_env(state)
        return stopped


def status() -> dict[str, bool]:
    state = load_state()
    return {name: name in state and COMPONENTS[name].healthy(state[name]) for name in COMPONENTS}


def _pytest_argv(args: Sequence[str]) -> list[str]:
    """`pytest tests <args>`, unless the args already name what to collect."""
    names_targets = any(Path(arg.split("::")[0]).exists() for arg in args if not arg.startswith("-"))
    return [sys.executable, "-m", "pytest", *([] if names_targets else ["tests"]), *args]


def run_suite(args: Sequence[str]) -> int:
    """up -> pytest with the bed's environment -> down (unless the bed was already up)."""
    lease = acquire()
    try:
        argv = _pytest_argv(args)
        progress("running " + " ".join(shlex.quote(a) for a in argv[1:]))
        code = subprocess.call(argv, env=process_env(), cwd=REPO_ROOT)
    finally:
        stopped = release(lease)
        if stopped:
            progress(f"stopped {', '.join(stopped)}")
    if code == 5:
        progress("pytest collected no tests: treating that as a failure")
        return 1
    return code
