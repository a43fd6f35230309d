"""The peer workload itself: decode a trade, per-symbol SMA(20) and VWAP over the last 100 trades.

Every peer uses this same arithmetic so that the comparison measures framework cost, not different maths.
The window is a plain list of ``[price, quantity]`` pairs, which is what the frameworks' state stores can
serialise idiomatically (Quix state and Faust tables hold JSON-able values).
"""

from __future__ import annotations

import argparse
from typing import Any

SMA_WINDOW = 20
VWAP_WINDOW = 100


def enrich(trade: dict[str, Any], window: list[list[float]]) -> dict[str, Any]:
    """Append the trade to ``window`` (mutated, capped at VWAP_WINDOW) and return the enriched record."""
    price = float(trade["p"])
    qty = float(trade["q"])
    window.append([price, qty])
    if len(window) > VWAP_WINDOW:
        del window[0]
    recent = window[-SMA_WINDOW:]
    sma = sum(p for p, _ in recent) / len(recent)
    volume = sum(q for _, q in window)
    vwap = sum(p * q for p, q in window) / volume if volume > 0 else price
    return {
        "symbol": trade["s"],
        "trade_id": trade["t"],
        "price": price,
        "quantity": qty,
        "trade_time": trade["T"],
        "is_buyer_maker": trade["m"],
        "sma_20": sma,
        "vwap_100": vwap,
    }


def common_arguments(description: str) -> argparse.ArgumentParser:
    """The flags every peer program accepts (run_all passes the same ones to each)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--mode", choices=["exactly_once", "at_least_once"], default="exactly_once")
    parser.add_argument("--commit-interval-ms", type=int, default=None,
                        help="omit for the framework's own default")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of the input topic")
    parser.add_argument("--state-dir", default="/tmp/smc-bench-state")
    return parser
