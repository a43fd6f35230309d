"""signals: reading the runtime's /health document for the breaker state, and the CLI's election flags."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from smc_operator.cli import build_parser
from smc_operator.signals import _probe, breaker_open_in


def health(*states: str) -> dict[str, object]:
    return {"processors": {f"p{i}": {"checks": {"circuit_breaker": s}} for i, s in enumerate(states)}}


def test_any_processor_not_closed_means_open() -> None:
    assert breaker_open_in(health("closed", "open"))
    assert breaker_open_in(health("half_open"))
    assert not breaker_open_in(health("closed", "closed"))
    assert not breaker_open_in({"processors": "garbage"})
    assert not breaker_open_in({})


def test_a_pod_that_cannot_reach_the_broker_counts_as_open() -> None:
    """A loop blocked inside a transactional call by a broker that stopped answering cannot count
    failures; the runtime's broker probe says so in ``broker_reachable``."""
    doc = health("closed")
    doc["processors"]["p0"]["checks"]["broker_reachable"] = False  # type: ignore[index]
    assert breaker_open_in(doc)
    doc["processors"]["p0"]["checks"]["broker_reachable"] = True  # type: ignore[index]
    assert not breaker_open_in(doc)


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, object]]]:
    reply: dict[str, object] = {"status": 503, "body": health("open")}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(int(reply["status"]))  # type: ignore[call-overload]
            self.end_headers()
            self.wfile.write(json.dumps(reply["body"]).encode())

        def log_message(self, *_: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/health", reply
    srv.shutdown()
    srv.server_close()


def test_probe_reads_the_document_even_from_a_503(server: tuple[str, dict[str, object]]) -> None:
    url, reply = server
    assert _probe(url) is True  # /health answers 503 when unhealthy; the document still counts
    reply.update(status=200, body=health("closed"))
    assert _probe(url) is False
    reply.update(status=200, body=["not", "a", "document"])
    assert _probe(url) is None
    assert _probe("http://127.0.0.1:1/health") is None  # unreachable: unknown, not open


def test_leader_election_flags() -> None:
    args = build_parser().parse_args(
        ["-A", "--leader-election", "--identity", "x", "--lease-duration", "4", "--leader-election-id", "l"]
    )
    assert args.leader_election and args.identity == "x" and args.lease_duration == 4.0
    assert args.leader_election_id == "l" and args.renew_period == 5.0
