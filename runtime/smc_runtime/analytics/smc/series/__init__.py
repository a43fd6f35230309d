"""Per-bar series of the library (previous high/low, sessions, retracements) as streaming,
causal calculators with snapshot/restore; see the SMC README's "Series" section."""

from .engine import SeriesEngine, SeriesEvent, SeriesSpec, parse_series

__all__ = ["SeriesEngine", "SeriesEvent", "SeriesSpec", "parse_series"]
