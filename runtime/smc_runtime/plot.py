"""``smc-runtime detect --plot FILE.png``: the bars as candles with the detections drawn on them,
so a person can check the detectors by eye (optional extra ``plot``: matplotlib).

Drawn for a window of bars (the last ``bars`` by default; a whole year of 15m bars is unreadable):
FVGs and order blocks as boxes until mitigated, BOS/CHoCH as a line from the swing to the break,
liquidity pools as dashed lines until swept, swings as triangles, the previous high/low of a time
frame as step lines, and an active session as shaded background.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.analytics.smc.engine import SmcEngine
from smc_runtime.analytics.smc.events import SmcEvent
from smc_runtime.analytics.smc.params import SmcParams
from smc_runtime.analytics.smc.series import SeriesEngine, parse_series

__all__ = ["plot_detections"]

BULL = "#26a69a"
BEAR = "#ef5350"


def _events(bars: Sequence[Bar], params: SmcParams) -> list[SmcEvent]:
    eng = SmcEngine(params, keep_final=True)
    for b in bars:
        eng.on_bar(b)
    eng.finalize()
    return eng.alive()


def _series(bars: Sequence[Bar], spec_text: str, params: SmcParams, time_zone: str) -> list[tuple[Any, ...]]:
    spec = parse_series(spec_text, time_zone)
    eng = SeriesEngine([spec], compat=params.compat, swing_length=params.swing_length, keep_rows=True)
    for b in bars:
        eng.on_bar(b)
    eng.finalize()
    return eng.rows(spec)


class _Window:
    """The drawn range of bars ``lo .. hi - 1`` on one axes, and the legend labels used so far."""

    def __init__(self, ax: Any, lo: int, hi: int) -> None:
        self.ax = ax
        self.lo = lo
        self.hi = hi  # exclusive
        self.labels: set[str] = set()

    def clip(self, a: int, b: int | None) -> tuple[int, int] | None:
        """The part of ``a .. b`` (open-ended when ``b`` is None or not positive) inside the window."""
        end = self.hi - 1 if b is None or b <= 0 else b
        if end < self.lo or a > self.hi - 1:
            return None
        return max(a, self.lo), min(end, self.hi - 1)

    def once(self, name: str) -> str:
        """``name`` the first time, then a label matplotlib leaves out of the legend."""
        if name in self.labels:
            return "_nolegend_"
        self.labels.add(name)
        return name


def _draw_candles(ax: Any, xs: range, window: Sequence[Bar], span: float) -> None:
    """Wicks as lines, bodies as bars (a doji gets a hairline body)."""
    colors = [BULL if b.close >= b.open else BEAR for b in window]
    ax.vlines(list(xs), [b.low for b in window], [b.high for b in window], colors=colors, linewidth=0.7)
    bodies = [max(abs(b.close - b.open), span * 0.0008) for b in window]
    ax.bar(list(xs), bodies, bottom=[min(b.open, b.close) for b in window], color=colors, width=0.6,
           linewidth=0)


def _draw_event(w: _Window, ev: SmcEvent, rectangle: Any) -> None:
    """One detection: a zone box, a structure line, a liquidity line or a swing marker."""
    ax, up = w.ax, ev.direction > 0
    if ev.pattern in ("fvg", "order_block") and ev.top is not None and ev.bottom is not None:
        seg = w.clip(ev.index, ev.mitigated_index)
        if seg is None:
            return
        top, bottom = max(ev.top, ev.bottom), min(ev.top, ev.bottom)
        if ev.pattern == "fvg":
            color, alpha, name = (BULL if up else BEAR), 0.18, "FVG"
        else:
            color, alpha, name = ("#1e88e5" if up else "#fb8c00"), 0.25, "order block"
        ax.add_patch(rectangle((seg[0] - 0.4, bottom), seg[1] - seg[0] + 0.8, top - bottom,
                               facecolor=color, alpha=alpha, edgecolor=color, linewidth=0.6,
                               label=w.once(f"{name} {'bull' if up else 'bear'}")))
    elif ev.pattern in ("bos", "choch") and ev.level is not None:
        seg = w.clip(ev.index, ev.broken_index)
        if seg is None:
            return
        color = BULL if up else BEAR
        ax.hlines(ev.level, seg[0], seg[1], colors=color, linestyles="-" if ev.pattern == "bos" else "-.",
                  linewidth=1.1,
                  label=w.once(ev.pattern.upper() if ev.pattern == "bos" else "CHoCH"))
        ax.annotate("BOS" if ev.pattern == "bos" else "CHoCH", ((seg[0] + seg[1]) / 2, ev.level),
                    fontsize=7, color=color, ha="center", va="bottom" if up else "top")
    elif ev.pattern == "liquidity" and ev.level is not None:
        end = ev.swept if ev.swept else ev.end
        seg = w.clip(ev.index, end)
        if seg is None:
            return
        ax.hlines(ev.level, seg[0], seg[1], colors="#8e24aa", linestyles="--", linewidth=1.0,
                  label=w.once("liquidity"))
        if ev.swept and w.lo <= ev.swept < w.hi:
            ax.plot([ev.swept], [ev.level], marker="x", color="#8e24aa", markersize=7)
    elif ev.pattern == "swing" and ev.level is not None and w.lo <= ev.index < w.hi:
        ax.plot([ev.index], [ev.level], marker="v" if up else "^", color="#424242", markersize=4,
                linestyle="none", label=w.once("swing"))


def _draw_series(w: _Window, xs: range, spec: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """previous_high_low as step lines, sessions as shading, retracements on a second axis."""
    ax = w.ax
    if spec.startswith("previous_high_low"):
        tf = spec.partition(":")[2] or "1D"
        ax.step(list(xs), [r[0] if r[0] is not None else float("nan") for r in rows], where="mid",
                color="#5d4037", linewidth=1.0, label=f"previous {tf} high")
        ax.step(list(xs), [r[1] if r[1] is not None else float("nan") for r in rows], where="mid",
                color="#5d4037", linewidth=1.0, linestyle=":", label=f"previous {tf} low")
    elif spec.startswith("sessions"):
        for x, r in zip(xs, rows, strict=True):
            if r[0]:
                ax.axvspan(x - 0.5, x + 0.5, color="#fff59d", alpha=0.35, linewidth=0,
                           label=w.once(spec.partition(":")[2]))
    elif spec.startswith("retracements"):
        ax2 = ax.twinx()
        ax2.plot(list(xs), [r[2] if r[2] is not None else float("nan") for r in rows], color="#00897b",
                 linewidth=0.8, alpha=0.6, label="deepest retracement %")
        ax2.set_ylabel("deepest retracement %")


def plot_detections(bars: Sequence[Bar], params: SmcParams, path: str, *, series: str | None = None,
                    time_zone: str = "UTC", first: int | None = None, count: int = 300) -> None:
    """Run the detectors over all ``bars`` and draw bars ``first .. first+count-1`` to ``path``.

    ``series``: also draw that series (``previous_high_low:TF`` as levels, ``sessions:...`` as
    shading); without it, the previous day's high/low are drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    from datetime import UTC, datetime

    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = len(bars)
    if n == 0:
        raise ValueError("no bars to plot")
    lo_i = max(0, n - count) if first is None else max(0, min(first, n - 1))
    hi_i = min(n, lo_i + count)  # exclusive
    window = bars[lo_i:hi_i]
    events = _events(bars, params)

    fig, ax = plt.subplots(figsize=(16, 8), dpi=110)
    xs = range(lo_i, hi_i)
    span = max(b.high for b in window) - min(b.low for b in window)
    _draw_candles(ax, xs, window, span)
    w = _Window(ax, lo_i, hi_i)
    for ev in events:
        _draw_event(w, ev, Rectangle)
    spec = series or "previous_high_low:1D"
    _draw_series(w, xs, spec, _series(bars, spec, params, time_zone)[lo_i:hi_i])

    step = max(1, (hi_i - lo_i) // 8)
    ticks = list(range(lo_i, hi_i, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([datetime.fromtimestamp(bars[i].timestamp_ms / 1000, UTC).strftime("%Y-%m-%d\n%H:%M")
                        for i in ticks], fontsize=8)
    ax.set_xlim(lo_i - 1, hi_i)
    # the window's prices decide the scale: old unmitigated zones far away would flatten the candles
    w_lo = min(b.low for b in window)
    w_hi = max(b.high for b in window)
    ax.set_ylim(w_lo - 0.08 * span, w_hi + 0.08 * span)
    mode = "compat" if params.compat else "default"
    ax.set_title(f"SMC detections, bars {lo_i}-{hi_i - 1} of {n}, L={params.swing_length}, {mode} mode")
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    ax.grid(alpha=0.2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
