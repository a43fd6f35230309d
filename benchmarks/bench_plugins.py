"""Cost of the plugin mechanism: ``Pipeline.process`` with the built-ins alone, before and after
plugins existed, and with the example plugin (examples/smc-example-plugin) enabled.

Run: ``.venv/bin/python -m benchmarks.bench_plugins [--n 20000] [--repeat 7]``.

"before" is ``pipeline.py`` as of ``BASELINE_COMMIT`` (the last version without the plugin
mechanism), loaded from git and run against today's analytics, so the only difference is the
plugin machinery. Variants are measured interleaved (A, B, C, A, B, C, ...); the table shows the
best and median CPU time per message and, as the headline, the median over rounds of each
variant's time divided by "before" in the same round (paired, so load changes on a shared
machine cancel out). Target: built-ins alone "after" within 5% of "before".
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from smc_runtime.config import ProcessorSettings
from smc_runtime.pipeline import Pipeline
from smc_runtime.sample_data import MarketRecord, generate_market_data

BASELINE_COMMIT = "51c42f8"  # pipeline.py before "plugins: entry-point discovery ..." (bb8ac6e)
REPO = Path(__file__).resolve().parent.parent


def load_baseline_pipeline() -> Any:
    """The pre-plugin ``Pipeline`` class, compiled from git history as a separate module."""
    source = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:runtime/smc_runtime/pipeline.py"],
                            cwd=REPO, check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("smc_runtime._baseline_pipeline")
    module.__file__ = f"<git {BASELINE_COMMIT}>/pipeline.py"
    sys.modules[module.__name__] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # our own history, not input
    return module.Pipeline


def _settings(plugins: dict[str, Any] | None) -> ProcessorSettings:
    raw: dict[str, Any] = {
        "consumer_group": "bench", "input_topics": ["in"],
        "enrichment": {"klines": {"bars_from_trades": True, "trade_bar_interval_ms": 5000}},
    }
    if plugins:
        raw["plugins"] = plugins
    return ProcessorSettings.model_validate(raw)


EXAMPLE_PLUGINS: dict[str, Any] = {
    "enrichers": {"trade_streak": {"min_streak": 3}},
    "detectors": {"range_breakout": {"lookback": 20}},
    "alert_rules": {"price_level": {"levels": {"BTCUSDT": [65_000.0], "ETHUSDT": [3_200.0]}}},
}


def _records(n: int) -> list[MarketRecord]:
    return list(generate_market_data(["BTCUSDT", "ETHUSDT"], trades_per_symbol=max(1, n // 4), seed=11,
                                     depth_every=1, snapshot_every=5_000, mean_trade_gap_ms=400))[:n]


def _runner(factory: Callable[[], Any], records: Sequence[MarketRecord]) -> Callable[[], float]:
    def run() -> float:
        pipeline = factory()
        process = pipeline.process
        start = time.process_time_ns()
        for i, r in enumerate(records):
            process(r.value, topic=r.topic, partition=0, offset=i, timestamp_ms=r.timestamp_ms, key=r.key)
        return (time.process_time_ns() - start) / len(records) / 1000.0
    return run


def bench(n: int, repeat: int) -> list[tuple[str, str, float, float, float]]:
    baseline_cls = load_baseline_pipeline()
    builtins_only = _settings(None)
    with_plugin = _settings(EXAMPLE_PLUGINS)
    importlib.util.find_spec("smc_example_plugin") or sys.exit(
        "smc_example_plugin is not installed: make setup (pip install -e examples/smc-example-plugin)")
    records = _records(n)
    trades = [r for r in records if r.topic.endswith(".trades")]
    streams = {"mixed sample stream": records, "trades only": trades}
    variants: dict[str, Callable[[], Any]] = {
        "before: built-ins (no plugin mechanism)": lambda: baseline_cls(builtins_only),
        "before again (A/A: the noise floor)": lambda: baseline_cls(builtins_only),
        "after: built-ins, no plugins configured": lambda: Pipeline(builtins_only),
        "after: built-ins + example plugin": lambda: Pipeline(with_plugin),
    }
    rows = []
    for stream, selected in streams.items():
        runners = {name: _runner(factory, selected) for name, factory in variants.items()}
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeat):
            for name, run in runners.items():
                samples[name].append(run())
        before = samples[next(iter(variants))]
        for name in variants:
            paired = statistics.median(t / b for t, b in zip(samples[name], before, strict=True))
            rows.append((stream, name, min(samples[name]), statistics.median(samples[name]), paired))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20_000, help="messages per measurement")
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds (best is kept)")
    args = parser.parse_args(argv)
    rows = bench(args.n, args.repeat)
    print(f"# bench_plugins  python {platform.python_version()}  n={args.n}  best of {args.repeat} "
          f"interleaved rounds, CPU time  baseline={BASELINE_COMMIT}")
    width = max(len(row[1]) for row in rows)
    print(f"{'stream':<20}  {'variant'.ljust(width)}  {'best us/msg':>11}  {'median':>8}  "
          f"vs before (paired median)")
    for stream, name, best, median, paired in rows:
        print(f"{stream:<20}  {name.ljust(width)}  {best:11.3f}  {median:8.3f}  {(paired - 1) * 100:+6.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
