"""Measurement probe (session 6): the wall time of send_offsets_to_transaction + commit_transaction per
commit, in smc-stream (``--config`` in argv) and the peers (``--bootstrap``), written at exit to
``$PROBE_OUT.smc`` / ``.bare``. Use: put this directory's copy named ``sitecustomize.py`` on PYTHONPATH."""

from __future__ import annotations

import atexit
import os
import sys
import time
from typing import Any

if "--config" in sys.argv or "--bootstrap" in sys.argv:
    import confluent_kafka

    _durations: list[float] = []
    _started = [0.0]

    class _TimedProducer(confluent_kafka.Producer):
        def send_offsets_to_transaction(self, *args: Any, **kwargs: Any) -> None:
            _started[0] = time.perf_counter()
            super().send_offsets_to_transaction(*args, **kwargs)

        def commit_transaction(self, *args: Any, **kwargs: Any) -> None:
            began = _started[0] or time.perf_counter()
            super().commit_transaction(*args, **kwargs)
            _durations.append((time.perf_counter() - began) * 1000)
            _started[0] = 0.0

    confluent_kafka.Producer = _TimedProducer  # type: ignore[misc]

    def _dump() -> None:
        tag = "smc" if "--config" in sys.argv else "bare"
        with open(os.environ.get("PROBE_OUT", "/tmp/commit-probe") + f".{tag}", "w") as out:
            out.write(" ".join(f"{d:.2f}" for d in _durations))

    atexit.register(_dump)
