"""Context features (issue 15 points 2-7): each detector against a brute-force reading of its
README rule, plus the streaming properties every detector must keep: the prefix property,
snapshot/restore at every bar, old snapshots restoring, and compat/default outputs unchanged
while the features are off."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.analytics.smc.context import OTE_LEVELS
from smc_runtime.analytics.smc.engine import SmcEngine
from smc_runtime.analytics.smc.events import SmcEvent, conformance_dict, event_key
from smc_runtime.analytics.smc.params import SmcParams, parse_context_overrides

from ._oracle import bars_from_ohlc, random_series
from .test_properties import SETTINGS, bar_series

DATA = Path(__file__).parent / "data"

ALL_ON = SmcParams(
    swing_length=6,
    internal_length=2,
    internal_confluence=True,
    trend=True,
    zones=True,
    fvg_min_size="atr:0.1",
    fvg_mitigation="ce",
    inverse_fvg=True,
    ob_atr_filter=2.5,
    breakers=True,
    sweep_outcome=True,
    liquidity_range="abs:0.0002",
    max_open_fvgs=30,
)


def run(
    bars: list[Bar], params: SmcParams, keep_final: bool = True
) -> tuple[list[list[SmcEvent]], SmcEngine]:
    eng = SmcEngine(params, keep_final=keep_final)
    per_bar = [eng.on_bar(b) for b in bars]
    per_bar.append(eng.finalize())
    return per_bar, eng


def flat(per_bar: list[list[SmcEvent]]) -> list[SmcEvent]:
    return [e for evs in per_bar for e in evs]


def atr14(bars: list[Bar]) -> list[float]:
    """SPEC 5.2 item 10's ATR14, written out independently."""
    out: list[float] = []
    total = 0.0
    for t, b in enumerate(bars):
        if t == 0:
            tr = b.high - b.low
        else:
            pc = bars[t - 1].close
            tr = max(b.high, pc) - min(b.low, pc)
        if t < 14:
            total += tr
            out.append(total / (t + 1))
        else:
            out.append((out[-1] * 13 + tr) / 14)
    return out


@st.composite
def context_params(draw: st.DrawFn) -> SmcParams:
    length = draw(st.integers(2, 5))
    return SmcParams(
        swing_length=length,
        close_break=draw(st.booleans()),
        close_mitigation=draw(st.booleans()),
        join_fvg=draw(st.booleans()),
        liquidity_range=draw(st.sampled_from(["atr:0.5", "abs:1.0", "abs:0.0"])),
        internal_length=draw(st.integers(0, length - 1)),
        trend=draw(st.booleans()),
        zones=draw(st.booleans()),
        fvg_min_size=draw(st.sampled_from(["", "abs:1", "atr:0.5", "auto"])),
        fvg_mitigation=draw(st.sampled_from(["touch", "ce", "full"])),
        inverse_fvg=draw(st.booleans()),
        ob_atr_filter=draw(st.sampled_from([0.0, 1.0, 3.0])),
        breakers=draw(st.booleans()),
        sweep_outcome=draw(st.booleans()),
        max_open_fvgs=draw(st.sampled_from([0, 3])),
    )


# -- streaming properties ------------------------------------------------------------------------
@SETTINGS
@given(bars=bar_series(), params=context_params(), data=st.data())
def test_prefix_property(bars: list[Bar], params: SmcParams, data: st.DataObject) -> None:
    """The events of bars 0..k never change when other bars follow (later changes arrive as new
    events about the same instance, e.g. ``retracted``)."""
    if not bars:
        return
    k = data.draw(st.integers(0, len(bars) - 1))
    other = data.draw(bar_series(max_len=40))
    shift = bars[k].timestamp_ms + 60_000 - (other[0].timestamp_ms if other else 0)
    tail = [Bar(b.timestamp_ms + shift, b.open, b.high, b.low, b.close, b.volume) for b in other]
    a, _ = run(bars, params)
    b, _ = run(bars[: k + 1] + tail, params)
    assert a[: k + 1] == b[: k + 1]


@SETTINGS
@given(bars=bar_series(), params=context_params())
def test_final_events_never_change(bars: list[Bar], params: SmcParams) -> None:
    per_bar, _ = run(bars, params)
    done: set[int] = set()
    for events in per_bar:
        for ev in events:
            key = event_key(ev)
            assert key not in done, f"event changed after final/retracted: {ev}"
            if ev.final_at is not None or ev.action == "retracted":
                done.add(key)


@SETTINGS
@given(bars=bar_series(), params=context_params())
def test_negation_mirrors_context_events(bars: list[Bar], params: SmcParams) -> None:
    """Bullish and bearish rules are mirror images (zones/trend excepted: their direction is the bias)."""
    from ._oracle import negate
    from .test_properties import mirror

    a, _ = run(bars, params)
    b, _ = run(negate(bars), params)
    skip = {"zones", "trend"}
    key = lambda d: (d["pattern"], d.get("scope"), d["index"], d["direction"], d["action"])  # noqa: E731
    for ea, eb in zip(a, b, strict=True):
        mirrored = sorted((mirror(e) for e in ea if e.pattern not in skip), key=key)
        assert mirrored == sorted((e.to_dict() for e in eb if e.pattern not in skip), key=key)


def test_snapshot_restore_at_every_bar() -> None:
    """Restoring the snapshot of any bar and continuing gives the same events and the same bytes."""
    bars = random_series(11, 260, "walk")
    ref, ref_eng = run(bars, ALL_ON)
    final_bytes = ref_eng.snapshot()
    assert {e.pattern for e in flat(ref)} >= {"ifvg", "breaker_block", "trend", "zones"}
    eng = SmcEngine(ALL_ON, keep_final=True)
    for k, bar in enumerate(bars):
        eng.on_bar(bar)
        clone = SmcEngine.restore(eng.snapshot())
        rest = [clone.on_bar(b) for b in bars[k + 1 :]]
        rest.append(clone.finalize())
        assert rest == ref[k + 1 :], f"diverged after restore at bar {k}"
        assert clone.snapshot() == final_bytes


def test_pre_context_snapshot_restores_and_continues() -> None:
    """A snapshot written before the context features existed restores and continues exactly as
    the old code did (fixture made with the previous engine: random_series(7, 600, 'walk'),
    swing_length 5, max_open_fvgs 20, snapshot after 300 bars)."""
    bars = random_series(7, 600, "walk")
    eng = SmcEngine.restore((DATA / "pre_context_snapshot.msgpack").read_bytes())
    got = [[e.to_dict() for e in eng.on_bar(b)] for b in bars[300:]]
    got.append([e.to_dict() for e in eng.finalize()])
    expected = json.loads((DATA / "pre_context_continuation.json").read_text())
    assert json.loads(json.dumps(got)) == expected


def test_features_off_change_nothing() -> None:
    """With every context feature off, records carry no context field (pipeline output unchanged)."""
    bars = random_series(3, 400, "grid")
    for ev in flat(run(bars, SmcParams(swing_length=4))[0]):
        d = ev.to_dict()
        assert "scope" not in d and "outcome" not in d and "bias" not in d
        assert ev.pattern in ("swing", "fvg", "bos", "choch", "order_block", "liquidity")


# -- 2. internal and swing structure -------------------------------------------------------------
def _strip(ev: SmcEvent) -> dict[str, object]:
    d = ev.to_dict()
    d.pop("scope", None)
    return d


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_scope_equals_a_standalone_engine(seed: int) -> None:
    bars = random_series(seed, 500, "walk")
    both = flat(run(bars, SmcParams(swing_length=8, internal_length=3))[0])
    structure = ("swing", "bos", "choch", "order_block")
    for scope, length in (("swing", 8), ("internal", 3)):
        alone = flat(run(bars, SmcParams(swing_length=length))[0])
        mine = [_strip(e) for e in both if e.scope == scope]
        assert mine == [e.to_dict() for e in alone if e.pattern in structure]
        assert mine, scope
    assert all(e.scope is None for e in both if e.pattern in ("fvg", "liquidity"))


def test_confluence_filter_keeps_exactly_the_confirming_breaks() -> None:
    bars = random_series(5, 800, "walk")
    base = SmcParams(swing_length=8, internal_length=3)
    plain = {event_key(e): e for e in flat(run(bars, base)[0]) if e.scope == "internal"}
    filt = {event_key(e): e for e in flat(run(bars, replace(base, internal_confluence=True))[0])
            if e.scope == "internal"}

    def confirms(e: SmcEvent) -> bool:
        assert e.broken_index is not None
        b = bars[e.broken_index]
        upper = b.high - max(b.open, b.close)
        lower = min(b.open, b.close) - b.low
        return upper <= lower if e.direction == 1 else lower <= upper

    kept = [e for e in plain.values() if e.pattern in ("bos", "choch") and confirms(e)]
    dropped = [e for e in plain.values() if e.pattern in ("bos", "choch") and not confirms(e)]
    assert kept and dropped
    assert all(event_key(e) in filt for e in kept)
    assert not any(event_key(e) in filt for e in dropped)


# -- 3./4. trend bias, strong/weak, zones and OTE ------------------------------------------------
def test_trend_and_zones_on_a_hand_made_series() -> None:
    # L=1: swing high 12 at bar 1, low 8 at 3, high 11 at 5; closes above 12 at bar 6 (bias +1)
    rows = [(10, 10, 10, 10), (11, 12, 11, 11), (10, 11, 10, 10), (9, 9, 8, 9), (9, 10, 9, 10),
            (10, 11, 10, 10), (12, 13, 11, 13), (12, 12, 10, 10), (10, 10, 7, 7.5), (8, 9, 8, 8)]
    per_bar, _ = run(bars_from_ohlc(rows), SmcParams(swing_length=1, trend=True, zones=True))
    events = flat(per_bar)
    trend = [e for e in events if e.pattern == "trend"]
    got = [(e.index, e.direction, e.level, e.swing_index) for e in trend]
    assert got == [(6, 1, 12.0, 1), (8, -1, 8.0, 3)]
    zones = [e for e in events if e.pattern == "zones"]
    # first bar with both a final swing high (1, final at 4) and low (3, final at 7)
    z7 = zones[0]
    assert z7.index == 7
    assert (z7.top, z7.bottom, z7.bias, z7.strong_low, z7.strong_high) == (13.0, 8.0, 1, True, False)
    assert z7.equilibrium == 10.5
    assert (z7.ote_618, z7.ote_705, z7.ote_786) == tuple(13.0 - f * 5.0 for f in OTE_LEVELS)
    z8 = next(e for e in zones if e.index == 8)
    assert (z8.top, z8.bottom, z8.bias, z8.strong_high, z8.strong_low) == (13.0, 7.0, -1, True, False)
    assert z8.ote_618 == 7.0 + 0.618 * 6.0
    assert all(e.final_at == e.index for e in trend + zones)


@SETTINGS
@given(bars=bar_series(), length=st.integers(1, 4))
def test_zones_invariants(bars: list[Bar], length: int) -> None:
    per_bar, _ = run(bars, SmcParams(swing_length=length, trend=True, zones=True))
    last: tuple[object, ...] | None = None
    bias = 0
    for t, events in enumerate(per_bar[:-1]):
        for e in events:
            if e.pattern == "trend":
                assert e.direction != bias
                bias = e.direction
            elif e.pattern == "zones":
                assert e.top is not None and e.bottom is not None and e.equilibrium is not None
                assert e.bottom <= e.equilibrium <= e.top and e.index == t
                assert e.top >= bars[t].high and e.bottom <= bars[t].low
                assert e.bias == bias and e.strong_high == (bias == -1) and e.strong_low == (bias == 1)
                state = (e.top, e.bottom, e.bias)
                assert state != last
                last = state
                if bias:
                    assert e.ote_786 is not None and e.bottom <= e.ote_786 <= e.top


# -- 5. FVG quality controls ---------------------------------------------------------------------
def _gaps(events: list[SmcEvent], pattern: str = "fvg") -> dict[int, SmcEvent]:
    latest: dict[int, SmcEvent] = {}
    for e in events:
        if e.pattern == pattern:
            latest[e.index] = e
    return latest


@pytest.mark.parametrize("spec", ["abs:0.0003", "atr:0.8", "auto"])
def test_fvg_min_size(spec: str) -> None:
    bars = random_series(9, 1500, "walk")
    allg = _gaps(flat(run(bars, SmcParams(swing_length=5))[0]))
    some = _gaps(flat(run(bars, SmcParams(swing_length=5, fvg_min_size=spec))[0]))
    atr = atr14(bars)
    shares = [abs(b.close - b.open) / abs(b.open) for b in bars]

    def big(e: SmcEvent) -> bool:
        assert e.top is not None and e.bottom is not None
        size = e.top - e.bottom
        if spec.startswith("abs:"):
            return size >= float(spec[4:])
        if spec.startswith("atr:"):
            return size >= float(spec[4:]) * atr[e.index + 1]
        m = e.index  # middle candle; LuxAlgo: > 2 x mean share of bars 0 .. m
        return shares[m] > 2 * sum(shares[: m + 1]) / (m + 1)

    assert set(some) == {i for i, e in allg.items() if big(e)}
    assert 0 < len(some) < len(allg)
    assert all(some[i].mitigated_index == allg[i].mitigated_index for i in some)


@pytest.mark.parametrize("level", ["touch", "ce", "full"])
def test_fvg_mitigation_level(level: str) -> None:
    bars = random_series(4, 1200, "walk")
    gaps = _gaps(flat(run(bars, SmcParams(swing_length=5, fvg_mitigation=level))[0]))
    assert len(gaps) > 20
    for i, e in gaps.items():
        assert e.top is not None and e.bottom is not None
        mid = (e.top + e.bottom) / 2
        if e.direction == 1:
            edge = {"touch": e.top, "ce": mid, "full": e.bottom}[level]
            hit = [t for t in range(i + 2, len(bars)) if bars[t].low <= edge]
        else:
            edge = {"touch": e.bottom, "ce": mid, "full": e.top}[level]
            hit = [t for t in range(i + 2, len(bars)) if bars[t].high >= edge]
        assert e.mitigated_index == (hit[0] if hit else None), (i, level)


def test_inverse_fvg_matches_brute_force() -> None:
    bars = random_series(6, 1200, "walk")
    events = flat(run(bars, SmcParams(swing_length=5, inverse_fvg=True))[0])
    gaps, inv = _gaps(events), _gaps(events, "ifvg")
    expected: dict[int, tuple[int, int, int | None]] = {}
    for i, g in gaps.items():
        assert g.top is not None and g.bottom is not None
        through = [t for t in range(i + 2, len(bars))
                   if (bars[t].close < g.bottom if g.direction == 1 else bars[t].close > g.top)]
        if not through:
            continue
        f = through[0]
        back = [t for t in range(f + 1, len(bars))
                if (bars[t].close > g.top if g.direction == 1 else bars[t].close < g.bottom)]
        expected[i] = (-g.direction, f, back[0] if back else None)
    got = {i: (e.direction, e.confirmed_at, e.mitigated_index) for i, e in inv.items()}
    assert got == expected and len(got) > 10


# -- 6. order-block volatility filter and breaker blocks ------------------------------------------
def test_ob_atr_filter_never_picks_a_wide_candle() -> None:
    bars = random_series(8, 2000, "walk")
    atr = atr14(bars)
    k = 1.2

    def obs(params: SmcParams) -> dict[tuple[int, int], SmcEvent]:
        return {(e.index, e.direction): e for e in flat(run(bars, params)[0])
                if e.pattern == "order_block" and e.action == "formed"}

    def wide(i: int) -> bool:
        return bars[i].high - bars[i].low >= k * atr[i]

    plain = obs(SmcParams(swing_length=5))
    filt = obs(SmcParams(swing_length=5, ob_atr_filter=k))
    assert any(wide(i) for i, _ in plain) and filt
    assert not any(wide(i) for i, _ in filt)
    # a candle that was the extreme of its segment stays the pick when only wider bars are skipped
    for key, e in plain.items():
        if not wide(e.index):
            assert key in filt and filt[key].formed_at == e.formed_at


def test_breakers_match_brute_force() -> None:
    bars = random_series(2, 1500, "walk")
    events = flat(run(bars, SmcParams(swing_length=4, breakers=True))[0])
    obs: dict[int, list[SmcEvent]] = {}
    for e in events:
        if e.pattern == "order_block":
            obs.setdefault(e.index * 2 + (e.direction > 0), []).append(e)
    brk = {e.index * 2 + (e.direction < 0): e for e in events if e.pattern == "breaker_block"}
    n_retest = 0
    for key, hist in obs.items():
        mit = [e for e in hist if e.action == "mitigated"]
        if not mit:
            assert key not in brk
            continue
        ob, b = mit[0], brk[key]
        assert ob.top is not None and ob.bottom is not None and ob.mitigated_index is not None
        assert (b.direction, b.top, b.bottom, b.mitigated_index) == (-ob.direction, ob.top, ob.bottom,
                                                                      ob.mitigated_index)
        gone = next((e.final_at for e in hist if e.action == "retracted"), None)
        end = gone if gone is not None else len(bars)
        armed = None
        retest = None
        for t in range(ob.mitigated_index + 1, end):
            bar = bars[t]
            inside = bar.high >= ob.bottom if ob.direction == 1 else bar.low <= ob.top
            if armed is not None and inside:
                retest = t
                break
            if armed is None and (bar.high < ob.bottom if ob.direction == 1 else bar.low > ob.top):
                armed = t
        assert b.retest_index == retest, (key, b)
        n_retest += retest is not None
        if gone is not None:
            assert b.action == "final" and b.final_at == gone
    assert n_retest > 5


# -- 7. sweep vs breakout ------------------------------------------------------------------------
def test_sweep_outcome_from_the_sweeping_close() -> None:
    bars = random_series(10, 3000, "walk")
    tol = 0.3
    events = flat(run(bars, SmcParams(swing_length=3, liquidity_range=f"abs:{tol}", sweep_outcome=True))[0])
    swept = [e for e in events if e.pattern == "liquidity" and e.swept is not None]
    assert {e.outcome for e in swept} == {"sweep", "breakout"}
    for e in swept:
        assert e.swept is not None
        c = bars[e.swept].close
        first = bars[e.index]  # the band is anchored on the group's first swing
        beyond = c > first.high + tol if e.direction == 1 else c < first.low - tol
        assert e.outcome == ("breakout" if beyond else "sweep")
        assert conformance_dict(e, compat=False)["outcome"] == e.outcome


# -- params ----------------------------------------------------------------------------------------
def test_param_validation_and_overrides() -> None:
    with pytest.raises(ValueError, match="smaller than swing_length"):
        SmcParams(swing_length=5, internal_length=5)
    with pytest.raises(ValueError, match="default-mode only"):
        SmcParams(compat=True, zones=True)
    with pytest.raises(ValueError, match="fvg_min_size"):
        SmcParams(fvg_min_size="pct:3")
    with pytest.raises(ValueError, match="fvg_mitigation"):
        SmcParams(fvg_mitigation="half")
    with pytest.raises(ValueError, match="internal_confluence"):
        SmcParams(internal_confluence=True)
    # an int filter is stored as a float, so a restored engine snapshots the same bytes
    eng = SmcEngine(SmcParams(ob_atr_filter=2))
    assert type(eng.params.ob_atr_filter) is float
    assert SmcEngine.restore(eng.snapshot()).snapshot() == eng.snapshot()
    assert parse_context_overrides(["internal_length=3", "zones=on", "fvg_min_size=atr:0.5"]) == {
        "internal_length": 3, "zones": True, "fvg_min_size": "atr:0.5"}
    with pytest.raises(ValueError):
        parse_context_overrides(["zones=maybe"])
    with pytest.raises(ValueError):
        parse_context_overrides(["swing_length=3"])


def test_detection_settings_reach_the_engine() -> None:
    from smc_runtime.analytics.detectors import SmcDetectorFactory
    from smc_runtime.config import DetectionSettings

    with pytest.raises(ValueError):
        DetectionSettings(swing_length=5, internal_length=6)
    with pytest.raises(ValueError):
        DetectionSettings(mode="compat", breakers=True)
    s = DetectionSettings(swing_length=20, internal_length=5, zones=True, fvg_mitigation="full",
                          fvg_min_size="auto", breakers=True, sweep_outcome=True)
    eng = SmcDetectorFactory(s).create()
    assert isinstance(eng, SmcEngine)
    assert eng.params.internal_length == 5 and eng.params.fvg_mitigation == "full"
    assert msgspec.msgpack.decode(eng.snapshot())  # encodable


def test_detect_command_param_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`smc-runtime detect --param KEY=VALUE` switches context features on; bad keys fail with 2."""
    import argparse

    from smc_runtime import detect_command

    bars = random_series(2, 600, "walk")
    csv = tmp_path / "bars.csv"
    csv.write_text("timestamp_ms,open,high,low,close,volume\n" + "".join(
        f"{b.timestamp_ms},{b.open!r},{b.high!r},{b.low!r},{b.close!r},{b.volume!r}\n" for b in bars))
    parser = argparse.ArgumentParser()
    detect_command.add_arguments(parser)
    base = ["--input", str(csv), "--swing-length", "6"]
    assert detect_command.main(parser.parse_args(base)) == 0
    plain = capsys.readouterr().out.splitlines()
    flags = ["--param", "internal_length=2", "--param", "breakers=true", "--param", "zones=on"]
    assert detect_command.main(parser.parse_args(base + flags)) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {"breaker_block", "zones"} <= {d["pattern"] for d in lines}
    assert {d.get("scope") for d in lines if d["pattern"] == "swing"} == {"swing", "internal"}
    assert [json.dumps({k: v for k, v in d.items() if k != "scope"}) for d in lines
            if d.get("scope") in (None, "swing") and d["pattern"] not in ("breaker_block", "zones")] == plain
    assert detect_command.main(parser.parse_args([*base, "--param", "swing_length=3"])) == 2
    assert "--param" in capsys.readouterr().err
