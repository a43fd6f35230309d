#!/usr/bin/env bash
set -uo pipefail
cd /work/main && source .testbed/env
mkdir -p /tmp/s8/exp
run() { local name=$1; shift
  env "$@" PYTHONPATH=/work/main/runtime:/work/main timeout 600 .venv/bin/python -m benchmarks.run_all --frameworks smc-stream,bare --modes exactly_once --no-defaults --count 600000 --rate 10000 --commit-interval-ms 20 --no-drain --label s8/exp-$name > /tmp/s8/exp/$name.log 2>&1
  python3 - "$name" <<'PY'
import json, sys, time
name = sys.argv[1]
d = json.load(open(f"/work/main/benchmarks/results/s8/exp-{name}.json"))
s = {x["framework"]: x for x in d["steady"]}
m = s["smc-stream"]["metrics"]
c = m.get("smc_runtime_transactions_committed_total", 0)
e2e = m.get("smc_runtime_end_to_end_latency_seconds_sum", 0) / max(1, m.get("smc_runtime_end_to_end_latency_seconds_count", 1)) * 1000
print(time.strftime("%T"), name, "smc p50/p99 %.1f/%.1f bare %.1f/%.1f ratio %.2f | commits %d e2e-mean %.1f cpu %.4f/%.4f" % (
    s["smc-stream"]["p50_ms"], s["smc-stream"]["p99_ms"], s["bare"]["p50_ms"], s["bare"]["p99_ms"],
    s["smc-stream"]["p99_ms"] / s["bare"]["p99_ms"], c, e2e, s["smc-stream"]["cpu_s_per_1k"], s["bare"]["cpu_s_per_1k"]), flush=True)
PY
}
for round in 1 2 3; do
  run obase-$round X=1
  run overlap-$round COMMIT_OVERLAP=true
done
