#!/usr/bin/env bash
# usage: bash drain.sh TAG ROUNDS "name|ENV=V ..." ...; drain-only smc-stream at 20 ms: variants "name|ENV=VAL ...", rotating order
set -uo pipefail
S=s12; tag=$1; n=$2; shift 2
variants=("$@")
mkdir -p /tmp/$S/snap /work/main/benchmarks/results/$S
source /work/main/.testbed/env
k=${#variants[@]}
for i in $(seq 1 $n); do
  for j in $(seq 0 $((k-1))); do
    v=${variants[$(( (j + i - 1) % k ))]}
    name=${v%%|*}; envs=${v#*|}
    label=$tag-$name-$i
    l0=$(cut -d' ' -f1 /proc/loadavg)
    ( cd /work/main && env $envs timeout 600 .venv/bin/python -m benchmarks.run_all --frameworks smc-stream --modes exactly_once --no-defaults --count 300000 --no-steady --broker-warmup 0 --commit-interval-ms 20 --label $S/$label > /tmp/$S/snap/$label.log 2>&1 )
    python3 - "/work/main/benchmarks/results/$S/$label.json" "$label" "$l0" <<'PY'
import json, sys, time
d = json.load(open(sys.argv[1])); dr = {x["framework"]: x for x in d["drain"]}
s = dr["smc-stream"]; m = s["metrics"]; n = m.get("smc_runtime_commit_latency_seconds_count", 0) or 1
print(time.strftime("%T"), sys.argv[2], "load", sys.argv[3], "drain smc %.0f cpu %.4f commits %d mean commit %.2f ms" % (
    s["msgs_per_s"], s["cpu_s_per_1k"], n, 1000 * m.get("smc_runtime_commit_latency_seconds_sum", 0) / n), flush=True)
PY
  done
done
