"""The latency floor of one steady run without a processor (now ``run_all --floor``): the collector
reads the input topic itself. ``python floor_steady.py RATE`` with the test bed's environment."""

from __future__ import annotations

import os
import sys

from benchmarks import targets
from benchmarks.harness import create_topics, run_steady, unique
from benchmarks.workload import TRADES_ONLY, market_messages

bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
rate = float(sys.argv[1])
messages = market_messages(1000, int(rate * 15) + 5000, TRADES_ONLY, 8)
topic = unique("bench.floor")
create_topics(bootstrap, {topic: 6})
result = run_steady(targets.floor(topic), bootstrap, {"trades": topic}, messages, rate, show_progress=False)
print(rate, "p50", result.p50_ms, "p99", result.p99_ms, "received", result.received, result.error)
