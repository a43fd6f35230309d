import os, sys, time, atexit
argv = " ".join(sys.argv)
if "--config" in sys.argv or "--bootstrap" in sys.argv:
    import confluent_kafka as ck
    _c = []
    _t = [0.0]
    class P(ck.Producer):
        def send_offsets_to_transaction(self, *a, **k):
            _t[0] = time.perf_counter()
            return super().send_offsets_to_transaction(*a, **k)
        def commit_transaction(self, *a, **k):
            t = _t[0] or time.perf_counter()
            r = super().commit_transaction(*a, **k)
            _c.append((time.perf_counter() - t) * 1000); _t[0] = 0.0
            return r
    ck.Producer = P
    def _dump():
        tag = "smc" if "--config" in sys.argv else "bare"
        with open(os.environ.get("PROBE_OUT", "/tmp/s6/probe2/x") + f".{tag}", "w") as f:
            f.write(" ".join(f"{c:.2f}" for c in _c))
    atexit.register(_dump)
