"""Sampling profiles of a running processor with py-spy, and the top frames of a collapsed-stack file.

py-spy attaches to the already running process (``--pid``), so the process measured is the process
profiled; only non-idle samples are recorded, so the shares are shares of CPU time.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    """py-spy of this interpreter's venv, else the bench venv's (make bench installs it), else PATH."""
    for candidate in (Path(sys.executable).parent / "py-spy",
                      Path(__file__).resolve().parents[1] / ".venv-bench" / "bin" / "py-spy"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("py-spy")


def attach(pid: int, output: Path, rate: int = 200, idle: bool = False) -> subprocess.Popen[bytes] | None:
    """Start recording ``pid`` into a collapsed-stack file; None when py-spy is not installed.

    ``idle=True`` also samples waiting threads (a wall-clock view: where latency goes, not CPU)."""
    binary = py_spy()
    if binary is None:
        print("py-spy not found (pip install -e '.[profile]'): no profile", file=sys.stderr)
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                             "--output", str(output), "--nonblocking", "--threads",
                             *(["--idle"] if idle else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def detach(recorder: subprocess.Popen[bytes] | None) -> None:
    """Stop recording (py-spy writes its file on SIGINT)."""
    if recorder is None or recorder.poll() is not None:
        return
    recorder.send_signal(signal.SIGINT)
    try:
        recorder.wait(30)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.wait(5)


def _short(frame: str, line: bool = True) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module.py:12)`` (or ``func (module.py)``)."""
    name, _, where = frame.partition(" (")
    if not where:
        return name
    where = where.rsplit("/", 1)[-1]
    return f"{name} ({where}" if line else f"{name} ({where.split(':', 1)[0].rstrip(')')})"


def top_frames(path: Path, limit: int = 15) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, [(leaf frame, self share)], [(frame, inclusive share)]) from a py-spy raw file."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        raw = [f for f in stack.split(";") if not f.startswith(("thread ", "process "))]
        if not raw:
            continue
        total += count
        leaf[_short(raw[-1])] += count
        for frame in {_short(f, line=False) for f in raw}:
            inclusive[frame] += count
    if total == 0:
        return 0, [], []
    return (total, [(f, n / total) for f, n in leaf.most_common(limit)],
            [(f, n / total) for f, n in inclusive.most_common(limit)])
