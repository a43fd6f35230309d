"""The worst-case size of one state key's snapshot, checked against the changelog's record limit when
a configuration is validated: a setting whose state cannot fit one record could never commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the settings are read, not built, here: no import at run time (config imports this)
    from smc_runtime.config import ProcessorSettings

CHANGELOG_RECORD_OVERHEAD = 2048
_MAX_SYMBOL_BYTES = 32
_FLOAT_BYTES = 9  # a msgpack float64
# The SMC engine in default mode keeps ~2 x swing_length bars plus a prune chunk (256) of slack, and
# at most max_open_fvgs open gaps (each an event in the FVG detector and in the engine's alive book,
# ~200 B each as msgpack maps). The other alive events (order blocks, liquidity groups, swings) are
# not bounded by a setting and get a fixed budget (measured on a 5,900-bar synthetic trend: ~12 KB).
_SMC_BAR_BYTES = 7 * _FLOAT_BYTES
_SMC_FVG_BYTES = 512
_SMC_EVENT_BUDGET = 128 * 1024


def worst_case_snapshot_bytes(settings: ProcessorSettings) -> dict[str, int]:
    """Upper bound of one key's snapshot bytes per key kind (``trade``, ``orderbook``, ``kline``),
    built-ins only (plugins' state is theirs to bound). An estimate with margins, from the formats in
    ``analytics/`` (trade rings as raw float64, book levels as msgpack floats)."""
    frame = 256 + _MAX_SYMBOL_BYTES + 64 * 8  # KeySnapshot fields, names, the active alert flags
    trades, book = settings.enrichment.trades, settings.enrichment.orderbook
    ring = max(*trades.sma_windows, trades.vwap_window, trades.volume_window, trades.volatility_window,
               trades.momentum_window + 1)
    trade = frame + 4 * 8 * ring + _FLOAT_BYTES * len(trades.sma_windows) + 512
    orderbook = frame + 4 * _FLOAT_BYTES * book.max_levels + 128
    kline = frame + 256
    detection = settings.detection
    if detection.enabled:
        smc = ((2 * detection.swing_length + 2 * 256) * _SMC_BAR_BYTES
               + detection.max_open_fvgs * _SMC_FVG_BYTES + _SMC_EVENT_BUDGET)
        if detection.series:  # the smc_series detector: a swing buffer like the engine's + small calculators
            smc += (2 * detection.swing_length + 2 * 256) * _SMC_BAR_BYTES + 1024 * len(detection.series)
        if detection.inverse_fvg:  # waiting and live inverse gaps, bounded by max_open_fvgs too
            smc += detection.max_open_fvgs * _SMC_FVG_BYTES
        if detection.internal_length:  # a second scope's swings, structure and order blocks
            smc += _SMC_EVENT_BUDGET
        kline += smc
        if settings.enrichment.klines.bars_from_trades:
            trade += smc + 128
    return {"trade": trade, "orderbook": orderbook, "kline": kline}


def snapshot_size_problems(settings: ProcessorSettings) -> list[str]:
    """Every setting whose worst-case key snapshot cannot fit one changelog record."""
    problems: list[str] = []
    limit = settings.max_record_bytes - CHANGELOG_RECORD_OVERHEAD
    sizes = worst_case_snapshot_bytes(settings)
    if settings.detection.enabled and settings.detection.mode == "compat":
        problems.append("detection.mode 'compat' keeps every bar (the reference library's end-of-series "
                        "rules read the whole series), so a key's snapshot grows without bound; use "
                        "'default' in a processor (compat is for `smc-runtime detect`)")
    if sizes["trade"] > limit:
        problems.append(f"enrichment.trades windows (largest ring {_ring_of(settings)}) need up to "
                        f"{sizes['trade']} bytes per trade key (limit {limit}): lower vwap_window/"
                        "volume_window/sma_windows/volatility_window or raise max_record_bytes")
    if sizes["orderbook"] > limit:
        problems.append(f"enrichment.orderbook.max_levels {settings.enrichment.orderbook.max_levels} needs "
                        f"up to {sizes['orderbook']} bytes per book key (limit {limit}): lower it or raise "
                        "max_record_bytes")
    if sizes["kline"] > limit:
        problems.append(f"detection.swing_length {settings.detection.swing_length} and max_open_fvgs "
                        f"{settings.detection.max_open_fvgs} need up to {sizes['kline']} bytes per kline key "
                        f"(limit {limit}): lower them or raise max_record_bytes")
    producer_max = settings.kafka_clients.producer.get("message.max.bytes")
    if producer_max is not None and _as_int(producer_max) < settings.max_record_bytes:
        problems.append(f"kafka_clients.producer message.max.bytes {producer_max} is below max_record_bytes "
                        f"{settings.max_record_bytes}: records up to max_record_bytes would be refused")
    return problems


def _ring_of(settings: ProcessorSettings) -> int:
    t = settings.enrichment.trades
    return max(*t.sma_windows, t.vwap_window, t.volume_window, t.volatility_window, t.momentum_window + 1)


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
