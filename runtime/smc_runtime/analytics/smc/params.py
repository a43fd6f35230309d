"""Detector parameters, fixed for the lifetime of one engine (one stream)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SmcParams", "parse_liquidity_range"]


def parse_liquidity_range(spec: str) -> tuple[str, float]:
    """Parse ``abs:X`` | ``atr:K`` | ``range:R`` into ``(kind, value)``; raise ``ValueError``.

    ``range:R`` is the library's whole-series rule ``(max high - min low) * R``: it reads the end
    of the stream, so it is accepted in compat mode only.
    """
    kind, sep, raw = spec.partition(":")
    if not sep or kind not in ("abs", "atr", "range"):
        raise ValueError(f"liquidity_range must be 'abs:X', 'atr:K' or 'range:R', got {spec!r}")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"liquidity_range value is not a number: {spec!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"liquidity_range value must be finite and >= 0: {spec!r}")
    return kind, value


@dataclass(frozen=True, slots=True)
class SmcParams:
    """SMC detector settings (library names in parentheses).

    ``liquidity_range``: ``abs:X`` absolute tolerance, ``atr:K`` K*ATR14 frozen at a group's
    first swing (default mode), ``range:R`` whole-series share (compat only). In compat mode an
    ``atr:`` value (the default) means "no explicit range", i.e. the library's ``range:0.01``.
    """

    swing_length: int = 10
    close_break: bool = True
    close_mitigation: bool = False
    join_fvg: bool = False
    liquidity_range: str = "atr:0.5"
    compat: bool = False
    # open FVGs kept per stream (0: unlimited); beyond it the oldest becomes final (see fvg.py)
    max_open_fvgs: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.swing_length, bool) or not isinstance(self.swing_length, int):
            raise ValueError("swing_length must be an int")
        if self.swing_length < 1:
            raise ValueError("swing_length must be >= 1")
        if self.max_open_fvgs < 0:
            raise ValueError("max_open_fvgs must be >= 0")
        if self.max_open_fvgs and self.compat:
            raise ValueError("max_open_fvgs: compat mode reproduces the library, which keeps every gap")
        kind, _ = parse_liquidity_range(self.liquidity_range)
        if kind == "range" and not self.compat:
            raise ValueError("liquidity_range 'range:R' reads the whole series: compat mode only")

    def liquidity_tolerance(self) -> tuple[str, float]:
        """Effective ``(kind, value)`` of the liquidity tolerance for this mode."""
        kind, value = parse_liquidity_range(self.liquidity_range)
        if self.compat and kind == "atr":
            return "range", 0.01
        return kind, value
