"""``smc-runtime detect --plot``: a PNG with the detections drawn (optional extra ``plot``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smc_runtime.analytics.smc.params import SmcParams

from .test_series_conformance import irregular_series

pytest.importorskip("matplotlib")


@pytest.mark.parametrize("series", [None, "sessions:London", "retracements", "previous_high_low:4h"])
def test_plot_writes_a_png(tmp_path: Path, series: str | None) -> None:
    from smc_runtime.plot import plot_detections

    bars = irregular_series(3, 400, 15)
    out = tmp_path / "p.png"
    plot_detections(bars, SmcParams(swing_length=3), str(out), series=series, first=100, count=150)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_plot_rejects_no_bars(tmp_path: Path) -> None:
    from smc_runtime.plot import plot_detections

    with pytest.raises(ValueError):
        plot_detections([], SmcParams(), str(tmp_path / "p.png"))
