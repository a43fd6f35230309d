#!/usr/bin/env bash
# steady-only rounds (smc-stream and bare in one run_all), variants "name|ENV=V ...|extra args", rotating order;
# every transactional producer's commit calls are timed by the probe (PROBE_OUT)
# usage: RATE=5000 bash steady.sh TAG ROUNDS "name|ENV=V ...|extra run_all args" ...
set -uo pipefail
S=s12; tag=$1; n=$2; shift 2
variants=("$@")
here=$(cd "$(dirname "$0")" && pwd)
source /work/main/.testbed/env
mkdir -p /tmp/$S/steady /tmp/$S/probe/runs /work/main/benchmarks/results/$S
cp "$here/probes/commit_calls_sitecustomize.py" /tmp/$S/probe/sitecustomize.py
k=${#variants[@]}
for i in $(seq 1 $n); do
  for j in $(seq 0 $((k-1))); do
    v=${variants[$(( (j + i - 1) % k ))]}
    IFS='|' read -r name envs extra <<< "$v"
    label=$tag-$name-$i
    l0=$(cut -d' ' -f1 /proc/loadavg)
    ( cd /work/main && env $envs PROBE_OUT=/tmp/$S/probe/runs/$label PYTHONPATH=/tmp/$S/probe:/work/main timeout 600 .venv/bin/python -m benchmarks.run_all --frameworks smc-stream,bare --modes exactly_once --no-defaults --no-drain --broker-warmup 0 --count 600000 --rate ${RATE:-10000} --commit-interval-ms 20 --label $S/$label $extra > /tmp/$S/steady/$label.log 2>&1 )
    python3 - "/work/main/benchmarks/results/$S/$label.json" "$label" "$l0" <<'PY'
import json, sys, time
d = json.load(open(sys.argv[1])); st = {x["framework"]: x for x in d["steady"]}
print(time.strftime("%T"), sys.argv[2], "load", sys.argv[3], "steady smc %.1f/%.1f cpu %.4f bare %.1f/%.1f cpu %.4f ratio %.2f" % (
    st["smc-stream"]["p50_ms"], st["smc-stream"]["p99_ms"], st["smc-stream"].get("cpu_s_per_1k", 0), st["bare"]["p50_ms"], st["bare"]["p99_ms"],
    st["bare"].get("cpu_s_per_1k", 0), st["smc-stream"]["p99_ms"] / st["bare"]["p99_ms"]), flush=True)
PY
    for f in /tmp/$S/probe/runs/$label.*; do python3 "$here/probes/commit_calls_summary.py" $f | sed 's#^/tmp/[^ ]*/##'; done
  done
done
