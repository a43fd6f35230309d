"""Detector parameters, fixed for the lifetime of one engine (one stream)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "CONTEXT_PARAMS",
    "FVG_MITIGATION_LEVELS",
    "SmcParams",
    "parse_context_overrides",
    "parse_fvg_min_size",
    "parse_liquidity_range",
]

FVG_MITIGATION_LEVELS = ("touch", "ce", "full")


def _non_negative(name: str, raw: str, spec: str) -> float:
    """The number after ``kind:`` in a ``name`` spec; finite and >= 0 or ``ValueError``."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} value is not a number: {spec!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} value must be finite and >= 0: {spec!r}")
    return value


def parse_fvg_min_size(spec: str) -> tuple[str, float]:
    """Parse ``""`` (off) | ``abs:X`` | ``atr:K`` | ``auto`` into ``(kind, value)``; raise ``ValueError``.

    ``abs:X``: gap height >= X; ``atr:K``: gap height >= K * ATR14 at the bar that completes the
    gap; ``auto``: LuxAlgo's rule, the middle candle's body (as a share of its open) exceeds twice
    the cumulative mean of that share over all earlier bars.
    """
    if spec == "":
        return "", 0.0
    if spec == "auto":
        return "auto", 0.0
    kind, sep, raw = spec.partition(":")
    if not sep or kind not in ("abs", "atr"):
        raise ValueError(f"fvg_min_size must be '', 'abs:X', 'atr:K' or 'auto', got {spec!r}")
    return kind, _non_negative("fvg_min_size", raw, spec)


def parse_liquidity_range(spec: str) -> tuple[str, float]:
    """Parse ``abs:X`` | ``atr:K`` | ``range:R`` into ``(kind, value)``; raise ``ValueError``.

    ``range:R`` is the library's whole-series rule ``(max high - min low) * R``: it reads the end
    of the stream, so it is accepted in compat mode only.
    """
    kind, sep, raw = spec.partition(":")
    if not sep or kind not in ("abs", "atr", "range"):
        raise ValueError(f"liquidity_range must be 'abs:X', 'atr:K' or 'range:R', got {spec!r}")
    return kind, _non_negative("liquidity_range", raw, spec)


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
    # -- context features (issue 15; default mode only, all off by default: see the SMC README) --
    # second, shorter swing length: its own swings, BOS/CHoCH and OBs tagged scope "internal"
    # (the swing_length ones are then tagged "swing"); 0 = off
    internal_length: int = 0
    # internal BOS/CHoCH only count when the break bar's wick confirms it (see structure.py)
    internal_confluence: bool = False
    # "trend" events: the swing-scope trend bias from closes beyond final swing highs/lows
    trend: bool = False
    # "zones" events: premium/discount/equilibrium of the trailing swing range, OTE levels and
    # strong/weak high and low, whenever the range or the bias changes
    zones: bool = False
    # FVG quality: minimum size ("" | abs:X | atr:K | auto), mitigation level, inverse FVGs
    fvg_min_size: str = ""
    fvg_mitigation: str = "touch"
    inverse_fvg: bool = False
    # OB source bar skipped when its range >= K * ATR14 (0 = off); breaker_block events
    ob_atr_filter: float = 0.0
    breakers: bool = False
    # liquidity "swept" events say whether it was a sweep (close back inside) or a breakout
    sweep_outcome: bool = False

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
        self._check_context()

    def _check_context(self) -> None:
        if isinstance(self.ob_atr_filter, int) and not isinstance(self.ob_atr_filter, bool):
            # an int would be snapshotted as an int and restored as a float: other bytes
            object.__setattr__(self, "ob_atr_filter", float(self.ob_atr_filter))
        il = self.internal_length
        if isinstance(il, bool) or not isinstance(il, int) or il < 0:
            raise ValueError("internal_length must be an int >= 0")
        if il and il >= self.swing_length:
            raise ValueError("internal_length must be smaller than swing_length (0 = off)")
        if self.internal_confluence and not il:
            raise ValueError("internal_confluence needs internal_length > 0")
        parse_fvg_min_size(self.fvg_min_size)
        if self.fvg_mitigation not in FVG_MITIGATION_LEVELS:
            raise ValueError(
                f"fvg_mitigation must be one of {FVG_MITIGATION_LEVELS}, got {self.fvg_mitigation!r}"
            )
        if not math.isfinite(self.ob_atr_filter) or self.ob_atr_filter < 0:
            raise ValueError("ob_atr_filter must be finite and >= 0")
        if self.compat and self.context_enabled():
            raise ValueError(
                "context features (issue 15) are default-mode only; compat reproduces the library"
            )

    def context_enabled(self) -> bool:
        """Whether any context feature is switched on (all are off by default)."""
        return bool(
            self.internal_length
            or self.trend
            or self.zones
            or self.fvg_min_size
            or self.fvg_mitigation != "touch"
            or self.inverse_fvg
            or self.ob_atr_filter
            or self.breakers
            or self.sweep_outcome
        )

    def needs_atr(self) -> bool:
        """Whether a detector reads the ATR14 series (liquidity ``atr:``, FVG ``atr:``, OB filter)."""
        return (
            self.liquidity_tolerance()[0] == "atr"
            or self.fvg_min_size.startswith("atr:")
            or self.ob_atr_filter > 0
        )

    def liquidity_tolerance(self) -> tuple[str, float]:
        """Effective ``(kind, value)`` of the liquidity tolerance for this mode."""
        kind, value = parse_liquidity_range(self.liquidity_range)
        if self.compat and kind == "atr":
            return "range", 0.01
        return kind, value


# settable from `smc-runtime detect --param KEY=VALUE`: name -> type
CONTEXT_PARAMS: dict[str, type] = {
    "internal_length": int,
    "internal_confluence": bool,
    "trend": bool,
    "zones": bool,
    "fvg_min_size": str,
    "fvg_mitigation": str,
    "inverse_fvg": bool,
    "ob_atr_filter": float,
    "breakers": bool,
    "sweep_outcome": bool,
}


def parse_context_overrides(items: list[str] | None) -> dict[str, object]:
    """``["zones=true", "internal_length=5"]`` -> SmcParams keyword arguments; raise ``ValueError``."""
    out: dict[str, object] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        typ = CONTEXT_PARAMS.get(key.strip())
        if not sep or typ is None:
            raise ValueError(
                f"--param expects KEY=VALUE with KEY one of {sorted(CONTEXT_PARAMS)}, got {item!r}"
            )
        raw = raw.strip()
        if typ is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(f"--param {key}: expected true or false, got {raw!r}")
            out[key.strip()] = raw.lower() in ("true", "1", "yes", "on")
        elif typ is str:
            out[key.strip()] = raw
        else:
            try:
                out[key.strip()] = typ(raw)
            except ValueError:
                raise ValueError(f"--param {key}: not a {typ.__name__}: {raw!r}") from None
    return out
