#!/usr/bin/env bash
# commit-duration A/B, smc-stream only, steady 10k 20ms
set -uo pipefail
cd /work/main && source .testbed/env
tag=$1; n=$2
for i in $(seq 1 $n); do
  if (( i % 2 )); then order="main lead"; else order="lead main"; fi
  for v in $order; do
    if [[ $v == lead ]]; then pp=/tmp/s6/gcprobe:/work/wt-lead/runtime; else pp=/tmp/s6/gcprobe; fi
    PROBE_OUT=/tmp/s6/$tag-$v-$i.commits PYTHONPATH=$pp timeout 600 .venv/bin/python -m benchmarks.run_all --frameworks smc-stream --modes exactly_once --no-defaults --no-drain --rate 10000 --commit-interval-ms 20 --label s6/$tag-$v-$i > /tmp/s6/$tag-$v-$i.log 2>&1
    python3 -c "
c=sorted(map(float,open('/tmp/s6/$tag-$v-$i.commits').read().split()))
import json; s=json.load(open('benchmarks/results/s6/$tag-$v-$i.json'))['steady'][0]
q=lambda p:c[min(len(c)-1,int(p*len(c)))]
print('$tag $v $i n',len(c),'p50 %.1f p90 %.1f p99 %.1f max %.1f >40ms %d >80ms %d' % (q(.5),q(.9),q(.99),c[-1],sum(x>40 for x in c),sum(x>80 for x in c)), '| e2e p50', s['p50_ms'], 'p99', s['p99_ms'])"
  done
done
