"""HTTP health server on HEALTH_CHECK_PORT: /health (liveness + per-processor metrics), /ready
(assigned and restored), /status (assignment, lag, last commit, breaker, config summary).

Bodies are JSON; status 200 when the check passes, 503 otherwise. Nothing secret is reachable here:
the config summary comes from ``clients.describe`` and the processor statuses.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from smc_runtime.service.status import ProcessorStatus


class HealthReport:
    """Builds the three documents from the processor statuses (pure apart from the clock argument)."""

    def __init__(self, statuses: Mapping[str, ProcessorStatus], summary: Mapping[str, Any],
                 started_at: float) -> None:
        self.statuses = statuses
        self.summary = summary
        self.started_at = started_at

    def health(self, now: float, wall: float) -> tuple[int, dict[str, Any]]:
        processors = {name: status.health(now) for name, status in self.statuses.items()}
        healthy = bool(processors) and all(p["healthy"] for p in processors.values())
        doc = {
            "healthy": healthy,
            "processors": processors,
            "uptime_seconds": round(now - self.started_at, 3),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)),
        }
        return (200 if healthy else 503), doc

    def ready(self) -> tuple[int, dict[str, Any]]:
        processors = {name: status.is_ready() for name, status in self.statuses.items()}
        ready = bool(processors) and all(processors.values())
        return (200 if ready else 503), {"ready": ready, "processors": processors}

    def status(self, now: float, wall: float) -> tuple[int, dict[str, Any]]:
        _, health = self.health(now, wall)
        return 200, {
            "healthy": health["healthy"],
            "uptime_seconds": health["uptime_seconds"],
            "timestamp": health["timestamp"],
            "config": dict(self.summary),
            "processors": {name: status.detail(now) for name, status in self.statuses.items()},
        }


def _handler(report: HealthReport) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[], tuple[int, dict[str, Any]]]] = {
        "/health": lambda: report.health(time.monotonic(), time.time()),
        "/ready": report.ready,
        "/status": lambda: report.status(time.monotonic(), time.time()),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0].rstrip("/") or "/")
            if route is None:
                code, doc = 404, {"error": "not found", "paths": sorted(routes)}
            else:
                code, doc = route()
            body = json.dumps(doc, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # probes every few seconds would drown the structured logs

    return Handler


class HealthServer:
    def __init__(self, report: HealthReport, port: int, host: str = "0.0.0.0") -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(report))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
