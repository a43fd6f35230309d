"""Probe: per commit, the records pending in the producer and the time of each broker call.

Copy as ``sitecustomize.py`` into a directory, put it first on PYTHONPATH and set PROBE_OUT: every
runtime process (``--config`` in its arguments) writes ``$PROBE_OUT.<pid>`` at exit, one line per
commit: perf_counter at its start, pending before and after ``send_offsets_to_transaction``, ms in
``send_offsets_to_transaction``, ms in ``commit_transaction``. Replaces the retries of
``Transaction._commit_transaction`` (a probe for healthy runs only).
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from typing import Any

if "--config" in sys.argv:
    from smc_runtime.kafka import transaction as _t

    _rows: list[str] = []

    def _commit_transaction(self: Any, offsets: Any, metadata: Any) -> None:
        producer = self.ctx.producer
        start = time.perf_counter()
        pending = len(producer)
        if offsets:
            producer.send_offsets_to_transaction(offsets, metadata, 10.0)
        sent = time.perf_counter()
        pending_after = len(producer)
        producer.commit_transaction(10.0)
        end = time.perf_counter()
        _rows.append(f"{start:.4f} {pending} {pending_after} "
                     f"{(sent - start) * 1000:.2f} {(end - sent) * 1000:.2f}")

    _t.Transaction._commit_transaction = _commit_transaction  # type: ignore[method-assign]

    def _dump() -> None:
        out = os.environ.get("PROBE_OUT")
        if out:
            with open(f"{out}.{os.getpid()}", "w") as handle:
                handle.write("\n".join(_rows) + "\n")

    atexit.register(_dump)
