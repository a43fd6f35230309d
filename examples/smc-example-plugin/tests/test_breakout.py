"""range_breakout: events against a brute-force scan; snapshot/restore mid-stream changes nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from smc_example_plugin.breakout import RangeBreakoutFactory

from smc_runtime.analytics.smc.bars import Bar

closes = st.lists(st.floats(90, 110, allow_nan=False), min_size=1, max_size=80)


def _bars(values: list[float]) -> list[Bar]:
    return [Bar(60_000 * i, c, c + 0.5, c - 0.5, c, 1.0) for i, c in enumerate(values)]


@given(closes, st.integers(2, 6))
def test_events_match_brute_force(values: list[float], lookback: int) -> None:
    bars = _bars(values)
    detector = RangeBreakoutFactory(RangeBreakoutFactory.Params(lookback=lookback)).create()
    got = [(e.index, e.direction) for i, bar in enumerate(bars) for e in detector.on_bar(bar)]
    expected = []
    for i in range(lookback, len(bars)):
        window = bars[i - lookback:i]
        if bars[i].close > max(b.high for b in window):
            expected.append((i, 1))
        elif bars[i].close < min(b.low for b in window):
            expected.append((i, -1))
    assert got == expected


@given(closes, st.integers(2, 6), st.data())
def test_snapshot_restore_is_invisible(values: list[float], lookback: int, data: st.DataObject) -> None:
    bars = _bars(values)
    factory = RangeBreakoutFactory(RangeBreakoutFactory.Params(lookback=lookback))
    split = data.draw(st.integers(0, len(bars)))
    whole = factory.create()
    expected = [e.to_dict() for bar in bars for e in whole.on_bar(bar)]
    first = factory.create()
    got = [e.to_dict() for bar in bars[:split] for e in first.on_bar(bar)]
    second = factory.restore(first.snapshot())
    got += [e.to_dict() for bar in bars[split:] for e in second.on_bar(bar)]
    assert got == expected
    assert second.snapshot() == whole.snapshot()
