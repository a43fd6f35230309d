#!/usr/bin/env bash
# steady-only 20 ms runs of smc-stream + bare with env variations; one line per run
set -uo pipefail
cd /work/main && source .testbed/env
mkdir -p /work/main/benchmarks/results/s8 /tmp/s8/exp
run() { # name, env assignments...
  local name=$1; shift
  rm -f /tmp/s8/probe/out.*
  env "$@" PYTHONPATH=/tmp/s8/probe:/work/main/runtime:/work/main PROBE_OUT=/tmp/s8/probe/out timeout 600 .venv/bin/python -m benchmarks.run_all --frameworks smc-stream,bare --modes exactly_once --no-defaults --count 600000 --rate 10000 --commit-interval-ms 20 --no-drain --label s8/exp-$name > /tmp/s8/exp/$name.log 2>&1
  echo "$(date -u +%T) $name $(grep -E '^\s+p50' /tmp/s8/exp/$name.log | awk '{printf "%s/%s ", $2, $5}') | $(grep -h -A2 cli.py /tmp/s8/probe/out.* | tail -2 | awk '{printf "%s %s %s; ", $1, $3, $4}')| bare $(grep -h -A2 bare_loop /tmp/s8/probe/out.* | tail -2 | awk '{printf "%s %s; ", $1, $3}')"
}
for round in 1 2; do
  run base-$round X=1
  run snapoff-$round SNAPSHOT_INTERVAL_MS=600000
  run nolz4-$round 'PROBE_PCONF={"compression.type":"none"}'
  run fetch10-$round 'PROBE_CCONF={"fetch.wait.max.ms":10}'
done
