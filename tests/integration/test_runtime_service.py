"""The running service against the real broker: malformed records all land in the dead-letter
topic with their original bytes and reason/source headers while the process stays healthy; the
health, readiness, status and Prometheus endpoints report values that move as records flow; SIGTERM
stops the process cleanly and promptly.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

_TRADE = b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":%s,"q":"1","T":1,"m":false}'
MALFORMED: dict[str, tuple[bytes | None, str]] = {
    "invalid json": (b'{"e":"trade",', "invalid_json"),
    "wrong types": (_TRADE % b"true", "schema"),
    "missing fields": (b'{"e":"trade","s":"BTCUSDT","p":"1"}', "schema"),
    "NaN price": (_TRADE % b'"NaN"', "non_finite"),
    "negative price": (_TRADE % b'"-5"', "non_positive"),
    "zero price": (_TRADE % b'"0"', "non_positive"),
    "unknown type": (b'{"e":"funding","s":"BTCUSDT","r":"0.0001"}', "unknown_type"),
    "huge message": (b'{"e":"trade","pad":"' + b"x" * 200_000 + b'"}', "oversized"),
    "tombstone": (None, "invalid_json"),
}


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:{{(.*)}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_malformed_records_become_dead_letters_and_the_process_stays_healthy(
        kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path) -> None:
    topology = rs.make_topology(make_topic)
    processor = topology.processor(enrichment={"max_message_bytes": 65_536})
    rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {"main": processor}, processor_id="dlq-0")
    good = rs.market_data(3_000, symbols=3, seed=1)
    bad = [("trades", b"BTCUSDT", value) for value, _ in MALFORMED.values()]
    with rs.running(tmp_path / "config.yaml", tmp_path / "runtime.log") as runtime:
        runtime.wait_ready()
        rs.feed(kafka_bootstrap, topology, [*good[:1500], *bad, *good[1500:]])
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 60)
        code, health = rs.http_json(runtime.url("/health"))
        assert code == 200 and health["healthy"] is True
        assert health["processors"]["main"]["metrics"]["messages_processed"] == len(good) + len(bad)
        failed_reported = health["processors"]["main"]["metrics"]["messages_failed"]
        metrics = rs.http_text(f"http://127.0.0.1:{runtime.metrics_port}/metrics")
        assert runtime.terminate() == 0

    dead = rs.read_topic(kafka_bootstrap, topology.outputs["dead_letters"])
    by_value = {r.value or b"": dict(r.headers) for r in dead}
    trades_topic = topology.inputs["trades"]
    for what, (value, reason) in MALFORMED.items():
        headers = by_value.get(value or b"")
        assert headers is not None, f"{what}: not in the dead-letter topic"
        assert headers["reason"].decode() == reason, what
        assert headers["source_topic"].decode() == trades_topic
        assert headers["source_partition"].isdigit() and headers["source_offset"].isdigit()
        assert int(headers["source_timestamp"]) > 0
    assert failed_reported == len(dead) >= len(MALFORMED)
    assert _metric(metrics, "smc_runtime_dead_letters_total", reason="oversized") == 1
    assert _metric(metrics, "smc_runtime_messages_failed_total", reason="non_positive") == 2


def test_health_status_and_metrics_move_as_records_flow(kafka_bootstrap: str, make_topic: MakeTopic,
                                                        tmp_path: Path) -> None:
    topology = rs.make_topology(make_topic)
    rs.write_config(tmp_path / "config.yaml", kafka_bootstrap, {"main": topology.processor()},
                    processor_id="svc-0")
    with rs.running(tmp_path / "config.yaml", tmp_path / "runtime.log") as runtime:
        runtime.wait_ready()
        metrics_url = f"http://127.0.0.1:{runtime.metrics_port}/metrics"
        before = rs.http_text(metrics_url)
        code, health = rs.http_json(runtime.url("/health"))
        assert code == 200
        assert set(health) == {"healthy", "processors", "uptime_seconds", "timestamp"}
        main = health["processors"]["main"]
        assert {"state", "checks", "metrics"} <= set(main)
        assert set(main["metrics"]) == {"messages_processed", "messages_failed", "processing_latency_ms",
                                        "throughput_per_second"}
        assert main["metrics"]["messages_processed"] == 0

        rs.feed(kafka_bootstrap, topology, rs.market_data(20_000, symbols=4, seed=8), rate=5_000)
        code, health = rs.http_json(runtime.url("/health"))  # sampled while the tail still flows
        assert health["processors"]["main"]["metrics"]["throughput_per_second"] > 0
        rs.wait_until("input committed", lambda: rs.group_lag(kafka_bootstrap, topology) == 0, 60)
        time.sleep(1.5)  # gauges refresh every second
        code, health = rs.http_json(runtime.url("/health"))
        assert code == 200
        moved = health["processors"]["main"]["metrics"]
        assert moved["messages_processed"] == 20_000
        assert moved["processing_latency_ms"] > 0
        assert health["uptime_seconds"] > 0

        code, status = rs.http_json(runtime.url("/status"))
        assert code == 200
        detail = status["processors"]["main"]
        assert len(detail["assignment"]) == 9 and detail["restoring"] == []
        assert detail["last_commit"]["seconds_ago"] >= 0 and detail["transactions"]["committed"] > 0
        assert detail["circuit_breaker"] == "closed"
        assert set(detail["lag"].values()) == {0}
        assert status["config"]["kafka"]["bootstrap_servers"] == kafka_bootstrap
        assert rs.http_json(runtime.url("/ready"))[0] == 200

        after = rs.http_text(metrics_url)
        trades = topology.inputs["trades"]
        assert _metric(after, "smc_runtime_messages_processed_total", topic=trades) > _metric(
            before, "smc_runtime_messages_processed_total", topic=trades)
        for name in ("smc_runtime_transactions_committed_total",
                     "smc_runtime_end_to_end_latency_seconds_count",
                     "smc_runtime_processing_latency_seconds_count",
                     "smc_runtime_commit_latency_seconds_count",
                     "smc_runtime_output_records_total", "smc_runtime_changelog_records_total"):
            assert _metric(after, name) > _metric(before, name), name
        assert _metric(after, "smc_runtime_rebalances_total", kind="assign") >= 1
        assert _metric(after, "smc_runtime_smc_patterns_detected_total") > 0
        assert "smc_runtime_consumer_lag_messages{" in after
        assert _metric(after, "smc_runtime_circuit_breaker_state") == 0
        assert _metric(after, "smc_runtime_ready") == 1

        started = time.monotonic()
        assert runtime.terminate() == 0
        assert time.monotonic() - started < 15
