"""Test-only helpers: run ``smartmoneyconcepts`` (the oracle) and our engine on the same bars,
and generate seeded random series (walks, tie-heavy grids, flat stretches, short series)."""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Sequence
from typing import Any

from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.analytics.smc.engine import SmcEngine
from smc_runtime.analytics.smc.events import conformance_dict, sort_key
from smc_runtime.analytics.smc.params import SmcParams

os.environ.setdefault("SMC_CREDIT", "0")

Row = dict[str, Any]
T0 = 1704067200000
HOUR = 3_600_000


def bars_from_prices(prices: Sequence[float], volume: float = 1.0) -> list[Bar]:
    """SPEC convention: a price list means o = h = l = c = price, volume 1."""
    return [Bar(T0 + i * HOUR, p, p, p, p, volume) for i, p in enumerate(prices)]


def bars_from_ohlc(rows: Sequence[Sequence[float]], volumes: Sequence[float] | None = None) -> list[Bar]:
    """(o, h, l, c) tuples, hourly from T0; volume 1 unless given."""
    vols = volumes if volumes is not None else [1.0] * len(rows)
    return [Bar(T0 + i * HOUR, r[0], r[1], r[2], r[3], vols[i]) for i, r in enumerate(rows)]


def negate(bars: Sequence[Bar]) -> list[Bar]:
    """Price negation (5.2 item 2): o,h,l,c -> -o,-l,-h,-c."""
    return [Bar(b.timestamp_ms, -b.open, -b.low, -b.high, -b.close, b.volume) for b in bars]


def run_engine(bars: Sequence[Bar], params: SmcParams) -> list[Row]:
    """Our conformance lines (as dicts) after finalize."""
    eng = SmcEngine(params, keep_final=True)
    for b in bars:
        eng.on_bar(b)
    eng.finalize()
    return [conformance_dict(e, params.compat) for e in sorted(eng.alive(), key=sort_key)]


def run_engine_ghosts(bars: Sequence[Bar], params: SmcParams) -> list[tuple[int, int]]:
    eng = SmcEngine(params, keep_final=True)
    for b in bars:
        eng.on_bar(b)
    eng.finalize()
    return eng.ghosts()


def load_csv(path: str) -> list[Bar]:
    out: list[Bar] = []
    with open(path) as fh:
        next(fh)
        for line in fh:
            p = line.split(",")
            out.append(Bar(int(p[0]), float(p[1]), float(p[2]), float(p[3]), float(p[4]), float(p[5])))
    return out


# -- the library ---------------------------------------------------------------------------------
def _lib() -> Any:
    from smartmoneyconcepts import smc  # test-only oracle

    return smc


def _df(bars: Sequence[Bar]) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        }
    )


def _i(x: Any) -> int:
    return 0 if (isinstance(x, float) and math.isnan(x)) else int(x)


def _nan(x: Any) -> bool:
    return bool(math.isnan(float(x)))


def run_library(
    bars: Sequence[Bar],
    *,
    swing_length: int,
    close_break: bool = True,
    close_mitigation: bool = False,
    join_fvg: bool = False,
    range_percent: float = 0.01,
    patterns: Sequence[str] = ("swing", "fvg", "bos", "order_block", "liquidity"),
) -> tuple[list[Row], list[tuple[int, int]]]:
    """The library's output as SPEC 7 lines (sorted), plus the bos_choch ghost rows."""
    smc = _lib()
    df = _df(bars)
    ts = [b.timestamp_ms for b in bars]
    rows: list[Row] = []
    ghosts: list[tuple[int, int]] = []
    shl = smc.swing_highs_lows(df, swing_length=swing_length)
    if "swing" in patterns:
        for i, (d, lv) in enumerate(zip(shl["HighLow"], shl["Level"], strict=True)):
            if not _nan(d):
                rows.append(
                    {
                        "pattern": "swing",
                        "direction": int(d),
                        "index": i,
                        "timestamp_ms": ts[i],
                        "level": float(lv),
                    }
                )
    if "fvg" in patterns:
        f = smc.fvg(df, join_consecutive=join_fvg)
        for i in range(len(f)):
            d = f["FVG"].iloc[i]
            if not _nan(d):
                rows.append(
                    {
                        "pattern": "fvg",
                        "direction": int(d),
                        "index": i,
                        "timestamp_ms": ts[i],
                        "top": float(f["Top"].iloc[i]),
                        "bottom": float(f["Bottom"].iloc[i]),
                        "mitigated_index": _i(f["MitigatedIndex"].iloc[i]),
                    }
                )
    if "bos" in patterns:
        bc = smc.bos_choch(df, shl, close_break=close_break)
        for i in range(len(bc)):
            bos, choch, lv, br = (bc[k].iloc[i] for k in ("BOS", "CHOCH", "Level", "BrokenIndex"))
            if not _nan(bos) or not _nan(choch):
                kind, d = ("bos", bos) if not _nan(bos) else ("choch", choch)
                rows.append(
                    {
                        "pattern": kind,
                        "direction": int(d),
                        "index": i,
                        "timestamp_ms": ts[i],
                        "level": float(lv),
                        "broken_index": _i(br),
                    }
                )
            elif not _nan(br):
                ghosts.append((i, int(br)))
    if "order_block" in patterns:
        ob = smc.ob(df, shl, close_mitigation=close_mitigation)
        for i in range(len(ob)):
            d = ob["OB"].iloc[i]
            if not _nan(d):
                rows.append(
                    {
                        "pattern": "order_block",
                        "direction": int(d),
                        "index": i,
                        "timestamp_ms": ts[i],
                        "top": float(ob["Top"].iloc[i]),
                        "bottom": float(ob["Bottom"].iloc[i]),
                        "volume": float(ob["OBVolume"].iloc[i]),
                        "percentage": float(ob["Percentage"].iloc[i]),
                        "mitigated_index": _i(ob["MitigatedIndex"].iloc[i]),
                    }
                )
    if "liquidity" in patterns:
        lq = smc.liquidity(df, shl, range_percent=range_percent)
        for i in range(len(lq)):
            d = lq["Liquidity"].iloc[i]
            if not _nan(d):
                rows.append(
                    {
                        "pattern": "liquidity",
                        "direction": int(d),
                        "index": i,
                        "timestamp_ms": ts[i],
                        "level": float(lq["Level"].iloc[i]),
                        "end": _i(lq["End"].iloc[i]),
                        "swept": _i(lq["Swept"].iloc[i]),
                    }
                )
    order = {"swing": 0, "fvg": 1, "bos": 2, "choch": 3, "order_block": 4, "liquidity": 5}
    rows.sort(key=lambda r: (order[r["pattern"]], r["index"], r["direction"]))
    return rows, sorted(ghosts)


def diff_report(ours: list[Row], theirs: list[Row]) -> str:
    a = {json.dumps(r) for r in ours}
    b = {json.dumps(r) for r in theirs}
    only_a = sorted(a - b)[:10]
    only_b = sorted(b - a)[:10]
    return "only ours:\n  " + "\n  ".join(only_a) + "\nonly library:\n  " + "\n  ".join(only_b)


# -- generators ----------------------------------------------------------------------------------
def random_series(seed: int, n: int, kind: str) -> list[Bar]:
    """Seeded OHLCV: ``walk`` (continuous), ``grid`` (coarse ticks: many ties),
    ``flat`` (walk with constant stretches), ``price`` (o=h=l=c, grid)."""
    rng = random.Random(seed)
    out: list[Bar] = []
    price = 100.0
    flat_left = 0
    for i in range(n):
        if kind == "flat" and flat_left == 0 and rng.random() < 0.08:
            flat_left = rng.randint(3, 12)
        if flat_left > 0:
            flat_left -= 1
            o = h = lo = c = price
        else:
            step = rng.gauss(0, 1.0)
            o = price
            c = price + step
            h = max(o, c) + abs(rng.gauss(0, 0.6))
            lo = min(o, c) - abs(rng.gauss(0, 0.6))
            if kind in ("grid", "price"):
                o, c, h, lo = (round(x * 2) / 2 for x in (o, c, h, lo))
                h = max(h, o, c)
                lo = min(lo, o, c)
            if kind == "price":
                o = h = lo = c
            price = c
        vol = float(rng.randint(0, 50)) if rng.random() < 0.95 else 0.0
        out.append(Bar(T0 + i * 900_000, o, h, lo, c, vol))
    return out
