"""Local order book: Binance sequencing rules, level maintenance and metrics vs brute force."""

from __future__ import annotations

import random
import time

import pytest

from smc_runtime.analytics.orderbook import (
    BookMetrics,
    BookState,
    OrderBookEnricher,
    _apply_level,
    _apply_side,
)
from smc_runtime.config import InputBounds, OrderBookEnrichment
from smc_runtime.messages import DepthSnapshot, DepthUpdate, Rejection, RejectReason


def _enricher(**kw: object) -> OrderBookEnricher:
    return OrderBookEnricher(OrderBookEnrichment(**kw))  # type: ignore[arg-type]


def _snap(last: int, bids: list[tuple[float, float]] | None = None,
          asks: list[tuple[float, float]] | None = None) -> DepthSnapshot:
    return DepthSnapshot(last_update_id=last, bids=bids or [(99.0, 1.0), (98.0, 2.0)],
                         asks=asks or [(101.0, 1.0), (102.0, 3.0)], symbol="BTCUSDT")


def _diff(first: int, final: int, bids: list[tuple[float, float]] | None = None,
          asks: list[tuple[float, float]] | None = None) -> DepthUpdate:
    return DepthUpdate(symbol="BTCUSDT", first_update_id=first, final_update_id=final, bids=bids or [],
                       asks=asks or [])


def _synced(last: int = 100) -> tuple[OrderBookEnricher, BookState]:
    enricher = _enricher()
    state = enricher.new_state()
    assert isinstance(enricher.update(state, _snap(last)), BookMetrics)
    return enricher, state


def test_diffs_before_any_snapshot_are_ignored() -> None:
    enricher = _enricher()
    state = enricher.new_state()
    assert enricher.update(state, _diff(1, 5, bids=[(99.0, 1.0)])) is None
    assert not state.synced


def test_diffs_contained_in_the_snapshot_are_skipped() -> None:
    enricher, state = _synced(100)
    assert enricher.update(state, _diff(90, 100, bids=[(50.0, 1.0)])) is None
    assert 50.0 not in state.bid_prices


def test_first_diff_must_straddle_snapshot_id() -> None:
    enricher, state = _synced(100)
    out = enricher.update(state, _diff(95, 103, bids=[(99.5, 4.0)]))
    assert isinstance(out, BookMetrics) and out.best_bid == 99.5 and out.update_id == 103
    assert not state.stale


def test_gap_marks_stale_emits_once_and_resyncs_on_next_snapshot() -> None:
    enricher, state = _synced(100)
    assert isinstance(enricher.update(state, _diff(101, 104)), BookMetrics)
    gap = enricher.update(state, _diff(106, 107, bids=[(99.9, 1.0)]))
    assert isinstance(gap, BookMetrics) and gap.stale and gap.gap is not None
    assert (gap.gap.expected_first_update_id, gap.gap.received_first_update_id) == (105, 106)
    assert 99.9 not in state.bid_prices  # the gapped diff is not applied
    assert enricher.update(state, _diff(108, 109, bids=[(99.8, 1.0)])) is None  # ignored while stale
    resync = enricher.update(state, _snap(200))
    assert isinstance(resync, BookMetrics) and not resync.stale and resync.source == "snapshot"
    assert isinstance(enricher.update(state, _diff(201, 202)), BookMetrics)


def test_first_diff_beyond_snapshot_is_a_gap() -> None:
    enricher, state = _synced(100)
    out = enricher.update(state, _diff(102, 103))
    assert isinstance(out, BookMetrics) and out.gap is not None and state.stale


def test_duplicate_and_out_of_order_diffs_are_rejected() -> None:
    enricher, state = _synced(100)
    enricher.update(state, _diff(101, 105))
    dup = enricher.update(state, _diff(104, 105))
    old = enricher.update(state, _diff(101, 103))
    assert isinstance(dup, Rejection) and dup.reason == RejectReason.DUPLICATE
    assert isinstance(old, Rejection) and old.reason == RejectReason.OUT_OF_ORDER
    assert isinstance(enricher.update(state, _diff(106, 106)), BookMetrics)


def test_every_snapshot_resynchronises_the_book_even_an_older_id() -> None:
    # a snapshot is ground truth: a book once pushed to a huge id (a hostile snapshot) must not stay
    # locked with every later diff "behind" it
    enricher, state = _synced(2**62)
    assert enricher.update(state, _diff(101, 102)) is None  # "contained in the snapshot": locked
    out = enricher.update(state, _snap(100, bids=[(97.0, 5.0)]))
    assert isinstance(out, BookMetrics) and out.update_id == 100 and out.best_bid == 97.0
    assert state.bid_prices == [97.0] and not state.stale
    assert isinstance(enricher.update(state, _diff(101, 102, bids=[(97.5, 1.0)])), BookMetrics)
    assert state.bid_prices == [97.0, 97.5]


def test_snapshot_with_a_price_listed_twice_keeps_the_last() -> None:
    enricher = _enricher()
    state = enricher.new_state()
    enricher.update(state, _snap(10, bids=[(99.0, 1.0), (98.0, 2.0), (99.0, 3.0)]))
    assert (state.bid_prices, state.bid_qtys) == ([98.0, 99.0], [2.0, 3.0])


def test_diff_far_beyond_the_book_is_an_id_jump_and_the_book_stays_usable() -> None:
    enricher = OrderBookEnricher(OrderBookEnrichment(), InputBounds(max_id_jump=1000))
    state = enricher.new_state()
    enricher.update(state, _snap(100))
    out = enricher.update(state, _diff(101, 2**62, bids=[(99.5, 1.0)]))
    assert isinstance(out, Rejection) and out.reason == RejectReason.ID_JUMP
    assert state.last_update_id == 100 and 99.5 not in state.bid_prices and not state.stale
    assert isinstance(enricher.update(state, _diff(101, 1100)), BookMetrics)  # within the bound


@pytest.mark.parametrize("seed", range(20))
def test_large_diffs_merge_to_the_same_book_as_level_by_level(seed: int) -> None:
    rng = random.Random(seed)
    book = sorted({round(rng.uniform(1, 100), 2) for _ in range(rng.randint(0, 300))})
    levels = [(p, float(rng.choice([0, 1, 2, 3]))) for p in
              (rng.choice(book) if book and rng.random() < 0.5 else round(rng.uniform(1, 100), 2)
               for _ in range(rng.randint(32, 400)))]
    prices, qtys = list(book), [1.0] * len(book)
    _apply_side(prices, qtys, levels)
    expected_p, expected_q = list(book), [1.0] * len(book)
    for price, qty in levels:
        _apply_level(expected_p, expected_q, price, qty)
    assert (prices, qtys) == (expected_p, expected_q)


def test_diff_cost_is_linear_in_its_size() -> None:
    # 100,000 new levels in one diff: level by level this is ~5e9 element moves (minutes); merged, ms
    enricher = OrderBookEnricher(OrderBookEnrichment(max_levels=100_000))
    state = enricher.new_state()
    enricher.update(state, _snap(1, bids=[(1.0, 1.0)], asks=[(1e9, 1.0)]))
    diff = _diff(2, 2, bids=[(1.0 + i * 1e-4, 1.0) for i in range(100_000, 0, -1)])
    start = time.process_time()
    out = enricher.update(state, diff)
    assert time.process_time() - start < 2.0
    assert isinstance(out, BookMetrics) and out.bid_levels == 100_000


def test_diff_that_crosses_the_book_is_rejected_and_goes_stale() -> None:
    enricher, state = _synced(100)
    out = enricher.update(state, _diff(101, 101, bids=[(101.5, 1.0)]))
    assert isinstance(out, Rejection) and out.reason == RejectReason.CROSSED_BOOK
    assert state.stale


def test_zero_quantity_removes_level_and_max_levels_truncates_far_levels() -> None:
    enricher = _enricher(max_levels=3)
    state = enricher.new_state()
    enricher.update(state, _snap(1, bids=[(99.0, 1.0), (98.0, 1.0)], asks=[(101.0, 1.0)]))
    enricher.update(state, _diff(2, 2, bids=[(99.0, 0.0), (97.0, 1.0), (96.0, 1.0), (95.0, 1.0)],
                                 asks=[(103.0, 1.0), (102.0, 1.0), (104.0, 1.0)]))
    assert state.bid_prices == [96.0, 97.0, 98.0]
    assert state.ask_prices == [101.0, 102.0, 103.0]


def _brute_metrics(bids: dict[float, float], asks: dict[float, float], bands: list[float],
                   top_n: int) -> dict[str, object]:
    bb, ba = max(bids), min(asks)
    mid = (bb + ba) / 2
    out: dict[str, object] = {
        "mid": mid, "spread_bps": (ba - bb) / mid * 1e4,
        "microprice": (bb * asks[ba] + ba * bids[bb]) / (bids[bb] + asks[ba]),
    }
    top_b = sum(q for _, q in sorted(bids.items(), reverse=True)[:top_n])
    top_a = sum(q for _, q in sorted(asks.items())[:top_n])
    out["top_imbalance"] = (top_b - top_a) / (top_b + top_a)
    for band in bands:
        f = band / 1e4
        out[f"bid{band:g}"] = sum(q for p, q in bids.items() if p >= mid * (1 - f))
        out[f"ask{band:g}"] = sum(q for p, q in asks.items() if p <= mid * (1 + f))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_brute_force_over_random_diffs(seed: int) -> None:
    rng = random.Random(seed)
    bands = [10.0, 25.0, 50.0]
    enricher = _enricher(depth_bands_bps=bands, imbalance_levels=5)
    state = enricher.new_state()
    bids = {round(1000 - 0.1 * i, 1): rng.uniform(0.1, 5) for i in range(1, 40)}
    asks = {round(1000 + 0.1 * i, 1): rng.uniform(0.1, 5) for i in range(1, 40)}
    enricher.update(state, _snap(10, list(bids.items()), list(asks.items())))
    last = 10
    for _ in range(300):
        bb, ba = max(bids), min(asks)
        b_changes = [(round(bb - 0.1 * rng.randint(0, 60), 1), rng.choice([0.0, rng.uniform(0.1, 5)]))
                     for _ in range(3)]
        a_changes = [(round(ba + 0.1 * rng.randint(0, 60), 1), rng.choice([0.0, rng.uniform(0.1, 5)]))
                     for _ in range(3)]
        trial_b, trial_a = dict(bids), dict(asks)
        for p, q in b_changes:
            trial_b.pop(p, None) if q == 0 else trial_b.__setitem__(p, q)
        for p, q in a_changes:
            trial_a.pop(p, None) if q == 0 else trial_a.__setitem__(p, q)
        if not trial_b or not trial_a:
            continue
        bids, asks = trial_b, trial_a
        out = enricher.update(state, _diff(last + 1, last + 2, b_changes, a_changes))
        last += 2
        assert isinstance(out, BookMetrics)
        expected = _brute_metrics(bids, asks, bands, 5)
        assert out.mid == pytest.approx(expected["mid"], rel=1e-12)
        assert out.spread_bps == pytest.approx(expected["spread_bps"], rel=1e-9)
        assert out.microprice == pytest.approx(expected["microprice"], rel=1e-12)
        assert out.top_imbalance == pytest.approx(expected["top_imbalance"], rel=1e-9, abs=1e-12)
        for band in bands:
            label = f"{band:g}"
            assert out.depth_bid[label] == pytest.approx(expected[f"bid{label}"], rel=1e-9)
            assert out.depth_ask[label] == pytest.approx(expected[f"ask{label}"], rel=1e-9)
        assert out.bid_levels == len(bids) and out.ask_levels == len(asks)


def test_state_round_trips_through_bytes() -> None:
    enricher, state = _synced(100)
    enricher.update(state, _diff(101, 102, bids=[(98.5, 2.0)]))
    data = enricher.dump_state(state)
    restored = enricher.load_state(data)
    assert restored == state and enricher.dump_state(restored) == data
