"""``smc-runtime detect``: the conformance command of SPEC section 7.

Reads a CSV of bars, feeds them one by one to the streaming detectors, calls ``finalize()`` and
prints every event alive at the end as one JSON object per line, sorted by pattern, index,
direction. It is how the detectors are checked against the reference library: keep it stable.
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

__all__ = ["InputError", "add_arguments", "detect_lines", "main", "read_bars"]

HEADER = ("timestamp_ms", "open", "high", "low", "close", "volume")


class InputError(ValueError):
    """Malformed input file; the message names the line."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of SPEC 7 (defaults follow the library: close break on, no close mitigation, no join)."""
    parser.add_argument("--input", required=True, help="CSV: timestamp_ms,open,high,low,close,volume")
    parser.add_argument("--compat", action="store_true", help="reproduce smartmoneyconcepts 0.0.27 exactly")
    parser.add_argument("--swing-length", type=int, required=True, help="swing_length L (>= 1)")
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


def detect_lines(bars: list[Bar], params: SmcParams) -> list[str]:
    """Run the engine over ``bars`` and return the output lines (raises ``InputError``)."""
    engine = SmcEngine(params, keep_final=True)
    for i, bar in enumerate(bars):
        try:
            engine.on_bar(bar)
        except InvalidBarError as exc:
            raise InputError(f"line {i + 2} (bar {i}): {exc.reason}") from None
    engine.finalize()
    return [json.dumps(conformance_dict(ev, params.compat)) for ev in engine.alive()]


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
    try:
        if args.input == "-":
            bars = read_bars(sys.stdin)
        else:
            with open(args.input, encoding="utf-8", newline="") as fh:
                bars = read_bars(fh)
        params = _params(args, bars)
        lines = detect_lines(bars, params)
    except (InputError, ValueError, OSError) as exc:
        print(f"smc-runtime detect: error: {exc}", file=sys.stderr)
        return 2
    try:
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
    except BrokenPipeError:  # reader went away (e.g. `| head`): not an error of ours
        sys.stderr.close()
    return 0
