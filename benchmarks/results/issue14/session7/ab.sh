#!/usr/bin/env bash
# the issue's make-bench command: lead (overlapped commit) at 20 and 100 ms, main (d145b4b) at 20 ms, rotating order
set -uo pipefail
cd /work/wt-lead && source .testbed/env
tag=$1; n=$2
orders=("lead-20 lead-100 main-20" "main-20 lead-20 lead-100" "lead-100 main-20 lead-20")
for i in $(seq 1 $n); do
  for v in ${orders[$(( (i-1) % 3 ))]}; do
    code=${v%-*}; ms=${v#*-}
    if [[ $code == lead ]]; then pp=/work/wt-lead/runtime:/work/wt-lead; else pp=/work/main/runtime:/work/main; fi
    l0=$(cut -d' ' -f1 /proc/loadavg)
    ( cd /work/${code/lead/wt-lead} && PYTHONPATH=$pp timeout 900 /work/main/.venv/bin/python -m benchmarks.run_all --frameworks smc-stream,bare --modes exactly_once --no-defaults --count 600000 --rate 10000 --commit-interval-ms $ms --label s7/$tag-$v-$i > /tmp/s7/$tag-$v-$i.log 2>&1 )
    f=/work/${code/lead/wt-lead}/benchmarks/results/s7/$tag-$v-$i.json
    echo "$(date -u +%T) $tag $v $i load $l0 -> $(cut -d' ' -f1 /proc/loadavg) $(python3 -c "
import json; d=json.load(open('$f'))
dr={s['framework']:s for s in d['drain']}; st={s['framework']:s for s in d['steady']}
print('drain smc', dr['smc-stream']['msgs_per_s'], 'cpu', dr['smc-stream']['cpu_s_per_1k'], 'bare', dr['bare']['msgs_per_s'], '| steady smc p50/p99', st['smc-stream']['p50_ms'], st['smc-stream']['p99_ms'], 'bare', st['bare']['p50_ms'], st['bare']['p99_ms'], 'ratio %.2f' % (st['smc-stream']['p99_ms']/st['bare']['p99_ms']))" 2>&1)"
  done
done
