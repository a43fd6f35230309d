#!/bin/bash
# interleaved drain runs: base (cc8a023, before issue 12) vs head; $1 pairs, $2 count
set -u
pairs=${1:-4}; count=${2:-300000}; boot=$3
for i in $(seq 1 $pairs); do
  for v in base head; do
    (cd /tmp/$v && timeout 600 .venv/bin/python tests/load_test_stream_processor.py --scenario drain --count $count --bootstrap $boot --json 2>/dev/null | tail -1 | sed "s/^/$v $(date +%H:%M:%S) $(cut -d' ' -f1 /proc/loadavg) /") >> /tmp/bench/results.txt
  done
done
