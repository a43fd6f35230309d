"""``smc-runtime replay``: both input shapes, per-topic files, stdout mode, summary, bundled sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smc_runtime.cli import main as cli_main
from smc_runtime.replay_command import FALLBACK_TOPIC, parse_line
from smc_runtime.sample_data import envelope_line, generate_market_data

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample_market_data.jsonl"


def test_parse_line_envelope_and_raw() -> None:
    env = parse_line(b'{"topic":"t","key":"K","partition":2,"timestamp":9,"value":{"e":"trade"}}', 0)
    assert (env.topic, env.partition, env.key, env.value, env.timestamp_ms) == (
        "t", 2, b"K", b'{"e":"trade"}', 9)
    raw_line = b'{"e":"kline","E":5,"s":"ETHUSDT","k":{}}'
    raw = parse_line(raw_line, 1)
    assert (raw.topic, raw.key, raw.value, raw.timestamp_ms) == (
        "market_data.binance.ethusdt.klines", b"ETHUSDT", raw_line, 5)
    broken = parse_line(b"{nope", 7)
    assert (broken.topic, broken.value, broken.timestamp_ms) == (FALLBACK_TOPIC, b"{nope", 7)
    passthrough = parse_line(b'{"topic":"t","value":"{\\"e\\":"}', 0)
    assert passthrough.value == b'{"e":'


def _write_input(path: Path) -> int:
    records = list(generate_market_data(["BTCUSDT"], trades_per_symbol=150, seed=9, malformed_every=40))
    lines = [envelope_line(r) for r in records]
    # half of the trade lines as raw payloads (topic inferred)
    lines = [r.value.decode() if r.topic.endswith(".trades") and i % 2 and b'"e":"trade"' in r.value
             and b'"t":' in r.value else line for i, (r, line) in enumerate(zip(records, lines, strict=True))]
    path.write_text("\n".join(lines) + "\n\n")
    return len(lines)


def test_replay_to_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = _write_input(tmp_path / "in.jsonl")
    assert cli_main(["replay", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out")]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert summary["records_in"] == n
    files = {p.name: p.read_text().splitlines() for p in (tmp_path / "out").iterdir()}
    assert len(files["market_data.enriched.trades.jsonl"]) == 150
    assert summary["outputs"]["market_data.enriched.trades"] == 150
    for name, lines in files.items():
        assert summary["outputs"].get(name.removesuffix(".jsonl"), 0) == len(lines)
    dead = [json.loads(line) for line in files["market_data.dead_letters.jsonl"]]
    assert dead and all({"reason", "error", "source_topic", "source_offset", "value"} <= set(d) for d in dead)
    assert sum(summary["dead_letters_by_reason"].values()) == len(dead)


def test_replay_to_stdout_tags_topics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_input(tmp_path / "in.jsonl")
    assert cli_main(["replay", "--input", str(tmp_path / "in.jsonl"), "--output", "-"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    summary = json.loads(captured.err.strip().splitlines()[-1])
    assert len(rows) == sum(summary["outputs"].values())
    assert {"market_data.enriched.trades", "market_data.dead_letters"} <= {r["topic"] for r in rows}
    assert all(isinstance(r["value"], dict) for r in rows)


def test_replay_with_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_input(tmp_path / "in.jsonl")
    config = {"stream_processors": {"p": {"consumer_group": "g", "input_topics": ["x"],
                                          "output_topics": {"enriched_trades": "custom.trades"}}}}
    (tmp_path / "c.yaml").write_text(json.dumps(config))
    assert cli_main(["replay", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o"),
                     "--config", str(tmp_path / "c.yaml")]) == 0
    assert len((tmp_path / "o" / "custom.trades.jsonl").read_text().splitlines()) == 150
    (tmp_path / "bad.yaml").write_text("stream_processors: {}")
    assert cli_main(["replay", "--input", str(tmp_path / "in.jsonl"), "--output", "-",
                     "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "config_error" in capsys.readouterr().err


def test_bundled_sample_replays_with_every_output_kind(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert SAMPLE.stat().st_size < 3 * 1024 * 1024
    assert cli_main(["replay", "--input", str(SAMPLE), "--output", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    outputs = summary["outputs"]
    for topic in ("market_data.enriched.trades", "market_data.enriched.orderbook",
                  "market_data.enriched.klines", "smc.signals", "smc.alerts", "market_data.dead_letters"):
        assert outputs.get(topic, 0) > 0, topic


def test_bundled_sample_is_what_the_generator_writes(tmp_path: Path) -> None:
    from smc_runtime.sample_data import main as generate

    assert generate(["--output", str(tmp_path / "s.jsonl")]) == 0
    assert (tmp_path / "s.jsonl").read_bytes() == SAMPLE.read_bytes()
