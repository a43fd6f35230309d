"""Probe: wall time of send_offsets_to_transaction / commit_transaction / begin in any process."""

from __future__ import annotations

import atexit
import os
import sys
import time

import confluent_kafka as _ck

_times: dict[str, list[float]] = {"send_offsets": [], "commit": [], "produced": []}


class _P(_ck.Producer):
    def __init__(self, conf, *a, **k):
        if os.environ.get("PROBE_DEBUG") and "transactional.id" in conf:
            conf = dict(conf)
            conf["debug"] = os.environ["PROBE_DEBUG"]
        if os.environ.get("PROBE_PCONF") and "client.id" in conf:
            import json as _j

            conf = dict(conf)
            conf.update(_j.loads(os.environ["PROBE_PCONF"]))
        super().__init__(conf, *a, **k)

    def send_offsets_to_transaction(self, *a, **k):
        t = time.perf_counter()
        r = super().send_offsets_to_transaction(*a, **k)
        _times["send_offsets"].append((time.perf_counter() - t) * 1000)
        return r

    def commit_transaction(self, *a, **k):
        t = time.perf_counter()
        r = super().commit_transaction(*a, **k)
        _times["commit"].append((time.perf_counter() - t) * 1000)
        return r


_ck.Producer = _P


class _C(_ck.Consumer):
    def __init__(self, conf, *a, **k):
        if (
            os.environ.get("PROBE_CCONF")
            and "client.id" in conf
            and not conf.get("group.id", "").endswith(".restore")
        ):
            import json as _j

            conf = dict(conf)
            conf.update(_j.loads(os.environ["PROBE_CCONF"]))
        super().__init__(conf, *a, **k)


_ck.Consumer = _C


def _quantiles(v: list[float]) -> str:
    n = len(v)
    return f"p50={v[n // 2]:.2f} p90={v[int(n * 0.9)]:.2f} p99={v[int(n * 0.99)]:.2f} mean={sum(v) / n:.2f}"


def _dump() -> None:
    name = os.environ.get("PROBE_OUT", "/tmp/s8/probe/out") + f".{os.getpid()}"
    with open(name, "w") as out:
        out.write(" ".join(sys.argv[:4]) + "\n")
        for k, v in _times.items():
            v = sorted(v)
            if v:
                out.write(f"{k} n={len(v)} {_quantiles(v)} max={v[-1]:.2f}\n")


atexit.register(_dump)

if "--config" in sys.argv and os.environ.get("PROBE_TXN"):
    from smc_runtime.kafka import transaction as _t

    _rows: list[tuple[float, float, int, float]] = []
    _op, _os = _t.Transaction.prepare, _t.Transaction.send

    def _prep(self, *a, **k):
        t = time.perf_counter()
        r = _op(self, *a, **k)
        self._probe = ((time.perf_counter() - t) * 1000, sum(len(v) for v in r.written.values()))
        return r

    def _send(self, prepared):
        t = time.perf_counter()
        r = _os(self, prepared)
        p = getattr(self, "_probe", (0.0, 0))
        _rows.append((p[0], (time.perf_counter() - t) * 1000, p[1], self.pending))
        return r

    _t.Transaction.prepare, _t.Transaction.send = _prep, _send

    def _dump2() -> None:
        with open(os.environ.get("PROBE_OUT", "/tmp/s8/probe/out") + ".txn", "w") as out:
            for r in _rows:
                out.write("{:.2f} {:.2f} {} {}\n".format(*r))

    atexit.register(_dump2)

if os.environ.get("PROBE_CONSUME"):
    _delays: list[float] = []
    _batches: list[int] = []

    class _C2(_ck.Consumer):
        def consume(self, *a, **k):
            msgs = super().consume(*a, **k)
            if msgs:
                now = time.time() * 1000
                _batches.append(len(msgs))
                for m in msgs:
                    ts = m.timestamp()[1]
                    if ts > 1.7e12 and len(_delays) < 2_000_000:
                        _delays.append(now - ts)
            return msgs

    _ck.Consumer = _C2

    def _dump3() -> None:
        v = sorted(_delays)
        if not v:
            return
        b = sorted(_batches)
        with open(os.environ.get("PROBE_OUT", "/tmp/s8/probe/out") + f".consume.{os.getpid()}", "w") as out:
            args = " ".join(sys.argv[:2])
            out.write(f"{args} n={len(v)} {_quantiles(v)} batches={len(b)} batch-p50={b[len(b) // 2]}\n")

    atexit.register(_dump3)
