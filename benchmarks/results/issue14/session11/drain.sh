#!/usr/bin/env bash
# drain-only rounds of the issue's command; variants "name:runtime_dir:ms", rotating order
set -uo pipefail
S=s11; tag=$1; n=$2; shift 2
variants=("$@")
mkdir -p /tmp/$S/full /work/main/benchmarks/results/$S
source /work/main/.testbed/env
k=${#variants[@]}
for i in $(seq 1 $n); do
  for j in $(seq 0 $((k-1))); do
    v=${variants[$(( (j + i - 1) % k ))]}
    IFS=: read -r name rdir ms <<< "$v"
    label=$tag-$name-$ms-$i
    l0=$(cut -d' ' -f1 /proc/loadavg)
    ( cd /work/main && PYTHONPATH=$rdir/runtime:/work/main timeout 600 .venv/bin/python -m benchmarks.run_all --frameworks smc-stream,bare --modes exactly_once --no-defaults --count 600000 --rate 10000 --no-steady --broker-warmup 0 --commit-interval-ms $ms --label $S/$label > /tmp/$S/full/$label.log 2>&1 )
    python3 - "/work/main/benchmarks/results/$S/$label.json" "$label" "$l0" <<'PY'
import json, sys, time
d = json.load(open(sys.argv[1])); dr = {x["framework"]: x for x in d["drain"]}
s = dr["smc-stream"]; m = s["metrics"]; n = m["smc_runtime_commit_latency_seconds_count"]
print(time.strftime("%T"), sys.argv[2], "load", sys.argv[3], "drain smc %.0f cpu %.4f commits %d mean commit %.2f ms | bare %.0f" % (
    s["msgs_per_s"], s["cpu_s_per_1k"], n, 1000 * m["smc_runtime_commit_latency_seconds_sum"] / n, dr["bare"]["msgs_per_s"]), flush=True)
PY
  done
done
