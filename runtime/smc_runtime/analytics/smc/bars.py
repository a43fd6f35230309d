"""The bar type fed to the SMC detectors, and its validation (SPEC 5.2 item 14).

A bad bar must be rejected with a reason before it reaches any detector: one NaN or an
out-of-order timestamp would silently corrupt every pattern downstream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Bar", "validate_bar"]


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed OHLCV bar; ``timestamp_ms`` is the UTC epoch ms of the bar open."""

    timestamp_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


def validate_bar(bar: Bar, prev_timestamp_ms: int | None, *, ohlc_consistency: bool = True) -> str | None:
    """Return the reason ``bar`` is unusable, or ``None`` if it may be fed to the detectors.

    ``ohlc_consistency=False`` skips the high/low-vs-body and volume checks: compat mode
    reproduces the reference library, which accepts any finite prices.
    """
    o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
    if not (math.isfinite(o) and math.isfinite(h) and math.isfinite(lo) and math.isfinite(c)):
        return "non_finite_price: open/high/low/close must be finite numbers"
    if not math.isfinite(v):
        return "non_finite_volume: volume must be a finite number"
    if ohlc_consistency:
        if h < o or h < c:
            return f"high_below_body: high {h!r} < max(open, close) {max(o, c)!r}"
        if lo > o or lo > c:
            return f"low_above_body: low {lo!r} > min(open, close) {min(o, c)!r}"
        if v < 0:
            return f"negative_volume: volume {v!r} < 0"
    if prev_timestamp_ms is not None and bar.timestamp_ms <= prev_timestamp_ms:
        return f"timestamp_not_increasing: timestamp_ms {bar.timestamp_ms} <= previous {prev_timestamp_ms}"
    return None
