"""Measurement probe (session 6): the wall time of every ``ProcessorRunner.commit`` of an smc-stream process
(``--config`` in argv), written at exit to ``$PROBE_OUT``. Use: put a copy named ``sitecustomize.py`` on
PYTHONPATH; it wraps the method once ``smc_runtime.kafka.processor`` has been imported."""

from __future__ import annotations

import atexit
import builtins
import os
import sys
import time
from typing import Any

if "--config" in sys.argv:
    _durations: list[float] = []
    _import = builtins.__import__
    _patched = [False]

    def _patch() -> None:
        from smc_runtime.kafka import processor

        commit = processor.ProcessorRunner.commit

        def timed(self: Any, *args: Any, **kwargs: Any) -> None:
            began = time.perf_counter()
            try:
                commit(self, *args, **kwargs)
            finally:
                _durations.append((time.perf_counter() - began) * 1000)

        processor.ProcessorRunner.commit = timed  # type: ignore[method-assign]

    def _hook(name: str, *args: Any, **kwargs: Any) -> Any:
        module = _import(name, *args, **kwargs)
        if not _patched[0] and hasattr(sys.modules.get("smc_runtime.kafka.processor"), "ProcessorRunner"):
            _patched[0] = True
            _patch()
        return module

    builtins.__import__ = _hook

    def _dump() -> None:
        with open(os.environ.get("PROBE_OUT", f"/tmp/commit-probe-{os.getpid()}.txt"), "w") as out:
            out.write(" ".join(f"{d:.2f}" for d in _durations))

    atexit.register(_dump)
