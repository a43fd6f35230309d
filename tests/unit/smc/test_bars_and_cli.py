"""Bar validation (5.2 item 14), event serialisation, the ``smc-runtime detect`` entry point,
and a hypothesis-driven compat check against the library on tie-heavy integer series."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smc_runtime.analytics.smc.bars import Bar, validate_bar
from smc_runtime.analytics.smc.engine import InvalidBarError, SmcEngine
from smc_runtime.analytics.smc.events import SmcEvent, conformance_dict
from smc_runtime.analytics.smc.params import SmcParams

from ._oracle import diff_report, run_engine, run_library
from .test_properties import bar_series

GOOD = Bar(1000, 1.0, 2.0, 0.5, 1.5, 3.0)


@pytest.mark.parametrize(
    ("bar", "prev", "reason"),
    [
        (GOOD, None, None),
        (GOOD, 999, None),
        (GOOD, 1000, "timestamp_not_increasing"),
        (Bar(1000, math.nan, 2.0, 0.5, 1.5, 3.0), None, "non_finite_price"),
        (Bar(1000, 1.0, math.inf, 0.5, 1.5, 3.0), None, "non_finite_price"),
        (Bar(1000, 1.0, 2.0, 0.5, 1.5, math.nan), None, "non_finite_volume"),
        (Bar(1000, 1.0, 1.2, 0.5, 1.5, 3.0), None, "high_below_body"),
        (Bar(1000, 1.0, 2.0, 1.1, 1.5, 3.0), None, "low_above_body"),
        (Bar(1000, 1.0, 2.0, 0.5, 1.5, -1.0), None, "negative_volume"),
    ],
)
def test_validate_bar(bar: Bar, prev: int | None, reason: str | None) -> None:
    got = validate_bar(bar, prev)
    if reason is None:
        assert got is None
    else:
        assert got is not None and got.startswith(reason)


def test_engine_rejects_bad_bar_and_keeps_state() -> None:
    eng = SmcEngine(SmcParams(swing_length=2))
    eng.on_bar(GOOD)
    before = eng.snapshot()
    with pytest.raises(InvalidBarError) as exc:
        eng.on_bar(Bar(1000, 1.0, 2.0, 0.5, 1.5, 3.0))
    assert exc.value.reason.startswith("timestamp_not_increasing")
    assert eng.snapshot() == before
    # compat accepts what the library accepts: inconsistent but finite OHLC
    compat = SmcEngine(SmcParams(swing_length=2, compat=True))
    compat.on_bar(Bar(1, 1.0, 0.5, 2.0, 1.5, -1.0))


def test_event_dicts_have_stable_key_order() -> None:
    ev = SmcEvent(
        pattern="fvg",
        action="formed",
        direction=1,
        index=3,
        timestamp_ms=7,
        confirmed_at=4,
        top=2.0,
        bottom=1.0,
    )
    assert list(ev.to_dict())[:7] == [
        "pattern",
        "action",
        "direction",
        "index",
        "timestamp_ms",
        "confirmed_at",
        "final_at",
    ]
    assert conformance_dict(ev, compat=True) == {
        "pattern": "fvg",
        "direction": 1,
        "index": 3,
        "timestamp_ms": 7,
        "top": 2.0,
        "bottom": 1.0,
        "mitigated_index": 0,
    }
    assert conformance_dict(ev, compat=False)["mitigated_index"] is None


def test_params_validation() -> None:
    with pytest.raises(ValueError):
        SmcParams(swing_length=0)
    with pytest.raises(ValueError):
        SmcParams(liquidity_range="range:0.01")  # whole-series rule: compat only
    with pytest.raises(ValueError):
        SmcParams(liquidity_range="pct:3")
    assert SmcParams(compat=True).liquidity_tolerance() == ("range", 0.01)
    assert SmcParams(compat=True, liquidity_range="abs:0.5").liquidity_tolerance() == ("abs", 0.5)


def test_smc_runtime_detect_entry_point(tmp_path: Path) -> None:
    prices = [1.13, 1.14, 1.15, 1.16, 1.12, 1.10, 1.13, 1.14, 1.10, 1.08, 1.05, 1.07, 1.09]
    csv = tmp_path / "bars.csv"
    csv.write_text(
        "timestamp_ms,open,high,low,close,volume\n"
        + "".join(f"{1704067200000 + i * 3_600_000},{p},{p},{p},{p},1\n" for i, p in enumerate(prices))
    )
    cmd = [
        sys.executable,
        "-m",
        "smc_runtime.cli",
        "detect",
        "--input",
        str(csv),
        "--compat",
        "--swing-length",
        "2",
        "--liquidity-range",
        "0.025",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    assert len(lines) == 10
    assert (
        lines[0]
        == '{"pattern": "swing", "direction": -1, "index": 0, "timestamp_ms": 1704067200000, "level": 1.13}'
    )
    bad = subprocess.run(
        [*cmd[:5], str(tmp_path / "missing.csv"), "--swing-length", "2"], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "error" in bad.stderr


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bars=bar_series(max_len=80),
    length=st.integers(1, 4),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_compat_matches_library_hypothesis(
    bars: list[Bar], length: int, flags: tuple[bool, bool, bool]
) -> None:
    if not bars:
        return
    cb, cm, jf = flags
    lib, _ = run_library(bars, swing_length=length, close_break=cb, close_mitigation=cm, join_fvg=jf)
    ours = run_engine(
        bars, SmcParams(swing_length=length, close_break=cb, close_mitigation=cm, join_fvg=jf, compat=True)
    )
    assert ours == lib, diff_report(ours, lib)
