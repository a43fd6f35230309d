"""Local order book from snapshots + diffs (Binance sequencing) and its metrics.

Sequencing (Binance "manage a local order book"): after a snapshot with ``lastUpdateId = L``,
diffs with ``u <= L`` are already in it and are skipped; the first applied diff must straddle
``L + 1`` (``U <= L + 1 <= u``); later diffs must continue at ``U == prev_u + 1`` (an overlap
that straddles is applied too). A diff starting beyond ``prev_u + 1`` is a gap: the book turns
stale, one document with the gap is emitted (alert rules raise on it) and diffs are ignored
until the next snapshot resynchronises the book. A snapshot always resynchronises the book, whatever
its id (a bad id is repaired by the next snapshot, never locked in). A diff whose ``u`` is more than
``max_id_jump`` beyond the book is dead-lettered (``id_jump``) and the book stays as it was.

Each side is two aligned lists sorted by ascending price, which keeps best price, top-N and band
sums O(levels touched) and the state a plain msgpack-able struct. A small diff is applied level by
level (bisect + insert); a large one by one merge of the sorted diff into the side, so a diff costs
O(book + diff log diff), never O(book x diff).
"""

from __future__ import annotations

from bisect import bisect_left

import msgspec

from smc_runtime.analytics.interfaces import MessageKind, SimpleState
from smc_runtime.config import InputBounds, OrderBookEnrichment
from smc_runtime.messages import DepthSnapshot, DepthUpdate, PriceLevel, Rejection, RejectReason


class BookState(msgspec.Struct, array_like=True):
    """One symbol's local book; ``synced`` once a snapshot arrived, ``stale`` after a gap."""

    synced: bool = False
    stale: bool = False
    awaiting_first_diff: bool = False
    last_update_id: int = -1
    bid_prices: list[float] = []
    bid_qtys: list[float] = []
    ask_prices: list[float] = []
    ask_qtys: list[float] = []


class SequenceGap(msgspec.Struct):
    expected_first_update_id: int
    received_first_update_id: int


class BookMetrics(msgspec.Struct):
    """The ``orderbook_metrics`` document (see docs/schemas.md)."""

    symbol: str
    update_id: int
    event_time: int
    source: str
    stale: bool
    gap: SequenceGap | None
    bid_levels: int
    ask_levels: int
    best_bid: float | None
    best_ask: float | None
    best_bid_qty: float | None
    best_ask_qty: float | None
    mid: float | None
    spread: float | None
    spread_bps: float | None
    microprice: float | None
    top_imbalance: float | None
    depth_bid: dict[str, float]
    depth_ask: dict[str, float]
    depth_imbalance: dict[str, float | None]
    type: str = "orderbook_metrics"


def _apply_level(prices: list[float], qtys: list[float], price: float, qty: float) -> None:
    i = bisect_left(prices, price)
    if i < len(prices) and prices[i] == price:
        if qty == 0.0:
            del prices[i]
            del qtys[i]
        else:
            qtys[i] = qty
    elif qty != 0.0:
        prices.insert(i, price)
        qtys.insert(i, qty)


_MERGE_FROM = 32  # levels per side from which one merge beats bisect + insert per level


def _apply_side(prices: list[float], qtys: list[float], levels: list[PriceLevel]) -> None:
    """Apply one side of a diff in place: the same result as ``_apply_level`` per level in order
    (a price's last update wins; quantity 0 removes), in linear time for large diffs."""
    if len(levels) < _MERGE_FROM:
        for price, qty in levels:
            _apply_level(prices, qtys, price, qty)
        return
    updates = sorted(dict(levels).items())  # the last update of each price, ascending
    new_prices: list[float] = []
    new_qtys: list[float] = []
    i, n = 0, len(prices)
    for price, qty in updates:
        j = bisect_left(prices, price, i)
        new_prices += prices[i:j]
        new_qtys += qtys[i:j]
        i = j + 1 if j < n and prices[j] == price else j
        if qty != 0.0:
            new_prices.append(price)
            new_qtys.append(qty)
    new_prices += prices[i:]
    new_qtys += qtys[i:]
    prices[:] = new_prices
    qtys[:] = new_qtys


def _imbalance(bid: float, ask: float) -> float | None:
    total = bid + ask
    return (bid - ask) / total if total > 0.0 else None


class OrderBookEnricher:
    """Maintains the local book per symbol and emits book metrics per applied message."""

    name = "orderbook_metrics"
    kind: MessageKind = "orderbook"

    def __init__(self, settings: OrderBookEnrichment, bounds: InputBounds | None = None) -> None:
        self._max_id_jump = (bounds or InputBounds()).max_id_jump
        self._bands = [(str(b).removesuffix(".0"), b / 10_000.0) for b in settings.depth_bands_bps]
        self._top_n = settings.imbalance_levels
        self._max_levels = settings.max_levels
        self._codec = SimpleState(BookState)

    def new_state(self) -> BookState:
        return BookState()

    def dump_state(self, state: BookState) -> bytes:
        return self._codec.dump(state)

    def load_state(self, data: bytes) -> BookState:
        return self._codec.load(data)

    def update(self, state: BookState,
               message: DepthSnapshot | DepthUpdate) -> BookMetrics | Rejection | None:
        if isinstance(message, DepthSnapshot):
            return self._on_snapshot(state, message)
        return self._on_diff(state, message)

    def _on_snapshot(self, state: BookState, snap: DepthSnapshot) -> BookMetrics:
        # always a resync (even an older or repeated id): a snapshot is the ground truth, and a
        # bad id in the book must not lock it. A price listed twice: the last one wins.
        bids = sorted(dict(snap.bids).items())[-self._max_levels:]
        asks = sorted(dict(snap.asks).items())[: self._max_levels]
        state.bid_prices = [p for p, _ in bids]
        state.bid_qtys = [q for _, q in bids]
        state.ask_prices = [p for p, _ in asks]
        state.ask_qtys = [q for _, q in asks]
        state.last_update_id = snap.last_update_id
        state.synced = True
        state.stale = False
        state.awaiting_first_diff = True
        return self._metrics(state, snap.symbol, snap.event_time, "snapshot", None)

    def _on_diff(self, state: BookState, diff: DepthUpdate) -> BookMetrics | Rejection | None:
        if not state.synced or state.stale:
            return None
        last = state.last_update_id
        if diff.final_update_id <= last:
            if state.awaiting_first_diff:
                return None  # already contained in the snapshot
            if diff.final_update_id == last:
                return Rejection(RejectReason.DUPLICATE,
                                 f"depth update u={diff.final_update_id} already applied")
            return Rejection(RejectReason.OUT_OF_ORDER,
                             f"depth update u={diff.final_update_id} behind book at {last}")
        if diff.final_update_id - last > self._max_id_jump:
            return Rejection(RejectReason.ID_JUMP,
                             f"depth update u={diff.final_update_id} is {diff.final_update_id - last} beyond "
                             f"the book at {last} (bound max_id_jump {self._max_id_jump})")
        if diff.first_update_id > last + 1:
            state.stale = True
            gap = SequenceGap(last + 1, diff.first_update_id)
            return self._metrics(state, diff.symbol, diff.event_time, "diff", gap)
        bid_prices, bid_qtys = state.bid_prices, state.bid_qtys
        ask_prices, ask_qtys = state.ask_prices, state.ask_qtys
        bids, asks = diff.bids, diff.asks
        if len(bids) < _MERGE_FROM and len(asks) < _MERGE_FROM:  # the usual diff: level by level, inline
            for price, qty in bids:
                _apply_level(bid_prices, bid_qtys, price, qty)
            for price, qty in asks:
                _apply_level(ask_prices, ask_qtys, price, qty)
        else:
            _apply_side(bid_prices, bid_qtys, bids)
            _apply_side(ask_prices, ask_qtys, asks)
        excess = len(bid_prices) - self._max_levels
        if excess > 0:
            del bid_prices[:excess]
            del bid_qtys[:excess]
        if len(ask_prices) > self._max_levels:
            del ask_prices[self._max_levels:]
            del ask_qtys[self._max_levels:]
        state.last_update_id = diff.final_update_id
        state.awaiting_first_diff = False
        if bid_prices and ask_prices and bid_prices[-1] >= ask_prices[0]:
            state.stale = True
            return Rejection(RejectReason.CROSSED_BOOK, f"update u={diff.final_update_id} crosses the book: "
                                                        f"bid {bid_prices[-1]} >= ask {ask_prices[0]}; "
                                                        "book stale until the next snapshot")
        return self._metrics(state, diff.symbol, diff.event_time, "diff", None)

    def _metrics(self, state: BookState, symbol: str, event_time: int, source: str,
                 gap: SequenceGap | None) -> BookMetrics:
        bid_prices, bid_qtys = state.bid_prices, state.bid_qtys
        ask_prices, ask_qtys = state.ask_prices, state.ask_qtys
        best_bid = bid_prices[-1] if bid_prices else None
        best_ask = ask_prices[0] if ask_prices else None
        bid_qty = bid_qtys[-1] if bid_qtys else None
        ask_qty = ask_qtys[0] if ask_qtys else None
        mid = spread = spread_bps = microprice = top_imbalance = None
        depth_bid: dict[str, float] = {}
        depth_ask: dict[str, float] = {}
        depth_imbalance: dict[str, float | None] = {}
        if best_bid is not None and best_ask is not None and bid_qty is not None and ask_qty is not None:
            mid = (best_bid + best_ask) * 0.5
            spread = best_ask - best_bid
            spread_bps = spread / mid * 10_000.0
            microprice = (best_bid * ask_qty + best_ask * bid_qty) / (bid_qty + ask_qty)
            n = self._top_n
            top_imbalance = _imbalance(sum(bid_qtys[-n:], 0.0), sum(ask_qtys[:n], 0.0))
            for label, fraction in self._bands:
                lo = bisect_left(bid_prices, mid * (1.0 - fraction))
                hi = bisect_left(ask_prices, mid * (1.0 + fraction))
                # ask band is inclusive of the bound: extend over equal prices
                while hi < len(ask_prices) and ask_prices[hi] == mid * (1.0 + fraction):
                    hi += 1
                bid_depth = sum(bid_qtys[lo:], 0.0)
                ask_depth = sum(ask_qtys[:hi], 0.0)
                depth_bid[label] = bid_depth
                depth_ask[label] = ask_depth
                depth_imbalance[label] = _imbalance(bid_depth, ask_depth)
        return BookMetrics(
            symbol=symbol, update_id=state.last_update_id, event_time=event_time, source=source,
            stale=state.stale, gap=gap, bid_levels=len(bid_prices), ask_levels=len(ask_prices),
            best_bid=best_bid, best_ask=best_ask, best_bid_qty=bid_qty, best_ask_qty=ask_qty, mid=mid,
            spread=spread, spread_bps=spread_bps, microprice=microprice, top_imbalance=top_imbalance,
            depth_bid=depth_bid, depth_ask=depth_ask, depth_imbalance=depth_imbalance,
        )
