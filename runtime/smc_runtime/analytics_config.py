"""The analytics sections of a processor's configuration (enrichment, input bounds, detection,
alerts): what the Pipeline is parameterised with. Re-exported by ``smc_runtime.config``, which
holds the rest of the model (topics, Kafka, plugins, limits) and the loading.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictModel(BaseModel):
    """Every configuration model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TradeEnrichment(StrictModel):
    sma_windows: list[Annotated[int, Field(ge=2, le=10_000)]] = [5, 20, 50]
    vwap_window: int = Field(100, ge=2, le=100_000)
    ema_span: int = Field(20, ge=2, le=10_000)
    momentum_window: int = Field(20, ge=1, le=10_000)
    volatility_window: int = Field(50, ge=2, le=10_000)
    volume_window: int = Field(100, ge=2, le=100_000)
    large_trade_multiplier: float = Field(5.0, gt=0)


class OrderBookEnrichment(StrictModel):
    depth_bands_bps: list[Annotated[float, Field(gt=0, le=10_000)]] = [10.0, 25.0, 50.0]
    imbalance_levels: int = Field(10, ge=1, le=1000)
    max_levels: int = Field(1000, ge=1, le=100_000)


class KlineEnrichment(StrictModel):
    atr_period: int = Field(14, ge=1, le=1000)
    bars_from_trades: bool = False
    trade_bar_interval_ms: int = Field(60_000, ge=1000)


# Magnitudes the built-in arithmetic is proven finite for (docs/runtime.md, "Hostile input"): every
# product, sum and ratio of bounded inputs over the largest windows stays far below float max (1.8e308).
_FINITE_HEADROOM = 1e250


class InputBounds(StrictModel):
    """What ``decode`` and the enrichers accept (each rejection is a dead letter with its reason).

    Prices and quantities must lie in ``[min, max]`` (and be finite); ids and times are integers in
    ``[0, 2**63-1]`` (times also before the year 10000); kline volumes in ``[0, max_volume]`` (quote
    volumes up to ``max_volume * max_price``); one book message has at most ``max_book_levels`` levels
    per side. A trade id or depth update id more than ``max_id_jump`` beyond the key's last one, or a
    trade/kline time more than ``max_time_jump_ms`` beyond the key's last (klines: at least two
    intervals), is dead-lettered (``id_jump`` / ``time_jump``) instead of becoming the new baseline."""

    min_price: float = Field(1e-12, gt=0)
    max_price: float = Field(1e15, gt=0)
    min_quantity: float = Field(1e-12, gt=0)
    max_quantity: float = Field(1e15, gt=0)
    max_volume: float = Field(1e18, gt=0)
    max_book_levels: int = Field(5000, ge=1, le=1_000_000)
    max_id_jump: int = Field(1_000_000_000, ge=1, le=2**62)
    max_time_jump_ms: int = Field(30 * 86_400_000, ge=1000, le=2**62)

    @model_validator(mode="after")
    def _consistent(self) -> InputBounds:
        problems = []
        if self.min_price >= self.max_price:
            problems.append(f"min_price {self.min_price:g} must be < max_price {self.max_price:g}")
        if self.min_quantity >= self.max_quantity:
            problems.append(f"min_quantity {self.min_quantity:g} must be < max_quantity "
                            f"{self.max_quantity:g}")
        if self.max_price / self.min_price > _FINITE_HEADROOM:
            problems.append(f"max_price / min_price must be <= {_FINITE_HEADROOM:g} (price ratios and their "
                            "logs must stay finite)")
        if self.max_price * max(self.max_quantity, self.max_volume) > 1e100:
            problems.append("max_price * max(max_quantity, max_volume) must be <= 1e100 (notional sums "
                            "must stay finite)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class EnrichmentSettings(StrictModel):
    max_message_bytes: int = Field(1_048_576, ge=64, le=100 * 1_048_576)
    bounds: InputBounds = InputBounds()
    trades: TradeEnrichment = TradeEnrichment()
    orderbook: OrderBookEnrichment = OrderBookEnrichment()
    klines: KlineEnrichment = KlineEnrichment()


class DetectionSettings(StrictModel):
    """SMC detector parameters (see the SMC SPEC); ``mode`` picks compat or default semantics."""

    enabled: bool = True
    mode: Literal["default", "compat"] = "default"
    swing_length: int = Field(10, ge=1, le=500)
    close_break: bool = True
    close_mitigation: bool = False
    join_fvg: bool = False
    liquidity_range: str = Field("atr:0.5", pattern=r"^(abs|atr):[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$")
    # Open fair value gaps kept per stream: in a trend, gaps far from the price are never mitigated
    # and would grow a key's state without bound; beyond this the oldest is given up (a `final`
    # event). Bounds the key's snapshot (see worst_case_snapshot_bytes).
    max_open_fvgs: int = Field(200, ge=1, le=100_000)
    # Per-bar series (SMC README "Series"), each its `smc_signals` events: previous_high_low:TF,
    # sessions:NAME[@ZONE] (e.g. London, Custom:06:00-09:00@Europe/London), retracements. Off if empty.
    series: list[str] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _series_valid(self) -> DetectionSettings:
        if self.series:
            from smc_runtime.analytics.smc.series.factory import parse_series_list

            parse_series_list(self.series, self.mode == "compat", self.swing_length)
        return self

    # SMC context features (issue 15, default mode only, all off by default; see the SMC README).
    internal_length: int = Field(0, ge=0, le=499)  # internal structure swing length, < swing_length
    internal_confluence: bool = False
    trend: bool = False
    zones: bool = False
    fvg_min_size: str = Field("", pattern=r"^(|auto|(abs|atr):[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)$")
    fvg_mitigation: Literal["touch", "ce", "full"] = "touch"
    inverse_fvg: bool = False
    ob_atr_filter: float = Field(0.0, ge=0, le=1000)
    breakers: bool = False
    sweep_outcome: bool = False

    @model_validator(mode="after")
    def _context_consistent(self) -> DetectionSettings:
        if self.internal_length and self.internal_length >= self.swing_length:
            raise ValueError("detection.internal_length must be smaller than swing_length (0 = off)")
        if self.internal_confluence and not self.internal_length:
            raise ValueError("detection.internal_confluence needs internal_length > 0")
        context = (self.internal_length or self.trend or self.zones or self.fvg_min_size
                   or self.fvg_mitigation != "touch" or self.inverse_fvg or self.ob_atr_filter
                   or self.breakers or self.sweep_outcome)
        if context and self.mode == "compat":
            raise ValueError("detection context features (internal_length, trend, zones, fvg_*, "
                             "inverse_fvg, ob_atr_filter, breakers, sweep_outcome) need mode 'default'")
        return self


class AlertSettings(StrictModel):
    watched_symbols: list[str] = []
    structure_breaks: bool = True
    spread_bps_threshold: float = Field(50.0, gt=0)
    imbalance_threshold: float = Field(0.8, gt=0, le=1)
    large_trades: bool = True
    orderbook_gaps: bool = True
    # series events (detection.series): a previous period's high/low broken; a session opened/closed
    previous_levels_broken: bool = True
    sessions: bool = True
    # SMC context alerts (off by default, like the detection features whose events they read:
    # sweep_outcome, breakers, trend)
    liquidity_sweeps: bool = False
    breaker_retests: bool = False
    trend_changes: bool = False
