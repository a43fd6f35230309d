"""Shared plumbing for the test bed: locations, free ports, detached processes and progress output.

Every service runs in its own session (process group) so that it survives the `up` command exiting and
`down` can kill it together with any children, without ever matching processes by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class TestbedError(RuntimeError):
    """A test bed component could not be provisioned or started; the message says why."""


def cache_dir() -> Path:
    """Where slow artefacts (Kafka jars, Kubernetes binaries) live: outside git, shared across clones."""
    explicit = os.environ.get("SMC_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "smc-stream"


def testbed_dir() -> Path:
    """Runtime state of the bed (configs, data, pid files, logs); git-ignored."""
    return Path(os.environ.get("SMC_TESTBED_DIR") or REPO_ROOT / ".testbed").resolve()


def logs_dir() -> Path:
    path = testbed_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def progress(message: str) -> None:
    """Progress lines go to stderr so that `env` output on stdout stays source-able."""
    print(f"[testbed {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports; sockets stay open until all are chosen so none repeats."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(
    what: str,
    probe: Callable[[], bool],
    timeout: float,
    interval: float = 0.1,
    alive: Callable[[], bool] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `probe` until true; fail early (with the log tail) if the process behind it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        if alive is not None and not alive():
            raise TestbedError(f"{what} exited during start-up{log_tail(log)}")
        time.sleep(interval)
    raise TestbedError(f"{what} not ready after {timeout:.0f}s{log_tail(log)}")


def log_tail(log: Path | None, lines: int = 25) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log} ---\n" + "\n".join(text)


# --- processes -------------------------------------------------------------------------------------------

# Popen handles of services started by this Python process, so stopping them can also reap them
# (a zombie would otherwise still count as a live member of its process group).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Service:
    """A running service: its process-group leader and the files that describe it."""

    name: str
    pid: int

    @staticmethod
    def pidfile(name: str) -> Path:
        return testbed_dir() / "run" / f"{name}.pid"


def spawn(
    name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Service:
    """Start `argv` detached (own session, stdio to `log`) and record its pid file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    pidfile = Service.pidfile(name)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{proc.pid}\n")
    return Service(name, proc.pid)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, pgid) of a process, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
                members.append(int(entry.name))
    return members


def read_service(name: str) -> Service | None:
    """The service recorded in its pid file, if that process is still ours and alive.

    Our services all carry the test bed directory in their command line, which guards against a
    recycled pid belonging to some unrelated process.
    """
    pidfile = Service.pidfile(name)
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    cmdline = _cmdline(pid)
    if str(testbed_dir()) not in cmdline or not pid_alive(pid):
        return None
    return Service(name, pid)


def _cmdline(pid: int) -> str:
    """A process's command line; empty for a moment right after exec, hence the short retry."""
    for _ in range(20):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return ""
        if raw:
            return raw.replace(b"\0", b" ").decode(errors="replace")
        time.sleep(0.01)
    return ""


def stop_service(name: str, grace: float = 15.0) -> bool:
    """SIGTERM the service's process group, SIGKILL after `grace` seconds; True if something ran."""
    service = read_service(name)
    pidfile = Service.pidfile(name)
    if service is None:
        pidfile.unlink(missing_ok=True)
        return False
    pgid = service.pid
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_members(pgid) and time.monotonic() < deadline:
        _reap(pgid)
        time.sleep(0.1)
    if group_members(pgid):
        progress(f"{name} did not stop within {grace:.0f}s; killing it")
        _signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while group_members(pgid) and time.monotonic() < deadline:
            _reap(pgid)
            time.sleep(0.1)
    _reap(pgid)
    if group_members(pgid):
        raise TestbedError(f"{name} (process group {pgid}) survived SIGKILL")
    pidfile.unlink(missing_ok=True)
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


# --- state -----------------------------------------------------------------------------------------------


def state_file() -> Path:
    return testbed_dir() / "state.json"


def load_state() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(state_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_state(state: dict[str, dict[str, object]]) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
