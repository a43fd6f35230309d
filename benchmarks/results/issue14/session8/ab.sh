#!/usr/bin/env bash
# A/B of two checkouts: steady-only 20 ms runs (smc-stream + bare); label tag; rounds n; code dirs as args
set -uo pipefail
S=${SESSION:-s8}  # results go to benchmarks/results/$S and /tmp/$S
tag=$1; n=$2; shift 2
mkdir -p /tmp/$S/ab /work/main/benchmarks/results/$S
source /work/main/.testbed/env
for i in $(seq 1 $n); do
  for code in "$@"; do
    name=$tag-$(basename $code)-$i
    ( cd $code && PYTHONPATH=$code/runtime:$code timeout 600 /work/main/.venv/bin/python -m benchmarks.run_all --frameworks smc-stream,bare --modes exactly_once --no-defaults --count 600000 --rate 10000 --commit-interval-ms 20 --no-drain ${EXTRA:-} --label $S/$name > /tmp/$S/ab/$name.log 2>&1 )
    f=$code/benchmarks/results/$S/$name.json
    python3 - "$f" "$name" <<'PY'
import json, sys, time
d = json.load(open(sys.argv[1])); name = sys.argv[2]
s = {x["framework"]: x for x in d["steady"]}
m = s["smc-stream"]["metrics"]
c = m.get("smc_runtime_transactions_committed_total", 0)
print(time.strftime("%T"), name, "smc p50/p99 %.1f/%.1f bare %.1f/%.1f ratio %.2f | commits %d cpu %.4f/%.4f" % (
    s["smc-stream"]["p50_ms"], s["smc-stream"]["p99_ms"], s["bare"]["p50_ms"], s["bare"]["p99_ms"],
    s["smc-stream"]["p99_ms"] / s["bare"]["p99_ms"], c, s["smc-stream"]["cpu_s_per_1k"], s["bare"]["cpu_s_per_1k"]), flush=True)
PY
  done
done
