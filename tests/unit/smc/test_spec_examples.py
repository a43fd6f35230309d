"""Every SPEC section 6 example (and section 7's worked example) as a unit test, in the mode(s)
it describes: compat reproduces the library's quirk, default shows the corrected semantics."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from smc_runtime import detect_command
from smc_runtime.analytics.smc.numeric import f32
from smc_runtime.analytics.smc.params import SmcParams

from ._oracle import Row, bars_from_ohlc, bars_from_prices, negate, run_engine, run_engine_ghosts


def cp(length: int) -> SmcParams:
    """Compat-mode params (a tiny explicit liquidity range keeps liquidity out of the way)."""
    return SmcParams(swing_length=length, compat=True, liquidity_range="abs:1e-9")


def of(rows: list[Row], pattern: str) -> list[tuple[Any, ...]]:
    """(direction, index, *fields) tuples of one pattern."""
    out = []
    for r in rows:
        if r["pattern"] == pattern:
            out.append(tuple(v for k, v in r.items() if k not in ("pattern", "timestamp_ms")))
    return out


def swings(rows: list[Row]) -> list[tuple[int, int, float]]:
    return [(r["index"], r["direction"], r["level"]) for r in rows if r["pattern"] == "swing"]


# -- 6.1 asymmetric window -------------------------------------------------------------------
def test_6_1_no_swing_compat_one_high_default() -> None:
    bars = bars_from_prices([10, 11, 20, 13, 12, 11, 10, 9])
    assert swings(run_engine(bars, cp(2))) == []
    assert swings(run_engine(bars, SmcParams(swing_length=2))) == [(2, 1, 20.0)]


def test_6_1_late_swings_compat_one_high_default() -> None:
    bars = bars_from_prices([1, 2, 30, 5, 25, 6, 7, 3, 2, 1])
    got = swings(run_engine(bars, cp(2)))
    assert got == [(0, 1, 1.0), (3, -1, 5.0), (4, 1, 25.0), (9, -1, 1.0)]
    assert swings(run_engine(bars, SmcParams(swing_length=2))) == [(2, 1, 30.0)]


# -- 6.2 high beats low ----------------------------------------------------------------------
@pytest.mark.parametrize("neg", [False, True])
def test_6_2_flat_is_a_high_in_compat_nothing_in_default(neg: bool) -> None:
    bars = bars_from_prices([5.0] * 8)
    if neg:
        bars = negate(bars)
    p = -5.0 if neg else 5.0
    assert swings(run_engine(bars, cp(2))) == [
        (0, -1, p),
        (3, 1, p),
        (7, -1, p),
    ]
    assert swings(run_engine(bars, SmcParams(swing_length=2))) == []


OUTSIDE = [
    (10, 11, 9, 10),
    (10, 12, 10, 11),
    (11, 13, 11, 12),
    (12, 12.5, 10.5, 11),
    (11, 14, 8, 9),
    (9, 11, 9, 10),
    (10, 12, 9.5, 11),
    (11, 13, 10, 12),
    (12, 13.5, 11, 13),
]


def test_6_2_outside_bar_high_both_ways_in_compat_none_in_default() -> None:
    bars = bars_from_ohlc(OUTSIDE)
    got = [s for s in swings(run_engine(bars, cp(2))) if s[0] == 4]
    assert got == [(4, 1, 14.0)]
    got_neg = [s for s in swings(run_engine(negate(bars), cp(2))) if s[0] == 4]
    assert got_neg == [(4, 1, -8.0)]
    assert swings(run_engine(bars, SmcParams(swing_length=2))) == []
    assert swings(run_engine(negate(bars), SmcParams(swing_length=2))) == []


# -- 6.4 ghost rows ----------------------------------------------------------------------------
GHOST = [2, 1, 9, 6, 6, 3, 6, 6, 2, 8, 1, 3, 2]


def test_6_4_ghost_row_compat() -> None:
    bars = bars_from_prices(GHOST)
    params = cp(2)
    rows = run_engine(bars, params)
    assert [(s[0], s[1]) for s in swings(rows)] == [(0, -1), (4, 1), (5, -1), (9, 1), (10, -1), (12, 1)]
    assert of(rows, "bos") == []
    assert of(rows, "choch") == [(-1, 5, 3.0, 8)]
    assert run_engine_ghosts(bars, params) == [(4, 9)]


def test_6_4_default_has_no_ghosts_and_no_artificial_pattern() -> None:
    bars = bars_from_prices(GHOST)
    params = SmcParams(swing_length=2)
    rows = run_engine(bars, params)
    # 2L+1 window from c = L: bar 2 (9) is the high, so x4 = 9 and row 5 is a bearish BOS
    assert [(s[0], s[1]) for s in swings(rows)] == [(2, 1), (5, -1), (9, 1), (10, -1)]
    assert of(rows, "bos") == [(-1, 5, 3.0, 8)]
    assert of(rows, "choch") == []
    assert run_engine_ghosts(bars, params) == []


# -- 6.5 float32 levels ------------------------------------------------------------------------
BEAR_65 = [1.13, 1.14, 1.15, 1.16, 1.12, 1.10, 1.13, 1.14, 1.10, 1.08, 1.05, 1.07, 1.09]
BULL_65 = [1.27, 1.26, 1.25, 1.24, 1.28, 1.30, 1.27, 1.26, 1.30, 1.32, 1.35, 1.33, 1.31]


def test_6_5_float32_break_compat_vs_float64_default() -> None:
    rows = run_engine(bars_from_prices(BEAR_65), cp(2))
    assert of(rows, "bos") == [(-1, 5, 1.100000023841858, 8)]
    rows = run_engine(bars_from_prices(BULL_65), cp(2))
    assert of(rows, "bos") == [(1, 5, 1.2999999523162842, 8)]
    assert f32(1.30) == 1.2999999523162842
    assert of(run_engine(bars_from_prices(BEAR_65), SmcParams(swing_length=2)), "bos") == [(-1, 5, 1.1, 9)]
    assert of(run_engine(bars_from_prices(BULL_65), SmcParams(swing_length=2)), "bos") == [(1, 5, 1.3, 9)]


# -- 6.6 OB mitigated index off by one ---------------------------------------------------------
OB_66 = [
    (10, 10.5, 9.5, 10),
    (10, 11, 9.8, 10.8),
    (10.8, 11.5, 10.5, 11.2),
    (11.2, 12, 11, 11.5),
    (11.5, 11.8, 10, 10.2),
    (10.2, 10.5, 9, 9.5),
    (9.5, 11.9, 9.4, 11.8),
    (11.8, 13, 11.7, 12.8),
    (12.8, 13.5, 12.5, 13.2),
    (13.2, 13.4, 10, 10.5),
    (10.5, 10.8, 8.5, 9.6),
    (9.6, 10, 9.2, 9.8),
]
VOL_66 = [100.0 + i for i in range(len(OB_66))]


@pytest.mark.parametrize(("compat", "bull_mit", "bear_mit"), [(True, 9, 10), (False, 10, 10)])
def test_6_6_ob_mitigated_index(compat: bool, bull_mit: int, bear_mit: int) -> None:
    params = cp(2) if compat else SmcParams(swing_length=2)
    bars = bars_from_ohlc(OB_66, VOL_66)
    obs = [r for r in run_engine(bars, params) if r["pattern"] == "order_block"]
    bull = [r for r in obs if r["direction"] == 1 and r["index"] == 5]
    assert len(bull) == 1
    assert (bull[0]["top"], bull[0]["bottom"], bull[0]["volume"]) == (10.5, 9.0, 318.0)
    assert bull[0]["mitigated_index"] == bull_mit
    obs_n = [r for r in run_engine(negate(bars), params) if r["pattern"] == "order_block"]
    bear = [r for r in obs_n if r["direction"] == -1 and r["index"] == 5]
    assert len(bear) == 1
    assert bear[0]["mitigated_index"] == bear_mit


# -- 6.7 swapped bullish OB ---------------------------------------------------------------------
OB_67 = [
    (100, 101, 98, 100),
    (100, 103, 99.5, 102.5),
    (102.5, 105, 102, 104.5),
    (104.5, 105.5, 101.5, 102),
    (102, 107, 101.8, 106.5),
    (106.5, 108, 106, 107.5),
    (107.5, 109, 107, 108.5),
    (108.5, 108.8, 106.5, 107),
]


def test_6_7_swapped_ob_compat_only() -> None:
    bars = bars_from_ohlc(OB_67)
    rows = run_engine(bars, cp(2))
    at0 = [r for r in rows if r["pattern"] == "order_block" and r["index"] == 0]
    assert len(at0) == 1
    assert (at0[0]["direction"], at0[0]["top"], at0[0]["bottom"]) == (1, 98.0, 101.0)
    rows_d = run_engine(bars, SmcParams(swing_length=2))
    assert [r for r in rows_d if r["pattern"] == "order_block" and r["index"] == 0] == []


# -- 6.8 shared OB state ------------------------------------------------------------------------
OB_68 = [
    (0, 6, 0, 5),
    (1, 2, 1, 2),
    (2, 3, 2, 3),
    (0, 3, -2, 3),
    (1, 1, 1, 1),
    (4, 4, -1, 0),
    (3, 5, 1, 5),
    (1, 6, 0, 5),
    (3, 5, 1, 1),
    (5, 7, 3, 5),
]
OB_68_DEFAULT = [(0, 1, 0, 1), (2, 4, 2, 3), (2, 4, 1, 3), (4, 6, 1, 3), (4, 5, 4, 5), (5, 7, 0, 0)]


def test_6_8_shared_candle_compat() -> None:
    rows = run_engine(bars_from_ohlc(OB_68), cp(1))
    obs = [
        (r["direction"], r["index"], r["top"], r["bottom"], r["mitigated_index"])
        for r in rows
        if r["pattern"] == "order_block" and r["index"] == 3
    ]
    assert obs == [(-1, 3, 3.0, -2.0, 6)]


def test_6_8_separate_state_default() -> None:
    rows = run_engine(bars_from_ohlc(OB_68_DEFAULT), SmcParams(swing_length=1))
    obs = [
        (r["direction"], r["index"], r["top"], r["bottom"], r["mitigated_index"])
        for r in rows
        if r["pattern"] == "order_block"
    ]
    assert (1, 3, 6.0, 1.0, 5) in obs
    assert (-1, 3, 6.0, 1.0, None) in obs


# -- section 7 worked example, through the command ------------------------------------------------
def _detect(tmp_path: Path, argv: list[str]) -> tuple[int, list[dict[str, Any]], str]:
    csv = tmp_path / "bars.csv"
    lines = ["timestamp_ms,open,high,low,close,volume"]
    lines += [f"{1704067200000 + i * 3_600_000},{p},{p},{p},{p},1" for i, p in enumerate(BEAR_65)]
    csv.write_text("\n".join(lines) + "\n")
    parser = argparse.ArgumentParser()
    detect_command.add_arguments(parser)
    args = parser.parse_args(["--input", str(csv), *argv])
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = detect_command.main(args)
    text = buf.getvalue()
    return rc, [json.loads(x) for x in text.splitlines()], text


def test_7_worked_example_compat(tmp_path: Path) -> None:
    rc, rows, text = _detect(tmp_path, ["--compat", "--swing-length", "2", "--liquidity-range", "0.025"])
    assert rc == 0
    assert len(rows) == 10
    assert text.splitlines()[0] == (
        '{"pattern": "swing", "direction": -1, "index": 0, "timestamp_ms": 1704067200000, "level": 1.13}'
    )
    assert [(r["direction"], r["index"], r["level"]) for r in rows if r["pattern"] == "swing"] == [
        (-1, 0, 1.13),
        (1, 3, 1.16),
        (-1, 5, 1.1),
        (1, 7, 1.14),
        (-1, 10, 1.05),
        (1, 12, 1.09),
    ]
    assert of(rows, "bos") == [(-1, 5, 1.100000023841858, 8)]
    assert of(rows, "order_block") == [
        (-1, 3, 1.159999966621399, 1.159999966621399, 3.0, 50.0, 0),
        (-1, 7, 1.1399999856948853, 1.1399999856948853, 3.0, 50.0, 0),
    ]
    assert of(rows, "liquidity") == [(1, 3, 1.149999976158142, 7, 0)]
    assert list(rows[-1]) == ["pattern", "direction", "index", "timestamp_ms", "level", "end", "swept"]


def test_7_worked_example_default(tmp_path: Path) -> None:
    rc, rows, text = _detect(tmp_path, ["--swing-length", "2", "--liquidity-range", "0.025"])
    assert rc == 0
    assert [r["index"] for r in rows if r["pattern"] == "swing"] == [3, 5, 7, 10]
    assert of(rows, "bos") == [(-1, 5, 1.1, 9)]
    assert of(rows, "order_block") == [(-1, 7, 1.14, 1.14, 3.0, 50.0, None)]
    assert of(rows, "liquidity") == [(1, 3, 1.15, 7, None)]
    assert '"mitigated_index": null' in text


def test_7_malformed_input_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("timestamp_ms,open,high,low,close,volume\n1,1,2,0,1,1\n1,1,2,0,1,1\n")
    parser = argparse.ArgumentParser()
    detect_command.add_arguments(parser)
    assert detect_command.main(parser.parse_args(["--input", str(csv), "--swing-length", "2"])) != 0
    assert "timestamp_not_increasing" in capsys.readouterr().err
    csv.write_text("timestamp_ms,open,high,low,close,volume\n1,1,x,0,1,1\n")
    assert detect_command.main(parser.parse_args(["--input", str(csv), "--swing-length", "2"])) != 0
    assert "line 2" in capsys.readouterr().err
    csv.write_text("time,open,high,low,close,volume\n")
    assert detect_command.main(parser.parse_args(["--input", str(csv), "--swing-length", "2"])) != 0
    csv.write_text("timestamp_ms,open,high,low,close,volume\n1,1,0.5,0,1,1\n")
    assert detect_command.main(parser.parse_args(["--input", str(csv), "--swing-length", "2"])) != 0
    assert "high_below_body" in capsys.readouterr().err


# -- 5.2 item 10: liquidity tolerance atr:K, frozen at the group's first swing --------------------
def _atr(prices: list[float]) -> list[float]:
    out: list[float] = []
    trs: list[float] = []
    for t, p in enumerate(prices):
        tr = 0.0 if t == 0 else max(p, prices[t - 1]) - min(p, prices[t - 1])
        trs.append(tr)
        out.append(sum(trs) / len(trs) if t < 14 else (13 * out[-1] + tr) / 14)
    return out


@pytest.mark.parametrize(("k", "grouped"), [(3.0, True), (2.0, False)])
def test_5_2_10_liquidity_atr_tolerance(k: float, grouped: bool) -> None:
    p = k * _atr(BEAR_65)[3]  # swing high at 3 (1.16) anchors; the high at 7 (1.14) joins iff 0.02 <= p
    assert (p >= 0.02 - 1e-12) == grouped
    rows = run_engine(bars_from_prices(BEAR_65), SmcParams(swing_length=2, liquidity_range=f"atr:{k}"))
    liq = of(rows, "liquidity")
    assert liq == ([(1, 3, (1.16 + 1.14) / 2, 7, None)] if grouped else [])
