"""Probe (session 7): how long the loop's thread waits for an overlapped commit (Committer.take), how
long each commit is in flight, and how many; written at exit to $PROBE_OUT.smc."""
from __future__ import annotations

import atexit
import os
import sys
import time

if "--config" in sys.argv:
    from smc_runtime.kafka import committer as _c

    _waits: list[float] = []
    _flight: list[float] = []
    _orig_take = _c.Committer.take
    _orig_start = _c.Committer.start
    _t0: dict[int, float] = {}

    def _start(self, txn, prepared):  # type: ignore[no-untyped-def]
        _t0[id(self)] = time.perf_counter()
        return _orig_start(self, txn, prepared)

    def _take(self):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        out = _orig_take(self)
        end = time.perf_counter()
        _waits.append((end - began) * 1000)
        _flight.append((end - _t0.get(id(self), began)) * 1000)
        return out

    _c.Committer.start = _start  # type: ignore[method-assign]
    _c.Committer.take = _take  # type: ignore[method-assign]

    def _dump() -> None:
        with open(os.environ.get("PROBE_OUT", "/tmp/s7/overlap-probe") + ".smc", "w") as out:
            out.write("waits " + " ".join(f"{d:.2f}" for d in _waits) + "\n")
            out.write("flight " + " ".join(f"{d:.2f}" for d in _flight) + "\n")

    atexit.register(_dump)
