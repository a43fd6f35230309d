"""Compat mode of the three per-bar series vs smartmoneyconcepts 0.0.27 (test-only oracle):
every bar's row equal, float32 columns bit for bit, on seeded irregular series (gaps, weekends,
bars at bin starts) and on the real EURUSD 15m bars (SPEC 7.1)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from smc_runtime.analytics.smc.bars import Bar

from ._oracle import load_csv
from ._series_oracle import first_diff, library_rows, our_rows

pytest.importorskip("smartmoneyconcepts")

EURUSD = Path("/work/shared/smc/data/eurusd_15m.csv")
MIN = 60_000
# 2024-01-05 (a Friday) 21:00 UTC: the series cross a weekend, midnights and a month end early
START = 1704488400000


def irregular_series(seed: int, n: int, step_min: int) -> list[Bar]:
    """Bars ``step_min`` apart with random gaps (hours to days), prices a random walk."""
    rng = random.Random(seed)
    ts = START + rng.randrange(0, 24 * 60, step_min) * MIN
    price = 100.0
    out: list[Bar] = []
    for _ in range(n):
        o = price
        c = o + rng.gauss(0, 1)
        h = max(o, c) + abs(rng.gauss(0, 0.5))
        lo = min(o, c) - abs(rng.gauss(0, 0.5))
        out.append(Bar(ts, o, h, lo, c, 1.0))
        price = c
        gap = rng.random()
        ts += step_min * MIN * (1 if gap < 0.9 else rng.randint(2, 40 if gap < 0.98 else 400))
    return out


SERIES = [
    "previous_high_low:1D", "previous_high_low:4h", "previous_high_low:W", "previous_high_low:M",
    "previous_high_low:1h", "previous_high_low:2D",
    "sessions:London", "sessions:Sydney", "sessions:New York kill zone", "sessions:Custom:06:00-09:00",
    "sessions:Custom:22:00-02:30",
]


@pytest.mark.parametrize("spec", SERIES)
def test_series_match_library_on_irregular_bars(spec: str) -> None:
    for seed, (n, step) in enumerate([(300, 60), (200, 240), (150, 15), (40, 1440), (1, 60), (2, 60)]):
        bars = irregular_series(seed, n, step)
        ours = our_rows(bars, spec, compat=True)
        lib = library_rows(bars, spec)
        assert ours == lib, f"{spec} seed {seed}: " + first_diff(ours, lib)


@pytest.mark.parametrize("tz", ["UTC+2", "GMT-5", "Europe/London"])
def test_sessions_time_zone_matches_library(tz: str) -> None:
    # winter bars only for the IANA zone: pandas raises on DST-ambiguous wall times, zoneinfo folds
    bars = irregular_series(7, 200, 60)
    for spec in ("sessions:London", "sessions:Custom:21:00-03:00"):
        ours = our_rows(bars, spec, compat=True, time_zone=tz)
        lib = library_rows(bars, spec, time_zone=tz)
        assert ours == lib, f"{spec} {tz}: " + first_diff(ours, lib)


@pytest.mark.parametrize("length", [1, 2, 3, 5])
def test_retracements_match_library(length: int) -> None:
    for seed, n in enumerate([3, 4, 5, 8, 20, 60, 250]):
        bars = irregular_series(100 + seed + 10 * length, n, 15)
        ours = our_rows(bars, "retracements", compat=True, swing_length=length)
        lib = library_rows(bars, "retracements", swing_length=length)
        assert ours == lib, f"L={length} n={n}: " + first_diff(ours, lib)


@pytest.mark.slow
@pytest.mark.skipif(not EURUSD.exists(), reason="shared EURUSD data not present")
@pytest.mark.parametrize(
    "spec",
    ["previous_high_low:1D", "previous_high_low:W", "sessions:London", "sessions:Custom:06:00-09:00",
     "retracements"],
)
def test_eurusd_every_bar_matches_library(spec: str) -> None:
    bars = load_csv(str(EURUSD))
    ours = our_rows(bars, spec, compat=True, swing_length=10)
    lib = library_rows(bars, spec, swing_length=10)
    assert len(ours) == len(bars) == 24424
    assert ours == lib, spec + ": " + first_diff(ours, lib)
