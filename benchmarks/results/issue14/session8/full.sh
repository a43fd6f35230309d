#!/usr/bin/env bash
# the issue's make-bench command; variants "name:harness_dir:runtime_dir:ms", rotating order
set -uo pipefail
S=${SESSION:-s8}  # results go to benchmarks/results/$S and /tmp/$S
tag=$1; n=$2; shift 2
variants=("$@")
mkdir -p /tmp/$S/full
source /work/main/.testbed/env
k=${#variants[@]}
for i in $(seq 1 $n); do
  for j in $(seq 0 $((k-1))); do
    v=${variants[$(( (j + i - 1) % k ))]}
    IFS=: read -r name hdir rdir ms <<< "$v"
    label=$tag-$name-$ms-$i
    mkdir -p $hdir/benchmarks/results/$S
    l0=$(cut -d' ' -f1 /proc/loadavg)
    ( cd $hdir && PYTHONPATH=$rdir/runtime:$hdir timeout 900 /work/main/.venv/bin/python -m benchmarks.run_all --frameworks smc-stream,bare --modes exactly_once --no-defaults --count 600000 --rate 10000 --commit-interval-ms $ms --label $S/$label > /tmp/$S/full/$label.log 2>&1 )
    python3 - "$hdir/benchmarks/results/$S/$label.json" "$label" "$l0" <<'PY'
import json, sys, time
d = json.load(open(sys.argv[1])); name = sys.argv[2]
dr = {x["framework"]: x for x in d["drain"]}; st = {x["framework"]: x for x in d["steady"]}
print(time.strftime("%T"), name, "load", sys.argv[3], "drain smc %.0f cpu %.4f bare %.0f | steady smc %.1f/%.1f bare %.1f/%.1f ratio %.2f" % (
    dr["smc-stream"]["msgs_per_s"], dr["smc-stream"]["cpu_s_per_1k"], dr["bare"]["msgs_per_s"],
    st["smc-stream"]["p50_ms"], st["smc-stream"]["p99_ms"], st["bare"]["p50_ms"], st["bare"]["p99_ms"],
    st["smc-stream"]["p99_ms"] / st["bare"]["p99_ms"]), flush=True)
PY
  done
done
