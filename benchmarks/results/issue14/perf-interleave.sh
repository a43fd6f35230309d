#!/usr/bin/env bash
# Interleaved before/after runs of the issue-14 bench (make bench's command, without its pip steps).
#   before: the runtime of commit $BEFORE (default 3e14ab8), after: of commit $AFTER (default HEAD);
#   each is unpacked to /tmp and put first on PYTHONPATH, so the driver, the bare loop and the
#   client library are the same for both. Pairs alternate their order (before first, then after first).
#   Usage (from the worktree, test bed up): benchmarks/results/issue14/perf-interleave.sh [pairs]
#   START=4 ... 6 continues the pair numbering. ONLY=after runs one variant (repeats with alternating interval order), e.g. when the runtime of
#   the two commits is identical (git diff --stat $BEFORE HEAD -- runtime is empty).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
source .testbed/env
PAIRS=${1:-3}
BEFORE=${BEFORE:-3e14ab8}
AFTER=${AFTER:-$(git rev-parse --short HEAD)}
OUT=benchmarks/results/issue14
for rev in "$BEFORE" "$AFTER"; do
  rm -rf "/tmp/smc-perf-$rev" && mkdir -p "/tmp/smc-perf-$rev"
  git archive "$rev" runtime | tar -x -C "/tmp/smc-perf-$rev"
done
run() {  # variant rev interval pair
  local label="issue14/perf-$1-$3ms-$4"
  echo "$(date -u +%T) $1 ($2) ${3} ms pair $4: load before $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/perf-runs.log
  PYTHONPATH="/tmp/smc-perf-$2/runtime" .venv/bin/python -m benchmarks.run_all \
    --frameworks smc-stream,bare --modes exactly_once --no-defaults --count 600000 --rate 10000 \
    --commit-interval-ms "$3" --label "$label" > "/tmp/smc-perf-$1-$3-$4.log" 2>&1 || echo "   run failed" | tee -a $OUT/perf-runs.log
  echo "$(date -u +%T)   load after $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/perf-runs.log
}
for pair in $(seq "${START:-1}" "$PAIRS"); do
  if (( pair % 2 )); then intervals="20 100"; else intervals="100 20"; fi
  for interval in $intervals; do
    if (( pair % 2 )); then order="before after"; else order="after before"; fi
    [[ -n ${ONLY:-} ]] && order=$ONLY
    for variant in $order; do
      if [[ $variant == before ]]; then rev=$BEFORE; else rev=$AFTER; fi
      run "$variant" "$rev" "$interval" "$pair"
    done
  done
done
