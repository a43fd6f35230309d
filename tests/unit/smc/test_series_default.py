"""Default-mode semantics of the per-bar series (SPEC 5.2 items 11-13), their event stream,
the prefix property and snapshot/restore at every bar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.analytics.smc.engine import SmcEngine
from smc_runtime.analytics.smc.params import SmcParams
from smc_runtime.analytics.smc.series import SeriesEngine, SeriesEvent, parse_series
from smc_runtime.analytics.smc.series.engine import RETRACEMENT_LEVELS
from smc_runtime.analytics.smc.series.previous_high_low import parse_time_frame
from smc_runtime.analytics.smc.series.sessions import parse_session

from ._series_oracle import our_rows
from .test_series_conformance import irregular_series

HOUR = 3_600_000
DAY = 24 * HOUR


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def bar(ts: int, h: float, lo: float) -> Bar:
    mid = (h + lo) / 2
    return Bar(ts, mid, h, lo, mid, 1.0)


def col(rows: list[dict[str, object]], name: str) -> list[object]:
    return [r[name] for r in rows]


# -- previous_high_low -------------------------------------------------------------------------
def six_hour_days() -> list[Bar]:
    """SPEC 6.11(a): 6-hour bars from 2024-01-01 00:00, daily highs 13, 23, 33 (lows 10 less)."""
    out = []
    for d, top in enumerate((13.0, 23.0, 33.0)):
        for k in range(4):
            h = top if k == 2 else top - 1
            out.append(bar(ms("2024-01-01") + d * DAY + k * 6 * HOUR, h, top - 10))
    return out


def test_previous_day_is_the_last_completed_day() -> None:
    bars = six_hour_days()
    rows = our_rows(bars, "previous_high_low:1D", compat=False)
    assert col(rows, "previous_high") == [None] * 4 + [13.0] * 4 + [23.0] * 4
    assert col(rows, "previous_low") == [None] * 4 + [3.0] * 4 + [13.0] * 4
    # the library (compat) shows the bar at a bin start the bin two back (6.11a)
    compat = our_rows(bars, "previous_high_low:1D", compat=True)
    assert compat[8]["previous_high"] == 13.0 and compat[4]["previous_high"] is None


def test_previous_week_from_monday() -> None:
    # SPEC 6.11(b): daily bars from Monday 2024-01-01, weekly highs 10, 20, 30
    bars = [bar(ms("2024-01-01") + d * DAY, 10.0 * (d // 7 + 1), 1.0) for d in range(21)]
    rows = our_rows(bars, "previous_high_low:W", compat=False)
    assert col(rows, "previous_high")[14:] == [20.0] * 7
    assert col(rows, "previous_high")[7:14] == [10.0] * 7
    assert our_rows(bars, "previous_high_low:W", compat=True)[14]["previous_high"] == 10.0


def test_broken_is_strict_and_runs_from_the_own_bins_first_bar() -> None:
    t = ms("2024-03-04")
    bars = [bar(t, 10.0, 5.0), bar(t + DAY, 10.0, 6.0), bar(t + DAY + HOUR, 10.5, 5.0),
            bar(t + DAY + 2 * HOUR, 9.0, 7.0), bar(t + 2 * DAY, 9.0, 8.0)]
    rows = our_rows(bars, "previous_high_low:1D", compat=False)
    assert col(rows, "broken_high") == [0, 0, 1, 1, 0]  # equal is not broken; stays broken in the day
    assert col(rows, "broken_low") == [0, 0, 0, 0, 0]  # 5.0 == previous low 5.0: not below
    assert col(rows, "previous_high") == [None, 10.0, 10.0, 10.0, 10.5]


def test_month_bins_are_calendar_months_and_empty_bins_skipped() -> None:
    bars = [bar(ms("2024-01-31T23:00:00"), 5.0, 4.0), bar(ms("2024-02-01"), 6.0, 5.0),
            bar(ms("2024-04-15"), 7.0, 6.0)]
    rows = our_rows(bars, "previous_high_low:M", compat=False)
    assert col(rows, "previous_high") == [None, 5.0, 6.0]  # March is empty: February is previous


@pytest.mark.parametrize(("spec", "compat_ok", "default_ok"), [
    ("4h", True, True), ("15min", True, True), ("7h", True, False), ("2D", True, False),
    ("2W", False, False), ("M", True, True), ("ME", True, True), ("1x", False, False), ("0h", False, False),
])
def test_time_frame_validation(spec: str, compat_ok: bool, default_ok: bool) -> None:
    for compat, ok in ((True, compat_ok), (False, default_ok)):
        if ok:
            parse_time_frame(spec, compat)
        else:
            with pytest.raises(ValueError):
                parse_time_frame(spec, compat)


# -- sessions ----------------------------------------------------------------------------------
def test_session_end_is_exclusive_in_default_mode() -> None:
    t = ms("2024-01-08T15:30:00")
    bars = [bar(t + k * 15 * 60_000, 1.0 + k, 0.5) for k in range(4)]  # 15:30 .. 16:15
    assert col(our_rows(bars, "sessions:London", compat=False), "active") == [1, 1, 0, 0]
    assert col(our_rows(bars, "sessions:London", compat=True), "active") == [1, 1, 1, 0]


def test_session_hours_follow_dst_in_an_iana_zone() -> None:
    spec = "sessions:Custom:08:00-17:00@Europe/London"
    winter = [bar(ms(f"2024-01-10T{hh}:00:00"), 1.0, 0.5) for hh in ("07", "08", "16", "17")]
    summer = [bar(ms(f"2024-07-10T{hh}:00:00"), 1.0, 0.5) for hh in ("06", "07", "15", "16")]
    assert col(our_rows(winter, spec, compat=False), "active") == [0, 1, 1, 0]
    assert col(our_rows(summer, spec, compat=False), "active") == [0, 1, 1, 0]


def test_utc_offset_has_the_iso_sign() -> None:
    # London hours read in UTC+2: 07:00-16:00 there is 05:00-14:00 UTC
    bars = [bar(ms("2024-01-08") + hh * HOUR, 1.0, 0.5) for hh in (4, 5, 13, 14)]
    assert col(our_rows(bars, "sessions:London@UTC+2", compat=False), "active") == [0, 1, 1, 0]
    assert col(our_rows(bars, "sessions:London@UTC+02:00", compat=False), "active") == [0, 1, 1, 0]


def test_a_gap_into_the_next_occurrence_starts_afresh() -> None:
    # SPEC 6.12: Sydney bars Friday 22:00, 23:00 and Monday 00:00
    bars = [bar(ms("2024-01-05T22:00:00"), 5.0, 4.0), bar(ms("2024-01-05T23:00:00"), 6.0, 3.0),
            bar(ms("2024-01-08T00:00:00"), 2.0, 1.5)]
    rows = our_rows(bars, "sessions:Sydney", compat=False)
    assert col(rows, "high") == [5.0, 6.0, 2.0] and col(rows, "low") == [4.0, 3.0, 1.5]
    assert col(our_rows(bars, "sessions:Sydney", compat=True), "high") == [5.0, 6.0, 6.0]
    assert col(rows, "active") == [1, 1, 1]


def test_inactive_rows_are_null_in_default_and_zero_in_compat() -> None:
    bars = [bar(ms("2024-01-08T03:00:00"), 2.0, 1.0)]
    assert our_rows(bars, "sessions:London", compat=False)[0] | {"timestamp_ms": 0} == {
        "index": 0, "timestamp_ms": 0, "active": 0, "high": None, "low": None}
    assert our_rows(bars, "sessions:London", compat=True)[0]["high"] == 0.0


def test_session_names_and_custom_windows() -> None:
    assert parse_session("new york") == ("New York", 13 * 60, 22 * 60)
    assert parse_session("Custom:6:00-9:30") == ("Custom:6:00-9:30", 360, 570)
    for bad in ("Paris", "Custom:06:00", "Custom:25:00-26:00", "Custom:aa-bb"):
        with pytest.raises(ValueError):
            parse_session(bad)
    with pytest.raises(ValueError):
        parse_series("sessions:London@Mars/Olympus_Mons")
        SeriesEngine([parse_series("sessions:London@Mars/Olympus_Mons")], compat=False)


# -- retracements ------------------------------------------------------------------------------
def expected_retracements(bars: list[Bar], length: int) -> list[tuple[int, float | None, float | None]]:
    """SPEC 5.2 item 13 rebuilt from SmcEngine's final swings (an independent path)."""
    eng = SmcEngine(SmcParams(swing_length=length), keep_final=True)
    for b in bars:
        eng.on_bar(b)
    eng.finalize()
    swings = {e.index: (e.direction, e.level) for e in eng.alive() if e.pattern == "swing"}
    out: list[tuple[int, float | None, float | None]] = []
    d, top, bottom, deep = 0, None, None, 0.0
    for i, b in enumerate(bars):
        if i in swings:
            d, level = swings[i]
            top, bottom = (level, bottom) if d == 1 else (top, level)
        if top is None or bottom is None:
            out.append((d, None, None))
            continue
        assert level is not None
        span = top - bottom
        cur = 0.0 if span == 0 else ((top - b.low) if d == 1 else (b.high - bottom)) / span * 100.0
        deep = cur if i in swings else max(deep, cur)
        out.append((d, cur, deep))
    return out


@pytest.mark.parametrize("length", [1, 2, 5])
def test_retracements_follow_the_last_final_swing(length: int) -> None:
    bars = irregular_series(40 + length, 300, 15)
    rows = our_rows(bars, "retracements", compat=False, swing_length=length)
    got = [(r["direction"], r["current_retracement"], r["deepest_retracement"]) for r in rows]
    assert got == expected_retracements(bars, length)
    assert any(c is not None and 0 < c < 100 for _, c, _ in got)


def test_retracement_hand_example() -> None:
    # L=1: high 20 at bar 1, low 12 at bar 3 (a leg of 8), highs climb back to 16.5, a high 18 at bar 6
    rows = [(15, 15, 14, 15), (15, 20, 15, 18), (18, 18, 14, 14), (14, 14, 12, 13), (13, 16, 13, 15),
            (15, 16.5, 14.5, 16), (16, 18, 15.5, 17.5), (17.5, 17.8, 16, 16.2)]
    bars = [Bar(ms("2024-01-01") + i * HOUR, *r, 1.0) for i, r in enumerate(rows)]
    out = our_rows(bars, "retracements", compat=False, swing_length=1)
    got = [(r["direction"], r["current_retracement"], r["deepest_retracement"]) for r in out]
    assert got[:6] == [(0, None, None), (1, None, None), (1, None, None), (-1, 25.0, 25.0), (-1, 50.0, 50.0),
                       (-1, 56.25, 56.25)]
    # the new high: leg 12 -> 18, bar 6's low 15.5 gives back 2.5 of 6; bar 7 less, the deepest stays
    assert got[6] == (1, pytest.approx(250 / 6), pytest.approx(250 / 6))
    assert got[7] == (1, pytest.approx(200 / 6), pytest.approx(250 / 6))


# -- events, prefix property, snapshot/restore ------------------------------------------------------
ALL = ["previous_high_low:1D", "previous_high_low:4h", "sessions:London", "sessions:Custom:22:00-02:00",
       "retracements"]


def feed(eng: SeriesEngine, bars: list[Bar]) -> list[list[SeriesEvent]]:
    return [eng.on_bar(b) for b in bars]


def engine(compat: bool, keep_rows: bool = False) -> SeriesEngine:
    return SeriesEngine([parse_series(s) for s in ALL], compat=compat, swing_length=2, keep_rows=keep_rows)


@pytest.mark.parametrize("compat", [False, True])
def test_snapshot_restore_at_every_bar_continues_identically(compat: bool) -> None:
    bars = irregular_series(5, 160, 60)
    full = engine(compat)
    expected = [*feed(full, bars), full.finalize()]
    final_snapshot = full.snapshot()
    for k in range(len(bars) + 1):
        eng = engine(compat)
        head = feed(eng, bars[:k])
        eng = SeriesEngine.restore(eng.snapshot())
        tail = [*feed(eng, bars[k:]), eng.finalize()]
        assert head + tail == expected, f"restored at bar {k}"
        assert eng.snapshot() == final_snapshot


@pytest.mark.parametrize("compat", [False, True])
def test_rows_survive_restore(compat: bool) -> None:
    bars = irregular_series(6, 120, 60)
    ref = engine(compat, keep_rows=True)
    feed(ref, bars)
    ref.finalize()
    for k in range(0, len(bars) + 1, 7):
        eng = engine(compat, keep_rows=True)
        feed(eng, bars[:k])
        eng = SeriesEngine.restore(eng.snapshot())
        feed(eng, bars[k:])
        eng.finalize()
        for s in ALL:
            assert eng.rows(parse_series(s)) == ref.rows(parse_series(s))


def test_prefix_property() -> None:
    """Events and rows of the first k bars never change when more bars arrive (no retraction)."""
    bars = irregular_series(8, 200, 60)
    full = engine(False, keep_rows=True)
    per_bar = feed(full, bars)
    full.finalize()
    for k in range(0, len(bars) + 1, 5):
        eng = engine(False, keep_rows=True)
        assert feed(eng, bars[:k]) == per_bar[:k]
        for s in ALL:
            spec = parse_series(s)
            prefix_rows = eng.rows(spec)  # before finalize: only what bar k-1 already knew
            assert prefix_rows == full.rows(spec)[: len(prefix_rows)]
            if spec.kind != "retracements":
                assert len(prefix_rows) == k


def test_event_stream_is_compact_and_meaningful() -> None:
    bars = irregular_series(9, 400, 60)
    eng = engine(False)
    events = [e for evs in feed(eng, bars) for e in evs] + eng.finalize()
    kinds = {(e.pattern, e.action) for e in events}
    assert kinds == {("previous_high_low", "updated"), ("previous_high_low", "broken"), ("session", "opened"),
                     ("session", "closed"), ("retracement", "formed"), ("retracement", "crossed")}
    assert len(events) < len(bars) * len(ALL) / 2  # on change, not per bar
    formed = sum(1 for e in events if e.action == "formed")
    assert sum(1 for e in events if e.action == "crossed") <= formed * len(RETRACEMENT_LEVELS)
    london = [e for e in events if e.series == "sessions:London"]
    assert [e.action for e in london[:4]] == ["opened", "closed", "opened", "closed"]
    rows = our_rows(bars, "sessions:London", compat=False)
    first_close = london[1]
    assert rows[first_close.index]["active"] == 1 and rows[first_close.confirmed_at]["active"] == 0
    assert first_close.high == rows[first_close.index]["high"]
    # a ``broken`` event exactly where the flag rises (or the reference levels change while broken)
    prow = our_rows(bars, "previous_high_low:1D", compat=False)
    for direction, flag, lvl in ((1, "broken_high", "previous_high"), (-1, "broken_low", "previous_low")):
        rises = [i for i, r in enumerate(prow) if r[flag] and (
            i == 0 or not prow[i - 1][flag] or prow[i - 1][lvl] != r[lvl])]
        got = [e.index for e in events if e.series == "previous_high_low:1D" and e.action == "broken"
               and e.direction == direction]
        assert got == rises and rises


def test_default_state_stays_bounded() -> None:
    """Live streams snapshot every key: the series state must not grow with the stream."""
    from smc_runtime.config import DetectionSettings, ProcessorSettings, worst_case_snapshot_bytes

    bars = irregular_series(11, 20_000, 15)
    eng = SeriesEngine([parse_series(s) for s in ALL], compat=False, swing_length=10)
    sizes = []
    for k, b in enumerate(bars):
        eng.on_bar(b)
        if k % 1000 == 999:
            sizes.append(len(eng.snapshot()))
    assert max(sizes) < 40_000 and max(sizes[10:]) < 2 * max(sizes[:10])
    detection = DetectionSettings(series=ALL).model_dump()
    with_series = ProcessorSettings.model_validate(
        {"consumer_group": "g", "input_topics": ["t"], "detection": detection})
    without = ProcessorSettings.model_validate({"consumer_group": "g", "input_topics": ["t"]})
    extra = worst_case_snapshot_bytes(with_series)["kline"] - worst_case_snapshot_bytes(without)["kline"]
    assert max(sizes) < extra
