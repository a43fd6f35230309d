"""trade_streak: run lengths against a brute-force count, and state round-trips through bytes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smc_example_plugin.streak import TradeStreak, TradeStreakEnricher

from smc_runtime.messages import Trade


def _trade(i: int, price: float) -> Trade:
    return Trade("BTCUSDT", i, price, 1.0, 1_000 + i, False)


def _brute_streak(prices: list[float]) -> int:
    """Signed length of the run of strict moves ending at the last price (0 if it did not move)."""
    streak = 0
    for prev, cur in itertools.pairwise(prices):
        if cur > prev:
            streak = streak + 1 if streak > 0 else 1
        elif cur < prev:
            streak = streak - 1 if streak < 0 else -1
    return streak


@given(st.lists(st.sampled_from([99.0, 100.0, 101.0, 102.0]), min_size=1, max_size=60),
       st.integers(1, 4))
def test_documents_report_the_current_run(prices: list[float], min_streak: int) -> None:
    enricher = TradeStreakEnricher(TradeStreakEnricher.Params(min_streak=min_streak))
    state = enricher.new_state()
    for i, price in enumerate(prices):
        doc = enricher.update(state, _trade(i, price))
        moved = i > 0 and price != prices[i - 1]
        expected = _brute_streak(prices[: i + 1])
        if moved and abs(expected) >= min_streak:
            assert isinstance(doc, TradeStreak)
            assert doc.streak == abs(expected)
            assert doc.direction == ("up" if expected > 0 else "down")
        else:
            assert doc is None


def test_state_round_trips_through_bytes() -> None:
    enricher = TradeStreakEnricher(TradeStreakEnricher.Params(min_streak=2))
    state = enricher.new_state()
    for i, price in enumerate([1.0, 2.0, 3.0]):
        enricher.update(state, _trade(i, price))
    restored = enricher.load_state(enricher.dump_state(state))
    assert restored == state
    doc = enricher.update(restored, _trade(3, 4.0))
    assert isinstance(doc, TradeStreak) and doc.streak == 3 and doc.longest_up == 3


def test_params_reject_unknown_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        TradeStreakEnricher.Params.model_validate({"min_streak": 0})
    with pytest.raises(ValueError):
        TradeStreakEnricher.Params.model_validate({"min_strike": 3})
