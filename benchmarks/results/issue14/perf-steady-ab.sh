#!/usr/bin/env bash
# Steady-only A/B (10k msgs/s, 20 ms commits, smc-stream and bare), 6 alternating pairs of 3e14ab8 vs bc9dd7f.
# Needs /tmp/smc-perf-<rev>/runtime (unpacked by perf-interleave.sh: git archive <rev> runtime).
# Run from the repository root with the test bed up.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)" && source .testbed/env
mkdir -p /tmp/perfprof
for pair in 1 2 3 4 5 6; do
  if (( pair % 2 )); then order="before after"; else order="after before"; fi
  for v in $order; do
    if [[ $v == before ]]; then rev=3e14ab8; else rev=bc9dd7f; fi
    l0=$(cut -d' ' -f1 /proc/loadavg)
    PYTHONPATH=/tmp/smc-perf-$rev/runtime timeout 300 .venv/bin/python -m benchmarks.run_all --frameworks smc-stream,bare --modes exactly_once --no-defaults --no-drain --rate 10000 --commit-interval-ms 20 --label issue14/perf-steady-$v-20ms-$pair > /tmp/perfprof/sab-$v-$pair.log 2>&1
    echo "$(date -u +%T) $pair $v load $l0 -> $(cut -d' ' -f1 /proc/loadavg) $(python3 -c "
import json; d=json.load(open('benchmarks/results/issue14/perf-steady-$v-20ms-$pair.json'))
for s in d['steady']: print(s['framework'], 'p50', s['p50_ms'], 'p99', s['p99_ms'], 'commits', s['metrics'].get('smc_runtime_transactions_committed_total', '-'), end=' | ')")"
  done
done
