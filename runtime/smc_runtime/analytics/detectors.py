"""Adapter from the SMC engine to the ``DetectorFactory`` interface.

The engine is imported lazily: ``detect``-free tools and pipelines with detection off do not pay
for its import.
"""

from __future__ import annotations

from smc_runtime.analytics.interfaces import BarDetector
from smc_runtime.config import DetectionSettings


class SmcDetectorFactory:
    """Creates/restores ``SmcEngine``s with the processor's ``DetectionSettings``."""

    name = "smc"

    def __init__(self, settings: DetectionSettings) -> None:
        from smc_runtime.analytics.smc.params import SmcParams

        self._params = SmcParams(
            swing_length=settings.swing_length,
            close_break=settings.close_break,
            close_mitigation=settings.close_mitigation,
            join_fvg=settings.join_fvg,
            liquidity_range=settings.liquidity_range,
            compat=settings.mode == "compat",
            max_open_fvgs=0 if settings.mode == "compat" else settings.max_open_fvgs,
            internal_length=settings.internal_length,
            internal_confluence=settings.internal_confluence,
            trend=settings.trend,
            zones=settings.zones,
            fvg_min_size=settings.fvg_min_size,
            fvg_mitigation=settings.fvg_mitigation,
            inverse_fvg=settings.inverse_fvg,
            ob_atr_filter=settings.ob_atr_filter,
            breakers=settings.breakers,
            sweep_outcome=settings.sweep_outcome,
        )

    def create(self) -> BarDetector:
        from smc_runtime.analytics.smc.engine import SmcEngine

        engine: BarDetector = SmcEngine(self._params)
        return engine

    def restore(self, data: bytes) -> BarDetector:
        from smc_runtime.analytics.smc.engine import SmcEngine

        engine = SmcEngine.restore(data)
        engine.limit_open_fvgs(self._params.max_open_fvgs)  # snapshots from before the setting, too
        restored: BarDetector = engine
        return restored
