"""Default-mode properties (hypothesis): causality, determinism, price-negation symmetry,
snapshot/restore equivalence, bounded memory; plus the event-fold invariants."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.analytics.smc.engine import SmcEngine
from smc_runtime.analytics.smc.events import SmcEvent, event_key
from smc_runtime.analytics.smc.params import SmcParams

from ._oracle import negate, random_series

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def bar_series(draw: st.DrawFn, max_len: int = 120) -> list[Bar]:
    """Integer-tick OHLC (lots of ties and flat bars), valid by construction."""
    n = draw(st.integers(0, max_len))
    steps = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
    wicks = draw(
        st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 5)), min_size=n, max_size=n)
    )
    price = 100
    out: list[Bar] = []
    for i, (s, (wu, wd, v)) in enumerate(zip(steps, wicks, strict=True)):
        o, c = price, price + s
        out.append(
            Bar(
                1_700_000_000_000 + i * 60_000,
                float(o),
                float(max(o, c) + wu),
                float(min(o, c) - wd),
                float(c),
                float(v),
            )
        )
        price = c
    return out


@st.composite
def default_params(draw: st.DrawFn) -> SmcParams:
    return SmcParams(
        swing_length=draw(st.integers(1, 4)),
        close_break=draw(st.booleans()),
        close_mitigation=draw(st.booleans()),
        join_fvg=draw(st.booleans()),
        liquidity_range=draw(st.sampled_from(["atr:0.5", "abs:1.0", "abs:0.0", "atr:2"])),
    )


def run(
    bars: list[Bar], params: SmcParams, keep_final: bool = True
) -> tuple[list[list[SmcEvent]], SmcEngine]:
    eng = SmcEngine(params, keep_final=keep_final)
    per_bar = [eng.on_bar(b) for b in bars]
    per_bar.append(eng.finalize())
    return per_bar, eng


# -- causality ---------------------------------------------------------------------------------
@SETTINGS
@given(bars=bar_series(), params=default_params(), data=st.data())
def test_events_at_t_do_not_depend_on_later_bars(
    bars: list[Bar], params: SmcParams, data: st.DataObject
) -> None:
    """Runs sharing bars 0..k emit identical events at on_bar(t) for every t <= k."""
    if not bars:
        return
    k = data.draw(st.integers(0, len(bars) - 1))
    other = data.draw(bar_series(max_len=60))
    last = bars[k]
    shift = last.timestamp_ms + 60_000 - (other[0].timestamp_ms if other else 0)
    tail = [Bar(b.timestamp_ms + shift, b.open, b.high, b.low, b.close, b.volume) for b in other]
    a, _ = run(bars, params)
    b, _ = run(bars[: k + 1] + tail, params)
    assert a[: k + 1] == b[: k + 1]


@SETTINGS
@given(bars=bar_series(), params=default_params(), data=st.data())
def test_final_events_identical_in_prefix_run(
    bars: list[Bar], params: SmcParams, data: st.DataObject
) -> None:
    """An event with final_at = t (not eos) is identical in a prefix run over bars 0..t."""
    _, full = run(bars, params)
    finals = [e for e in full.alive() if e.final_at is not None]
    if not finals:
        return
    picks = data.draw(st.lists(st.sampled_from(finals), min_size=1, max_size=3))
    for ev in picks:
        assert ev.final_at is not None
        assert ev.confirmed_at <= ev.final_at
        _, pre = run(bars[: ev.final_at + 1], params)
        assert ev in pre.alive()


@SETTINGS
@given(bars=bar_series(), params=default_params())
def test_final_events_never_change_afterwards(bars: list[Bar], params: SmcParams) -> None:
    per_bar, _ = run(bars, params)
    final_key: dict[int, SmcEvent] = {}
    for events in per_bar:
        for ev in events:
            key = event_key(ev)
            assert key not in final_key, f"event changed after final: {final_key.get(key)} -> {ev}"
            if ev.final_at is not None and ev.action != "retracted":
                final_key[key] = ev
            if ev.action == "retracted":
                final_key[key] = ev


# -- determinism and snapshot/restore ------------------------------------------------------------
@SETTINGS
@given(bars=bar_series(), params=default_params())
def test_deterministic(bars: list[Bar], params: SmcParams) -> None:
    a, ea = run(bars, params)
    b, eb = run(bars, params)
    assert a == b
    assert ea.snapshot() == eb.snapshot()


@SETTINGS
@given(bars=bar_series(), params=default_params(), compat=st.booleans(), data=st.data())
def test_snapshot_restore_at_random_split(
    bars: list[Bar], params: SmcParams, compat: bool, data: st.DataObject
) -> None:
    if compat:
        params = SmcParams(
            swing_length=params.swing_length,
            close_break=params.close_break,
            close_mitigation=params.close_mitigation,
            join_fvg=params.join_fvg,
            compat=True,
        )
    full, eng_full = run(bars, params, keep_final=False)
    k = data.draw(st.integers(0, len(bars)))
    eng = SmcEngine(params)
    got = [eng.on_bar(b) for b in bars[:k]]
    snap = eng.snapshot()
    eng2 = SmcEngine.restore(snap)
    assert eng2.snapshot() == snap
    got += [eng2.on_bar(b) for b in bars[k:]]
    got.append(eng2.finalize())
    assert got == full
    assert eng2.snapshot() == eng_full.snapshot()


def test_restore_in_fresh_process() -> None:
    bars = random_series(7, 3000, "grid")
    params = SmcParams(swing_length=3)
    eng = SmcEngine(params)
    for b in bars[:1700]:
        eng.on_bar(b)
    code = (
        "import sys\n"
        "from smc_runtime.analytics.smc.engine import SmcEngine\n"
        "from tests.unit.smc._oracle import random_series\n"
        "e = SmcEngine.restore(sys.stdin.buffer.read())\n"
        "for b in random_series(7, 3000, 'grid')[1700:]:\n"
        "    e.on_bar(b)\n"
        "e.finalize()\n"
        "sys.stdout.buffer.write(e.snapshot())\n"
    )
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run(
        [sys.executable, "-c", code], input=eng.snapshot(), capture_output=True, check=True, cwd=root
    )
    for b in bars[1700:]:
        eng.on_bar(b)
    eng.finalize()
    assert proc.stdout == eng.snapshot()


# -- price-negation symmetry (5.2 item 2) ---------------------------------------------------------
def mirror(ev: SmcEvent) -> dict[str, Any]:
    d = ev.to_dict()
    d["direction"] = -ev.direction
    if ev.level is not None:
        d["level"] = -ev.level
    if ev.top is not None and ev.bottom is not None:
        d["top"], d["bottom"] = -ev.bottom, -ev.top
    return d


@SETTINGS
@given(bars=bar_series(), params=default_params())
def test_negation_mirrors_every_event(bars: list[Bar], params: SmcParams) -> None:
    a, _ = run(bars, params)
    b, _ = run(negate(bars), params)
    assert len(a) == len(b)
    for ea, eb in zip(a, b, strict=True):
        key = lambda d: (d["pattern"], d["index"], d["direction"], d["action"])  # noqa: E731
        assert sorted((mirror(e) for e in ea), key=key) == sorted((e.to_dict() for e in eb), key=key)


# -- fold and memory -----------------------------------------------------------------------------
@SETTINGS
@given(bars=bar_series(), params=default_params())
def test_alive_without_keep_final_is_the_unfinal_part(bars: list[Bar], params: SmcParams) -> None:
    _, keep = run(bars, params, keep_final=True)
    _, live = run(bars, params, keep_final=False)
    assert live.alive() == [e for e in keep.alive() if e.final_at is None]


@SETTINGS
@given(bars=bar_series(), params=default_params())
def test_emitted_bos_always_broken_and_confirmed_order(bars: list[Bar], params: SmcParams) -> None:
    per_bar, eng = run(bars, params)
    for t, events in enumerate(per_bar):
        for ev in events:
            if ev.pattern in ("bos", "choch"):
                assert ev.broken_index is not None and ev.broken_index >= ev.index + 2
            if ev.action != "retracted" and t < len(bars):
                assert ev.confirmed_at <= t
    assert eng.ghosts() == []


def test_memory_bounded_on_long_stream() -> None:
    rng = random.Random(3)
    params = SmcParams(swing_length=10)
    eng = SmcEngine(params)
    price = 100.0
    sizes = []
    for i in range(60_000):
        o = price
        price += rng.gauss(0, 1)
        eng.on_bar(Bar(i * 60_000, o, max(o, price) + 0.3, min(o, price) - 0.3, price, 1.0))
        if i % 10_000 == 9_999:
            sizes.append(len(eng.snapshot()))
    state = eng._s
    assert len(state.buf.h) < 256 + 200
    assert sizes[-1] < 4 * sizes[0] + 50_000


def test_pruning_does_not_change_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Default mode drops old bars; dropping them eagerly or never must give the same events."""
    from smc_runtime.analytics.smc import buffer

    for seed, kind in ((1, "grid"), (2, "walk"), (3, "flat")):
        bars = random_series(seed, 4000, kind)
        for params in (
            SmcParams(swing_length=2),
            SmcParams(swing_length=5, close_break=False, join_fvg=True),
        ):
            results = []
            for chunk in (1, 10**9):
                monkeypatch.setattr(buffer, "_PRUNE_CHUNK", chunk)
                results.append(run(bars, params)[0])
            assert results[0] == results[1]
