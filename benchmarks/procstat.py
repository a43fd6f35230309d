"""CPU time and memory of another process, read from /proc (Linux only).

CPU is utime + stime of every thread (librdkafka's threads included); peak RSS is VmHWM.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def sample(pid: int) -> ProcSample | None:
    """One reading, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat_file:
            stat = stat_file.read()
        with open(f"/proc/{pid}/status", encoding="ascii") as status_file:
            status = status_file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    rss = peak = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return ProcSample(cpu, rss, peak)
