#!/usr/bin/env bash
# renice every thread of the processors under test to $1, as they appear
while true; do
  for pid in $(pgrep -f 'smc_runtime.cli run|benchmarks.peers.bare'); do
    for t in /proc/$pid/task/*; do renice -n $1 -p $(basename $t) >/dev/null 2>&1; done
  done
  sleep 0.5
done
