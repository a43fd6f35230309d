"""Probe: _step phases; every step longer than 15 ms with its breakdown."""

from __future__ import annotations

import atexit
import os
import sys
import time

if "--config" in sys.argv:
    from smc_runtime.kafka import commit_cycle as _cc
    from smc_runtime.kafka import processor as _p
    from smc_runtime.kafka import telemetry as _tm

    _slow: list[str] = []
    _cur: dict[str, float] = {}

    def wrap(cls, name, label):
        orig = getattr(cls, name)

        def w(self, *a, **k):
            t = time.perf_counter()
            try:
                return orig(self, *a, **k)
            finally:
                _cur[label] = _cur.get(label, 0.0) + (time.perf_counter() - t) * 1000

        setattr(cls, name, w)

    wrap(_p.ProcessorRunner, "process_batch", "proc")
    wrap(_cc.CommitCycle, "commit_due", "commit")
    wrap(_tm.Telemetry, "refresh_gauges", "gauges")
    wrap(_tm.Telemetry, "batch", "tbatch")
    orig_step = _p.ProcessorRunner._step
    orig_consume = None

    def step(self):
        _cur.clear()
        t = time.perf_counter()
        cpu = time.thread_time()
        orig_step(self)
        d = (time.perf_counter() - t) * 1000
        if d > 15:
            _slow.append(
                "{:.1f} {:.1f} cpu={:.1f} {}".format(
                    time.time() * 1000,
                    d,
                    (time.thread_time() - cpu) * 1000,
                    " ".join(f"{k}={v:.1f}" for k, v in sorted(_cur.items())),
                )
            )

    _p.ProcessorRunner._step = step

    def _dump() -> None:
        with open(os.environ.get("PROBE_OUT", "/tmp/s8/probe3/out") + ".steps", "w") as out:
            out.write("\n".join(_slow) + "\n")

    atexit.register(_dump)
