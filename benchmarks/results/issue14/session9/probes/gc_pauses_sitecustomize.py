"""Probe: Python garbage-collection pauses of every process of a benchmark run.

Copy as ``sitecustomize.py`` into a directory, put it first on PYTHONPATH and set SMC_GC_PROBE to an
output directory: every Python process started with that environment (the harness, each runtime, the
bare loop) rewrites ``gc-<pid>-<argv>.txt`` there every 2 s with the count, total and longest pause
per generation.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from typing import Any

if os.environ.get("SMC_GC_PROBE"):
    _pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    _start = [0.0]

    def _on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _start[0] = time.perf_counter()
        else:
            _pauses[info["generation"]].append((time.perf_counter() - _start[0]) * 1000)

    gc.callbacks.append(_on_gc)
    _name = "_".join(a.rsplit("/", 1)[-1] for a in sys.argv[:3])[:60]
    _path = f"{os.environ['SMC_GC_PROBE']}/gc-{os.getpid()}-{_name}.txt"

    def _dump() -> None:
        while True:
            time.sleep(2)
            lines = [f"count={gc.get_count()} freeze={gc.get_freeze_count()}"]
            for generation, values in _pauses.items():
                ms = sorted(values)
                if ms:
                    lines.append(f"gen{generation}: n={len(ms)} total={sum(ms):.1f}ms max={ms[-1]:.2f} "
                                 f"n>5ms={sum(1 for x in ms if x > 5)} n>20ms={sum(1 for x in ms if x > 20)}")
            with open(_path, "w") as out:
                out.write("\n".join(lines) + "\n")

    threading.Thread(target=_dump, daemon=True).start()
