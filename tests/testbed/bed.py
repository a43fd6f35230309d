"""Test bed lifecycle: bring components up (reusing healthy ones), write `.testbed/env`, tear down.

State lives in `.testbed/state.json` (ports, paths) next to pid files in `.testbed/run/`; a component is
reused only if its processes are alive *and* answer a health probe, otherwise it is restarted cleanly.
`up`/`down` are explicit (the CLI); pytest sessions use `acquire`/`release` leases so that sessions
sharing one checkout never stop an instance another session still uses.

Components: `kafka`, `k8s` (control plane) and `node` (containerd, kubelet, scheduler, kube-proxy), which
needs `k8s`: it starts after it, is restarted with it and stops before it. The pod bridge (network.py) is
created before anything starts (Kafka binds its pod listener there) and removed when nothing runs.
`SMC_TESTBED_NODE=0` leaves the node out of the default set (e.g. a machine without root).
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
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from . import images, kafka, kube, network, node
from .common import REPO_ROOT, TestbedError, load_state, pid_alive, progress, save_state, testbed_dir

COMPONENTS: dict[str, ModuleType] = {"kafka": kafka, "k8s": kube, "node": node}
DEPENDS: dict[str, tuple[str, ...]] = {"node": ("k8s",)}
ALL = tuple(
    name for name in COMPONENTS if name != "node" or os.environ.get("SMC_TESTBED_NODE", "1") != "0"
)


def _with_dependencies(components: Sequence[str]) -> list[str]:
    """`components` plus what they need, dependencies first."""
    out: list[str] = []
    for name in components:
        for dep in DEPENDS.get(name, ()):
            if dep not in out:
                out.append(dep)
        if name not in out:
            out.append(name)
    return sorted(out, key=list(COMPONENTS).index)


def _dependents(names: Sequence[str]) -> list[str]:
    """Components that need any of `names` (they must stop before and restart with them)."""
    return [other for other, deps in DEPENDS.items() if set(deps) & set(names)]


def _stop_order(names: Sequence[str]) -> list[str]:
    """Dependents first (the node before the control plane it registered with)."""
    return sorted(set(names), key=lambda n: (0 if n in DEPENDS else 1, list(COMPONENTS).index(n)))


def _network_cleanup(state: dict[str, dict[str, object]]) -> None:
    """Remove the pod bridge once nothing of the bed runs any more."""
    if not state and network.remove_bridge():
        progress(f"removed pod bridge {network.BRIDGE}")


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
        if state["kafka"].get("pod_bootstrap"):
            env["SMC_POD_KAFKA_BOOTSTRAP_SERVERS"] = str(state["kafka"]["pod_bootstrap"])
    if "node" in state:
        env["SMC_CONTAINERD_ADDRESS"] = str(state["node"]["containerd_socket"])
        env["SMC_NODE_NAME"] = str(state["node"]["node_name"])
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
    components = _with_dependencies(components)
    to_start: list[str] = []
    for name in components:
        previous = state.get(name)
        restart_with = [dep for dep in DEPENDS.get(name, ()) if dep in to_start]
        if previous is not None and not restart_with and COMPONENTS[name].healthy(previous):
            progress(f"{name}: reusing the running instance")
            if not auto_stop:
                previous["auto_stop"] = False  # an explicit `up` makes it persistent until `down`
            continue
        # Dependents of a component that restarts go down first (a node outlives no control plane).
        for dependent in _dependents([name]):
            if dependent in state or dependent not in components:
                COMPONENTS[dependent].stop()
                if dependent in state and dependent not in components:
                    progress(f"{dependent}: stopped because {name} restarts; it restarts on next use")
                state.pop(dependent, None)
        COMPONENTS[name].stop()  # leftovers of a crashed or half-started instance
        state.pop(name, None)
        to_start.append(name)
    if to_start:
        started = time.monotonic()
        network.ensure_bridge()  # before Kafka: its pod listener binds the bridge's gateway
        with ThreadPoolExecutor(max_workers=len(to_start)) as pool:
            futures: dict[str, Future[dict[str, object]]] = {}
            for name in to_start:
                deps = {d: futures[d] for d in DEPENDS.get(name, ()) if d in futures}
                futures[name] = pool.submit(_start_after, name, deps)
        errors = []
        for name, future in futures.items():
            try:
                state[name] = {**future.result(), "auto_stop": auto_stop}
            except Exception as exc:  # report every component's failure, then clean up all of them
                errors.append(f"{name}: {exc}")
        if errors:
            for name in _stop_order(to_start):
                COMPONENTS[name].stop()
                state.pop(name, None)
            save_state(state)
            _write_env(state)
            _network_cleanup(state)
            raise TestbedError("test bed failed to start:\n" + "\n".join(errors))
        progress(f"started {', '.join(to_start)} in {time.monotonic() - started:.1f}s")
    save_state(state)
    _write_env(state)
    return to_start


def _start_after(name: str, deps: dict[str, Future[dict[str, object]]]) -> dict[str, object]:
    """Start `name` once the components it needs are up; their state is saved first so it can read it."""
    for dep_name, future in deps.items():
        try:
            result = future.result()
        except Exception:
            raise TestbedError(f"not started: {dep_name}, which it needs, failed") from None
        current = load_state()
        current[dep_name] = dict(result)
        save_state(current)
    return dict(COMPONENTS[name].start())


def up(components: Sequence[str] = ALL) -> list[str]:
    """Ensure `components` run until `down`; returns those this call started (the rest were reused)."""
    _check(components)
    with _lock():
        return _up_locked(load_state(), components, auto_stop=False)


def down(components: Sequence[str] = tuple(COMPONENTS)) -> list[str]:
    """Stop `components` and what needs them (SIGTERM, then SIGKILL); returns those that ran."""
    _check(components)
    with _lock():
        state = load_state()
        stopped = []
        for name in _stop_order([*components, *_dependents(components)]):
            if COMPONENTS[name].stop():
                stopped.append(name)
            state.pop(name, None)
            save_state(state)
        _write_env(state)
        _network_cleanup(state)
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
    components = _with_dependencies(components)
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
        for name in _stop_order(lease.components):
            still_needed = any(d in state for d in _dependents([name]))
            if name in state and state[name].get("auto_stop") and name not in claimed and not still_needed:
                COMPONENTS[name].stop()
                state.pop(name)
                save_state(state)
                stopped.append(name)
        save_state(state)
        _write_env(state)
        _network_cleanup(state)
        return stopped


def load_images(built: Iterable[images.Built]) -> bool:
    """Import built images into the running node's containerd (each build once); False if no node runs."""
    with _lock():
        state = load_state().get("node")
        if state is None or not node.healthy(state):
            return False
        socket, marker_dir = Path(str(state["containerd_socket"])), Path(str(state["imported_dir"]))
        for image in built:
            images.import_archive(socket, image, marker_dir)
        return True


def ensure_images() -> dict[str, images.Built]:
    """Build (if inputs changed) and load the images into the node, which must be running."""
    built = images.build_all()
    # the base image only matters to builds, and the node imports pause when it starts
    if not load_images(built[name] for name in images.DOCKERFILES):
        raise TestbedError("the test bed node is not running; images cannot be loaded")
    return built


def status() -> dict[str, bool]:
    state = load_state()
    return {name: name in state and COMPONENTS[name].healthy(state[name]) for name in COMPONENTS}


def _names_targets(args: Sequence[str]) -> bool:
    return any(Path(arg.split("::")[0]).exists() for arg in args if not arg.startswith("-"))


def _pytest_argv(args: Sequence[str]) -> list[str]:
    """`pytest tests <args>`, unless the args already name what to collect."""
    return [sys.executable, "-m", "pytest", *([] if _names_targets(args) else ["tests"]), *args]


# The suite in two pytest processes at once: tests that use the cluster (marker k8s or node: the
# control plane, the node, and the e2e tests, which stop the shared broker; plus a few Kafka-only
# modules for balance) against the bed, and all others (unit tests, the runtime's Kafka tests) against a
# second broker of their own, so that neither group sees the other's outage. Most of the suite waits on
# time (feeds at fixed rates, outages, scaling windows, pod restarts), so the two overlap well even on two
# cores.
CLUSTER_MARKERS = "k8s or node or cluster_process"  # cluster_process: Kafka-only, for balance (conftest)
SECOND_BROKER_DIR = "suite-kafka"  # below the bed's directory


@contextmanager
def _bed_dir(path: Path) -> Iterator[None]:
    """Bed operations in this process act on the bed in `path` (the modules read SMC_TESTBED_DIR)."""
    previous = os.environ.get("SMC_TESTBED_DIR")
    os.environ["SMC_TESTBED_DIR"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SMC_TESTBED_DIR", None)
        else:
            os.environ["SMC_TESTBED_DIR"] = previous


def _split(args: Sequence[str]) -> bool:
    """Split only a whole-suite run whose args choose no markers and no targets themselves."""
    chooses = _names_targets(args) or any(a == "-m" or a.startswith("-m") for a in args)
    return not chooses and os.environ.get("SMC_SUITE_SPLIT", "1") != "0"


def down_second_broker() -> list[str]:
    """Stop run-suite's second broker if a killed run left it behind (`down` calls this)."""
    second = testbed_dir() / SECOND_BROKER_DIR
    if not second.exists():
        return []
    with _bed_dir(second):
        return [f"{name} (second broker)" for name in down(["kafka"])]


def run_suite(args: Sequence[str]) -> int:
    """up -> pytest with the bed's environment -> down (unless the bed was already up)."""
    lease = acquire()
    try:
        if _split(args):
            code = _run_split(args)
        else:
            argv = _pytest_argv(args)
            progress("running " + " ".join(shlex.quote(a) for a in argv[1:]))
            code = subprocess.call(argv, env=process_env(), cwd=REPO_ROOT)
            if code == 5:
                progress("pytest collected no tests: treating that as a failure")
                code = 1
    finally:
        stopped = release(lease)
        if stopped:
            progress(f"stopped {', '.join(stopped)}")
    return code


def _run_split(args: Sequence[str]) -> int:
    """The cluster group streams to this terminal; the other group's output follows it when both end."""
    second = testbed_dir() / SECOND_BROKER_DIR
    with _bed_dir(second):
        second_lease = acquire(["kafka"])
    try:
        with _bed_dir(second):
            other_env = process_env()
        log = testbed_dir() / "logs" / "suite-not-cluster.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cluster_argv = _pytest_argv(["-m", CLUSTER_MARKERS, *args])
        other_argv = _pytest_argv(["-m", f"not ({CLUSTER_MARKERS})", *args])
        progress("running " + " ".join(shlex.quote(a) for a in cluster_argv[1:]))
        progress("and at once " + " ".join(shlex.quote(a) for a in other_argv[1:])
                 + f" against a second broker ({other_env['KAFKA_BOOTSTRAP_SERVERS']}); its output: {log}, "
                 "printed below when it ends")
        started = time.monotonic()
        with open(log, "wb") as out:
            other = subprocess.Popen(other_argv, env=other_env, cwd=REPO_ROOT, stdout=out,
                                     stderr=subprocess.STDOUT)
            with ThreadPoolExecutor(1) as pool:
                other_s = pool.submit(lambda: (other.wait(), time.monotonic() - started)[1])
                try:
                    cluster_code = subprocess.call(cluster_argv, env=process_env(), cwd=REPO_ROOT)
                    cluster_s = time.monotonic() - started
                    other_code = other.wait()
                finally:
                    if other.poll() is None:
                        other.terminate()
                        other.wait(60)
        progress(f"cluster tests ended after {cluster_s:.0f}s (exit {cluster_code}), the others after "
                 f"{other_s.result():.0f}s (exit {other_code}); their output:")
        sys.stdout.write(log.read_text(errors="replace"))
        sys.stdout.flush()
    finally:
        with _bed_dir(second):
            release(second_lease)
    codes = (cluster_code, other_code)
    if codes == (5, 5):
        progress("pytest collected no tests: treating that as a failure")
        return 1
    # One group may well select nothing (e.g. -k naming only unit tests): that is not a failure.
    return max((c for c in codes if c != 5), default=0)
