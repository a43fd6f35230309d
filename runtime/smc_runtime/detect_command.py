"""``smc-runtime detect``: the conformance command of SPEC section 7.

Reads a CSV of bars, feeds them one by one to the streaming detectors, calls ``finalize()`` and
prints every event alive at the end as one JSON object per line, sorted by pattern, index,
direction. It is how the detectors are checked against the reference library: keep it stable.

``--series NAME[:PARAM]`` (SPEC 7.1) prints one row per bar of a per-bar series instead, and
``--plot FILE.png`` draws the bars with the detections (optional extra ``plot``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from typing import TextIO

from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.analytics.smc.engine import InvalidBarError, SmcEngine
from smc_runtime.analytics.smc.events import conformance_dict
from smc_runtime.analytics.smc.params import SmcParams, parse_context_overrides
from smc_runtime.analytics.smc.series import SeriesEngine, SeriesSpec, parse_series
from smc_runtime.analytics.smc.series.engine import ROW_COLUMNS

__all__ = ["InputError", "add_arguments", "detect_lines", "main", "read_bars", "series_rows"]

HEADER = ("timestamp_ms", "open", "high", "low", "close", "volume")


class InputError(ValueError):
    """Malformed input file; the message names the line."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of SPEC 7 (defaults follow the library: close break on, no close mitigation, no join)."""
    parser.add_argument("--input", required=True, help="CSV: timestamp_ms,open,high,low,close,volume")
    parser.add_argument("--compat", action="store_true", help="reproduce smartmoneyconcepts 0.0.27 exactly")
    parser.add_argument(
        "--swing-length", type=int, default=None, help="swing_length L (>= 1; optional with --series: 10)"
    )
    parser.add_argument(
        "--close-break",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="BOS/CHoCH broken by the close (else high/low)",
    )
    parser.add_argument(
        "--close-mitigation",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="OB mitigated by the body (else the wick)",
    )
    parser.add_argument("--join-fvg", action="store_true", help="join consecutive same-direction FVGs")
    parser.add_argument(
        "--liquidity-range",
        type=float,
        default=None,
        metavar="ABS",
        help="absolute liquidity tolerance (default: compat (max high - min low)*0.01, else atr:0.5)",
    )
    parser.add_argument(
        "--series",
        default=None,
        metavar="NAME[:PARAM]",
        help="print a per-bar series instead: previous_high_low:TF (4h, 1D, W, M), sessions:SESSION "
        "(London, New York, ..., Custom:HH:MM-HH:MM), retracements",
    )
    parser.add_argument(
        "--time-zone",
        default="UTC",
        help="sessions: compat = the bars' zone as the library reads it (UTC+2 acts as UTC-2); "
        "default = the zone of the session hours (IANA name, DST-aware, or UTC+HH:MM)",
    )
    parser.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="also draw the bars and detections to FILE.png (needs the 'plot' extra: matplotlib)",
    )
    parser.add_argument(
        "--plot-from", type=int, default=None, metavar="I", help="first bar drawn (default: the last N)"
    )
    parser.add_argument("--plot-bars", type=int, default=300, metavar="N", help="bars drawn (default 300)")
    parser.add_argument(  # context features (issue 15 points 2-7; names as in SmcParams)
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="SMC context setting, repeatable, e.g. internal_length=5 zones=true (see the SMC README)",
    )


def _rows(stream: TextIO) -> Iterator[tuple[int, Bar]]:
    header = stream.readline()
    if not header:
        raise InputError("line 1: empty input, expected header " + ",".join(HEADER))
    if tuple(x.strip() for x in header.strip().split(",")) != HEADER:
        raise InputError(f"line 1: bad header {header.strip()!r}, expected {','.join(HEADER)}")
    for lineno, line in enumerate(stream, start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 6:
            raise InputError(f"line {lineno}: expected 6 fields, got {len(parts)}")
        try:
            ts_f = float(parts[0])
            vals = [float(x) for x in parts[1:]]
        except ValueError as exc:
            raise InputError(f"line {lineno}: not a number ({exc})") from None
        if not math.isfinite(ts_f) or ts_f != int(ts_f):
            raise InputError(f"line {lineno}: timestamp_ms must be an integer")
        yield lineno, Bar(int(ts_f), vals[0], vals[1], vals[2], vals[3], vals[4])


def read_bars(stream: TextIO) -> list[Bar]:
    """Parse the whole CSV (raises ``InputError``); validation happens in the engine."""
    return [bar for _, bar in _rows(stream)]


def _feed(engine: SmcEngine | SeriesEngine, bars: list[Bar], refused: type[ValueError]) -> None:
    """Every bar into ``engine``, then ``finalize``; a bar it refuses (``refused``) is an input error
    naming the CSV line."""
    for i, bar in enumerate(bars):
        try:
            engine.on_bar(bar)
        except refused as exc:
            raise InputError(f"line {i + 2} (bar {i}): {exc}") from None
    engine.finalize()


def detect_lines(bars: list[Bar], params: SmcParams) -> list[str]:
    """Run the engine over ``bars`` and return the output lines (raises ``InputError``)."""
    engine = SmcEngine(params, keep_final=True)
    _feed(engine, bars, InvalidBarError)
    return [json.dumps(conformance_dict(ev, params.compat)) for ev in engine.alive()]


def series_rows(
    bars: list[Bar], spec: SeriesSpec, *, compat: bool, swing_length: int
) -> list[dict[str, object]]:
    """Every bar's row of one series (SPEC 7.1) as dicts: ``index``, ``timestamp_ms``, the columns."""
    engine = SeriesEngine([spec], compat=compat, swing_length=swing_length, keep_rows=True)
    _feed(engine, bars, ValueError)
    cols = ROW_COLUMNS[spec.kind]
    return [
        {"index": i, "timestamp_ms": bars[i].timestamp_ms, **dict(zip(cols, row, strict=True))}
        for i, row in enumerate(engine.rows(spec))
    ]


def _params(args: argparse.Namespace, bars: list[Bar]) -> SmcParams:
    if args.liquidity_range is not None:
        liq = f"abs:{float(args.liquidity_range)!r}"
    elif args.compat:
        liq = "range:0.01"
    else:
        liq = "atr:0.5"
    return SmcParams(
        swing_length=args.swing_length,
        close_break=args.close_break,
        close_mitigation=args.close_mitigation,
        join_fvg=args.join_fvg,
        liquidity_range=liq,
        compat=args.compat,
        **parse_context_overrides(getattr(args, "param", None)),  # type: ignore[arg-type]
    )


def main(args: argparse.Namespace) -> int:
    """Run the command; 0 on success, 2 with the reason on stderr for bad input or flags."""
    if args.swing_length is None:
        if not args.series:
            print("smc-runtime detect: error: --swing-length is required", file=sys.stderr)
            return 2
        args.swing_length = 10
    try:
        if args.input == "-":
            bars = read_bars(sys.stdin)
        else:
            with open(args.input, encoding="utf-8", newline="") as fh:
                bars = read_bars(fh)
        params = _params(args, bars)
        if args.series:
            spec = parse_series(args.series, args.time_zone)
            rows = series_rows(bars, spec, compat=args.compat, swing_length=args.swing_length)
            lines = [json.dumps(row) for row in rows]
        else:
            lines = detect_lines(bars, params)
        if args.plot:
            from smc_runtime.plot import plot_detections  # optional extra: imported only when asked

            plot_detections(bars, params, args.plot, series=args.series, time_zone=args.time_zone,
                            first=args.plot_from, count=args.plot_bars)
    except ImportError as exc:
        print(f"smc-runtime detect: error: --plot needs the 'plot' extra ({exc})", file=sys.stderr)
        return 2
    except (InputError, ValueError, OSError) as exc:
        print(f"smc-runtime detect: error: {exc}", file=sys.stderr)
        return 2
    try:
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
    except BrokenPipeError:  # reader went away (e.g. `| head`): not an error of ours
        sys.stderr.close()
    return 0
