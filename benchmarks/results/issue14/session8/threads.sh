#!/usr/bin/env bash
# per-thread CPU of the process matching $1 over a 10 s window, starting once it has run 12 s
pat=$1
for i in $(seq 1 200); do pid=$(pgrep -f "$pat" | head -1); [[ -n $pid ]] && break; sleep 0.2; done
sleep 6
snap() { for t in /proc/$pid/task/*; do echo "$(basename $t) $(cat $t/comm | tr ' ' _) $(awk '{print $14+$15}' $t/stat)"; done; }
snap > /tmp/s8/t0; sleep 6; snap > /tmp/s8/t1
join <(sort /tmp/s8/t0) <(sort /tmp/s8/t1) | awk '{d=$5-$3; tot+=d; by[$2]+=d} END {for (k in by) if (by[k]>0) printf "%-20s %5.1f%%\n", k, by[k]; printf "total %5.1f%% of a core\n", tot}'
