"""Probe: the overlapped commit's timing, and the interpreter's switch interval.

Copy as ``sitecustomize.py`` into a directory and put it first on PYTHONPATH. In runtime processes
(``--config`` in the arguments): PY_SWITCH sets ``sys.setswitchinterval`` (seconds); with PROBE_OUT,
``$PROBE_OUT.<pid>`` gets one line per overlapped commit at exit: ms from ``Committer.start`` until the
committer thread runs ``send``, ms in ``send`` (both broker calls), ms from the end of ``send`` until
the loop settles it (negative: the loop was already waiting), ms the loop waited in ``take``.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from typing import Any

if "--config" in sys.argv:
    if os.environ.get("PY_SWITCH"):
        sys.setswitchinterval(float(os.environ["PY_SWITCH"]))
    if os.environ.get("PROBE_OUT"):
        from smc_runtime.kafka import committer as _c
        from smc_runtime.kafka import transaction as _t

        _rows: list[str] = []
        _start, _take, _send = _c.Committer.start, _c.Committer.take, _t.Transaction.send

        def _probe_start(self: Any, txn: Any, prepared: Any) -> None:
            txn._probe = [time.perf_counter()]
            _start(self, txn, prepared)

        def _probe_send(self: Any, prepared: Any) -> None:
            marks = getattr(self, "_probe", None)
            if marks is not None:
                marks.append(time.perf_counter())
            _send(self, prepared)
            if marks is not None:
                marks.append(time.perf_counter())

        def _probe_take(self: Any) -> Any:
            before = time.perf_counter()
            txn = self.inflight.txn
            result = _take(self)
            after = time.perf_counter()
            marks = getattr(txn, "_probe", None)
            if marks and len(marks) == 3:
                _rows.append(f"{(marks[1] - marks[0]) * 1e3:.2f} {(marks[2] - marks[1]) * 1e3:.2f} "
                             f"{(before - marks[2]) * 1e3:.2f} {(after - before) * 1e3:.2f}")
            return result

        _c.Committer.start = _probe_start  # type: ignore[method-assign]
        _c.Committer.take = _probe_take  # type: ignore[method-assign]
        _t.Transaction.send = _probe_send  # type: ignore[method-assign]

        def _dump() -> None:
            with open(f"{os.environ['PROBE_OUT']}.{os.getpid()}", "w") as handle:
                handle.write("\n".join(_rows) + "\n")

        atexit.register(_dump)
