"""``smc-runtime detect --series`` (SPEC 7.1): one JSON line per bar, library columns in
snake_case, NaN as null, bad specs rejected with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

T0 = 1704067200000  # 2024-01-01 00:00 UTC
HOUR = 3_600_000


def write_csv(path: Path, n: int) -> Path:
    rows = ""
    for i in range(n):
        o, c = 10 + i % 5, 10 + i % 4
        rows += f"{T0 + i * 6 * HOUR},{o},{max(o, c) + 1 + i % 3},{min(o, c) - 1 - i % 2},{c},1\n"
    path.write_text("timestamp_ms,open,high,low,close,volume\n" + rows)
    return path


def detect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smc_runtime.cli", "detect", *args],
                          capture_output=True, text=True)


@pytest.mark.parametrize(("spec", "keys"), [
    ("previous_high_low:1D", ["previous_high", "previous_low", "broken_high", "broken_low"]),
    ("sessions:London", ["active", "high", "low"]),
    ("sessions:Custom:06:00-09:00", ["active", "high", "low"]),
    ("retracements", ["direction", "current_retracement", "deepest_retracement"]),
])
@pytest.mark.parametrize("compat", [True, False])
def test_series_lines(tmp_path: Path, spec: str, keys: list[str], compat: bool) -> None:
    csv = write_csv(tmp_path / "bars.csv", 20)
    flags = ["--compat"] if compat else []
    proc = detect("--input", str(csv), "--series", spec, "--swing-length", "1", *flags)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["index"] for x in lines] == list(range(20))
    assert [list(x) for x in lines] == [["index", "timestamp_ms", *keys]] * 20
    assert lines[3]["timestamp_ms"] == T0 + 18 * HOUR
    if spec.startswith("previous"):
        assert lines[0]["previous_high"] is None  # NaN as null
        assert "null" in proc.stdout.splitlines()[0]


def test_series_without_swing_length_and_bad_specs(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "bars.csv", 10)
    assert detect("--input", str(csv), "--series", "retracements").returncode == 0
    assert detect("--input", str(csv)).returncode == 2  # five patterns still need --swing-length
    for bad in ("volatility", "sessions:Paris", "previous_high_low:7x", "sessions", "retracements:3"):
        proc = detect("--input", str(csv), "--series", bad)
        assert proc.returncode == 2 and "error" in proc.stderr, bad
    proc = detect("--input", str(csv), "--series", "sessions:London", "--time-zone", "Nowhere/City")
    assert proc.returncode == 2 and "time zone" in proc.stderr
