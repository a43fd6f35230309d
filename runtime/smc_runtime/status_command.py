"""``smc-runtime status``: print the running service's /status (or /health, /ready) document.

The container image has no curl; ``kubectl exec <pod> -- smc-runtime status`` is the equivalent of
``curl localhost:8081/status`` from inside the pod. The port comes from ``--port``, else
``HEALTH_CHECK_PORT`` (set in every pod the operator renders), else 8081. Exit status: 0 when the
endpoint answers 200 (for /status: the service is healthy), 1 when it answers 503, 2 when nothing
answers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

DEFAULT_PORT = 8081
ENDPOINTS = ("status", "health", "ready")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("endpoint", nargs="?", choices=ENDPOINTS, default="status",
                        help="which document to fetch (default: status)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"health port (default: $HEALTH_CHECK_PORT or {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="address of the service (default: 127.0.0.1)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
    parser.add_argument("--compact", action="store_true", help="one line of JSON instead of indented")


def fetch(host: str, port: int, endpoint: str, timeout: float) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body) of ``GET http://host:port/endpoint``."""
    url = f"http://{host}:{port}/{endpoint}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return int(exc.code), json.loads(body) if body else None


def main(args: argparse.Namespace) -> int:
    port = args.port if args.port is not None else int(os.environ.get("HEALTH_CHECK_PORT") or DEFAULT_PORT)
    try:
        code, doc = fetch(args.host, port, args.endpoint, args.timeout)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        sys.stderr.write(f"smc-runtime status: no answer from {args.host}:{port}/{args.endpoint}: {reason}\n")
        return 2
    sys.stdout.write(json.dumps(doc, indent=None if args.compact else 2, sort_keys=False) + "\n")
    return 0 if code == 200 else 1
