"""CPU seconds per thread name of one process, read from /proc until it exits.

Usage: ``python thread_cpu.py "smc_runtime.cli run" OUT`` started before ``run_all``: it waits for the
first process whose command line contains the pattern, samples ``/proc/<pid>/task/*/stat`` every
0.5 s (a thread's last sample counts, so threads that end early are kept), and appends the totals
per thread name (``python`` = the interpreter's threads, ``rdk:*`` = librdkafka's) to OUT.
"""

from __future__ import annotations

import collections
import os
import sys
import time


def find(pattern: str) -> str | None:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                command = fh.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if pattern in command and "thread_cpu" not in command:
            return pid
    return None


def threads(pid: str, hz: int) -> dict[str, tuple[str, float]]:
    """tid -> (thread name, user + system CPU seconds so far)."""
    out: dict[str, tuple[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / hz)
    return out


def main() -> None:
    pattern, out = sys.argv[1], sys.argv[2]
    hz = os.sysconf("SC_CLK_TCK")
    pid = find(pattern)
    while pid is None:
        time.sleep(0.2)
        pid = find(pattern)
    last: dict[str, tuple[str, float]] = {}
    while True:
        try:
            last.update(threads(pid, hz))
        except FileNotFoundError:
            break
        time.sleep(0.5)
    by_name: collections.Counter[str] = collections.Counter()
    for name, cpu in last.values():
        by_name[name] += cpu
    total = sum(by_name.values()) or 1.0
    with open(out, "a") as fh:
        fh.write(f"pid {pid} total {total:.2f}s\n")
        for name, cpu in by_name.most_common():
            fh.write(f"  {name:20s} {cpu:7.2f}s {cpu / total * 100:5.1f}%\n")


if __name__ == "__main__":
    main()
