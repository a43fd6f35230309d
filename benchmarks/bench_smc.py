"""SMC benchmark: per-bar cost of each detector and of the whole engine, and the time of
``detect`` (our engine, both modes) vs ``smartmoneyconcepts`` on the same bars.

    .venv/bin/python benchmarks/bench_smc.py            # 100k (ours + library), 1M (ours)
    .venv/bin/python benchmarks/bench_smc.py --full     # also the library at 1M (minutes)
    .venv/bin/python -m benchmarks.bench_smc --context-only   # engine with each context feature

Per-detector cost = time of a loop driving that detector (plus the swings it consumes) minus
the time of the same loop without it (best of 3). Times are process CPU time, so other load on
a shared machine does not inflate them. The library is a benchmark-only dependency.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from smc_runtime.analytics.smc.bars import Bar, validate_bar
from smc_runtime.analytics.smc.buffer import BarBuffer
from smc_runtime.analytics.smc.engine import SmcEngine
from smc_runtime.analytics.smc.events import SmcEvent
from smc_runtime.analytics.smc.fvg import FvgDetector
from smc_runtime.analytics.smc.liquidity import LiquidityDetector
from smc_runtime.analytics.smc.order_blocks import OrderBlockDetector
from smc_runtime.analytics.smc.params import SmcParams
from smc_runtime.analytics.smc.series import SeriesEngine, parse_series
from smc_runtime.analytics.smc.structure import StructureDetector
from smc_runtime.analytics.smc.swings import SwingDetector, SwingPoint
from smc_runtime.detect_command import detect_lines

L = 10


def make_bars(n: int, seed: int = 1) -> list[Bar]:
    """FX-like random walk on a 1e-5 tick grid (ties happen), 1-minute bars."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 2e-4, n)
    close = np.round(1.1 + np.cumsum(steps), 5)
    open_ = np.concatenate(([1.1], close[:-1]))
    wick_u = np.round(np.abs(rng.normal(0, 1.5e-4, n)), 5)
    wick_d = np.round(np.abs(rng.normal(0, 1.5e-4, n)), 5)
    high = np.maximum(open_, close) + wick_u
    low = np.minimum(open_, close) - wick_d
    vol = rng.integers(1, 500, n).astype(float)
    ts = 1_600_000_000_000 + np.arange(n, dtype=np.int64) * 60_000
    return [
        Bar(int(t), float(o), float(h), float(lo), float(c), float(v))
        for t, o, h, lo, c, v in zip(ts, open_, high, low, close, vol, strict=True)
    ]


def _loop(bars: list[Bar], with_: str) -> float:
    """Drive the buffer plus the named detector(s); return seconds."""
    buf = BarBuffer()
    sw = SwingDetector(L, False)
    fvg = FvgDetector(False)
    st = StructureDetector(False, True)
    ob = OrderBlockDetector(False, False, L)
    liq = LiquidityDetector(False, "abs", 1e-4)
    use_sw = with_ in ("swings", "structure", "order_blocks", "liquidity")
    prev: int | None = None
    t0 = time.process_time()
    for t, b in enumerate(bars):
        validate_bar(b, prev)
        prev = b.timestamp_ms
        buf.append(b.timestamp_ms, b.open, b.high, b.low, b.close, b.volume, 0.0)
        out: list[SmcEvent] = []
        if with_ == "fvg":
            fvg.on_bar(t, buf, out)
        if with_ == "structure":
            st.on_bar_breaks(t, buf, out)
        if with_ == "liquidity":
            liq.on_bar(t, b.high, b.low, out)
        if use_sw:
            finals: list[SwingPoint] = []
            sw.on_bar(t, buf, out, finals)
            pend = sw.pending.index if sw.pending is not None else None
            if with_ == "structure":
                if finals:
                    st.on_finals(finals, t, buf, out)
                st.check_final(t, L, pend, out)
            elif with_ == "liquidity":
                if finals:
                    liq.on_finals(finals, t, buf, out)
                liq.check_final(t, L, pend, out)
            elif with_ == "order_blocks":
                ob.queue.extend(finals)
                ob.advance(t, buf, pend, sw.seen_candidate, out)
        cur = ob.cursor - 2 if with_ == "order_blocks" else t
        buf.prune(min(t - 2 * L, cur))
    return time.process_time() - t0


def per_detector(bars: list[Bar]) -> list[tuple[str, float]]:
    """Microseconds per bar for each detector (incremental over its baseline)."""
    n = len(bars)
    base = min(_loop(bars, "none") for _ in range(3))
    swings = min(_loop(bars, "swings") for _ in range(3))
    rows = [("bar intake (validate + buffer)", base), ("swings", swings - base)]
    for name in ("fvg", "structure", "order_blocks", "liquidity"):
        t = min(_loop(bars, name) for _ in range(3))
        rows.append((name, t - (swings if name != "fvg" else base)))
    eng_t = []
    for compat in (False, True):
        best = math.inf
        for _ in range(3):
            eng = SmcEngine(SmcParams(swing_length=L, compat=compat, liquidity_range="abs:0.0001"))
            t0 = time.process_time()
            for b in bars:
                eng.on_bar(b)
            eng.finalize()
            best = min(best, time.process_time() - t0)
        eng_t.append(best)
    rows.append(("detectors total (sum of above, excl. intake)", sum(r[1] for r in rows[1:])))
    rows.append(("SmcEngine.on_bar, default mode (all, incl. intake)", eng_t[0]))
    rows.append(("SmcEngine.on_bar, compat mode (all, incl. intake)", eng_t[1]))
    rows.extend(series_cost(bars))
    return [(name, sec / n * 1e6) for name, sec in rows]


SERIES = ("previous_high_low:1D", "previous_high_low:4h", "sessions:London", "retracements")


def series_cost(bars: list[Bar]) -> list[tuple[str, float]]:
    """Seconds of the per-bar series (issue 15), each alone and all four, default mode."""
    out = []
    for names in [(s,) for s in SERIES] + [SERIES]:
        best = math.inf
        for _ in range(3):
            eng = SeriesEngine([parse_series(s) for s in names], compat=False, swing_length=L)
            t0 = time.process_time()
            for b in bars:
                eng.on_bar(b)
            eng.finalize()
            best = min(best, time.process_time() - t0)
        out.append(("series " + (names[0] if len(names) == 1 else "all four") + " (incl. intake)", best))
    return out


# issue 15 context features, each on its own over the five patterns, then all together
CONTEXT_SETS: dict[str, dict[str, object]] = {
    "internal structure (internal_length=3, confluence)": {"internal_length": 3, "internal_confluence": True},
    "trend + zones": {"trend": True, "zones": True},
    "FVG controls (atr:0.5 min size, ce, inverse)": {
        "fvg_min_size": "atr:0.5", "fvg_mitigation": "ce", "inverse_fvg": True},
    "OB ATR filter 2.0 + breakers": {"ob_atr_filter": 2.0, "breakers": True},
    "sweep outcome": {"sweep_outcome": True},
}


def context_costs(bars: list[Bar]) -> list[tuple[str, float]]:
    """Microseconds per bar of the whole engine (default mode) with each context feature set on,
    and with all of them (the whole detector set)."""
    everything: dict[str, object] = {}
    for extra in CONTEXT_SETS.values():
        everything.update(extra)
    rows: list[tuple[str, float]] = []
    sets = [("five patterns only", {}), *CONTEXT_SETS.items(), ("whole set (all of the above)", everything)]
    for name, extra in sets:
        params = SmcParams(swing_length=L, liquidity_range="abs:0.0001", **extra)  # type: ignore[arg-type]
        best = math.inf
        for _ in range(3):
            eng = SmcEngine(params)
            t0 = time.process_time()
            for b in bars:
                eng.on_bar(b)
            eng.finalize()
            best = min(best, time.process_time() - t0)
        rows.append((name, best / len(bars) * 1e6))
    return rows


def time_it(fn: Callable[[], object]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def library_detect(bars: list[Bar]) -> None:
    """The five library calls the detect command covers (same L, default flags)."""
    import pandas as pd
    from smartmoneyconcepts import smc

    df = pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        }
    )
    shl = smc.swing_highs_lows(df, swing_length=L)
    smc.fvg(df)
    smc.bos_choch(df, shl)
    smc.ob(df, shl)
    smc.liquidity(df, shl)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true", help="also run the library at 1M bars (slow)")
    ap.add_argument("--micro-bars", type=int, default=200_000)
    ap.add_argument("--context-only", action="store_true", help="only the context-feature table")
    args = ap.parse_args()
    os.environ.setdefault("SMC_CREDIT", "0")

    micro = make_bars(args.micro_bars)
    print(f"## SmcEngine.on_bar with the context features (default mode), L={L}, {len(micro):,} bars\n")
    print(f"| {'features on':<52} | {'us/bar':>8} |\n|{'-' * 54}|{'-' * 10}|")
    for name, us in context_costs(micro):
        print(f"| {name:<52} | {us:8.2f} |", flush=True)
    if args.context_only:
        return
    print(f"\n## per-bar cost, L={L}, {len(micro):,} bars (us/bar)\n")
    print(f"| {'component':<52} | {'us/bar':>8} |\n|{'-' * 54}|{'-' * 10}|")
    for name, us in per_detector(micro):
        print(f"| {name:<52} | {us:8.2f} |")

    print(f"\n## detect (engine + finalize + JSON lines), L={L}, seconds\n")
    head = ("bars", "ours default", "ours compat", "library", "lib/default", "lib/compat")
    print("| " + " | ".join(f"{h:>12}" for h in head) + " |")
    print("|" + "|".join("-" * 14 for _ in head) + "|")
    default = SmcParams(swing_length=L)
    compat = SmcParams(swing_length=L, compat=True, liquidity_range="range:0.01")
    for n in (100_000, 1_000_000):
        bars = make_bars(n, seed=2)
        d = time_it(partial(detect_lines, bars, default))
        c = time_it(partial(detect_lines, bars, compat))
        lib = time_it(partial(library_detect, bars)) if (n <= 100_000 or args.full) else math.nan
        cells = [f"{n:,}", f"{d:.2f}", f"{c:.2f}", f"{lib:.2f}", f"{lib / d:.1f}x", f"{lib / c:.1f}x"]
        print("| " + " | ".join(f"{x:>12}" for x in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
