"""Probe: per commit, its timings and the latencies of its records at commit end."""

from __future__ import annotations

import atexit
import os
import sys
import time

if "--config" in sys.argv:
    from smc_runtime.kafka import transaction as _t

    _rows: list[str] = []
    _op, _os, _of = _t.Transaction.prepare, _t.Transaction.send, _t.Transaction.finish

    def _prep(self, *a, **k):
        t = time.perf_counter()
        r = _op(self, *a, **k)
        self._probe = [t, time.perf_counter(), sum(len(v) for v in r.written.values())]
        return r

    def _send(self, prepared):
        r = _os(self, prepared)
        self._probe.append(time.perf_counter())
        return r

    def _finish(self, prepared):
        r = _of(self, prepared)
        p = getattr(self, "_probe", None)
        if p and len(p) == 4:
            now_ms = time.time() * 1000
            ts = self.timestamps
            lat = sorted(now_ms - x for x in ts) if ts else [0.0]
            # end ms, records, max and p50 latency, prepare ms, send ms, snapshot keys, first record->prepare
            _rows.append(
                "{:.1f} {} {:.1f} {:.1f} {:.2f} {:.2f} {} {:.2f}".format(  # noqa: UP032
                    now_ms,
                    len(ts),
                    lat[-1],
                    lat[len(lat) // 2],
                    (p[1] - p[0]) * 1000,
                    (p[3] - p[1]) * 1000,
                    p[2],
                    (p[0] - self.started) * 1000,
                )
            )
        return r

    _t.Transaction.prepare, _t.Transaction.send, _t.Transaction.finish = _prep, _send, _finish

    def _dump() -> None:
        with open(os.environ.get("PROBE_OUT", "/tmp/s8/probe2/out") + ".commits", "w") as out:
            out.write("\n".join(_rows) + "\n")

    atexit.register(_dump)
