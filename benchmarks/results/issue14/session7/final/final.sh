#!/usr/bin/env bash
# final code (commit waited for, the default) at 20 and 100 ms, alternating
set -uo pipefail
cd /work/main && source .testbed/env
for i in ${ROUNDS:-1 2 3}; do
  if (( i % 2 )); then order="20 100"; else order="100 20"; fi
  for ms in $order; do
    l0=$(cut -d' ' -f1 /proc/loadavg)
    PYTHONPATH=/work/main/runtime:/work/main timeout 900 .venv/bin/python -m benchmarks.run_all --frameworks smc-stream,bare --modes exactly_once --no-defaults --count 600000 --rate 10000 --commit-interval-ms $ms --label s7f/final-$ms-$i > /tmp/s7/final-$ms-$i.log 2>&1
    f=benchmarks/results/s7f/final-$ms-$i.json
    echo "$(date -u +%T) final-$ms $i load $l0 -> $(cut -d' ' -f1 /proc/loadavg) $(python3 -c "
import json; d=json.load(open('$f'))
dr={s['framework']:s for s in d['drain']}; st={s['framework']:s for s in d['steady']}
print('drain smc', dr['smc-stream']['msgs_per_s'], 'cpu', dr['smc-stream']['cpu_s_per_1k'], 'bare', dr['bare']['msgs_per_s'], '| steady smc p50/p99', st['smc-stream']['p50_ms'], st['smc-stream']['p99_ms'], 'bare', st['bare']['p50_ms'], st['bare']['p99_ms'], 'ratio %.2f' % (st['smc-stream']['p99_ms']/st['bare']['p99_ms']))" 2>&1)"
  done
done
