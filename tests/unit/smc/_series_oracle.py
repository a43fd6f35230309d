"""Test-only: the library's three per-bar series as ``smc-runtime detect --series`` rows, and ours.

The library reads the DataFrame index as datetimes for ``previous_high_low`` and ``sessions``,
so the frame is indexed by the bars' UTC open times (naive, as a CSV loader would give them).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.analytics.smc.series import SeriesEngine, parse_series
from smc_runtime.detect_command import series_rows

os.environ.setdefault("SMC_CREDIT", "0")

Row = dict[str, Any]
# our time-frame spelling -> pandas' (the library passes it to DataFrame.resample)
PANDAS_TF = {"M": "ME", "Q": "QE", "Y": "YE"}


def _df(bars: Sequence[Bar]) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        index=pd.to_datetime([b.timestamp_ms for b in bars], unit="ms"),
    )


def _f(x: Any) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v


def library_rows(
    bars: Sequence[Bar], spec: str, *, swing_length: int = 10, time_zone: str = "UTC"
) -> list[Row]:
    """The library's columns for ``spec`` (our syntax), one dict per bar, NaN as None."""
    from smartmoneyconcepts import smc

    df = _df(bars)
    kind, _, param = spec.partition(":")
    ts = [b.timestamp_ms for b in bars]
    out: list[Row] = []
    if kind == "previous_high_low":
        tf = param or "1D"
        tf = PANDAS_TF.get(tf, tf)
        r = smc.previous_high_low(df, time_frame=tf)
        for i in range(len(bars)):
            out.append({"index": i, "timestamp_ms": ts[i],
                        "previous_high": _f(r["PreviousHigh"].iloc[i]),
                        "previous_low": _f(r["PreviousLow"].iloc[i]),
                        "broken_high": int(r["BrokenHigh"].iloc[i]),
                        "broken_low": int(r["BrokenLow"].iloc[i])})
    elif kind == "sessions":
        if param.startswith("Custom:"):
            start, _, end = param[7:].partition("-")
            r = smc.sessions(df, "Custom", start, end, time_zone=time_zone)
        else:
            r = smc.sessions(df, param, time_zone=time_zone)
        for i in range(len(bars)):
            out.append({"index": i, "timestamp_ms": ts[i], "active": int(r["Active"].iloc[i]),
                        "high": _f(r["High"].iloc[i]), "low": _f(r["Low"].iloc[i])})
    else:
        shl = smc.swing_highs_lows(df, swing_length=swing_length)
        r = smc.retracements(df, shl)
        for i in range(len(bars)):
            out.append({"index": i, "timestamp_ms": ts[i], "direction": int(r["Direction"].iloc[i]),
                        "current_retracement": _f(r["CurrentRetracement%"].iloc[i]),
                        "deepest_retracement": _f(r["DeepestRetracement%"].iloc[i])})
    return out


def our_rows(bars: Sequence[Bar], spec: str, *, compat: bool, swing_length: int = 10,
             time_zone: str = "UTC") -> list[Row]:
    """Our ``detect --series`` rows as dicts."""
    return series_rows(list(bars), parse_series(spec, time_zone), compat=compat, swing_length=swing_length)


def first_diff(ours: list[Row], theirs: list[Row]) -> str:
    if len(ours) != len(theirs):
        return f"length {len(ours)} vs {len(theirs)}"
    for a, b in zip(ours, theirs, strict=True):
        if a != b:
            return f"first difference at bar {a['index']}:\n  ours    {a}\n  library {b}"
    return "equal"


def run_engine_rows(bars: Sequence[Bar], spec: str, *, compat: bool, swing_length: int = 10) -> Any:
    eng = SeriesEngine([parse_series(spec)], compat=compat, swing_length=swing_length, keep_rows=True)
    for b in bars:
        eng.on_bar(b)
    eng.finalize()
    return eng
