"""The config model: defaults, env precedence, and errors that name every bad field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smc_runtime.config import ConfigError, ProcessingMode, load_config, parse_config

MINIMAL = {
    "stream_processors": {"p": {"consumer_group": "g", "input_topics": ["market_data.btc.trades"]}}
}


def test_minimal_config_gets_documented_defaults() -> None:
    cfg = parse_config(MINIMAL)
    proc = cfg.stream_processors["p"]
    assert proc.processing_mode is ProcessingMode.EXACTLY_ONCE
    assert cfg.monitoring.metrics_port == 8080
    assert cfg.monitoring.health_check_port == 8081
    assert proc.changelog_topic_name() == "g.changelog"


def test_env_overrides_yaml() -> None:
    raw = {**MINIMAL, "kafka": {"bootstrap_servers": "a:1"}, "monitoring": {"log_level": "INFO"}}
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "BATCH_SIZE": "42",
        "COMMIT_INTERVAL_MS": "20",
        "MAX_POLL_RECORDS": "7",
        "SNAPSHOT_INTERVAL_MS": "0",
        "METRICS_PORT": "9100",
        "HEALTH_CHECK_PORT": "9101",
        "LOG_LEVEL": "debug",
        "PROCESSOR_ID": "pod-3",
    }
    cfg = parse_config(raw, env)
    proc = cfg.stream_processors["p"]
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert (proc.batch_size, proc.commit_interval_ms, proc.max_poll_records) == (42, 20, 7)
    assert proc.snapshot_interval_ms == 0
    assert (cfg.monitoring.metrics_port, cfg.monitoring.health_check_port) == (9100, 9101)
    assert cfg.monitoring.log_level == "DEBUG"
    assert cfg.processor_id == "pod-3"


def test_every_problem_is_listed_with_its_path() -> None:
    raw = {
        "kafka": {"bootstrap_servers": "nohost"},
        "stream_processors": {
            "p": {"consumer_group": "g", "input_topics": ["bad topic!"], "batch_size": 0, "bogus": 1}
        },
    }
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    paths = {path for path, _ in err.value.problems}
    assert paths == {
        "kafka.bootstrap_servers",
        "stream_processors.p.input_topics.0",
        "stream_processors.p.batch_size",
        "stream_processors.p.bogus",
    }


def test_bad_env_value_is_reported_like_a_file_error() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL, {"BATCH_SIZE": "many"})
    assert err.value.problems[0][0] == "stream_processors.p.batch_size"


def test_output_topic_may_not_be_an_input() -> None:
    raw = {"stream_processors": {"p": {"consumer_group": "g", "input_topics": ["smc.alerts"]}}}
    with pytest.raises(ConfigError, match="both input and output"):
        parse_config(raw)


def test_processors_need_distinct_groups() -> None:
    proc = {"consumer_group": "same", "input_topics": ["t"]}
    with pytest.raises(ConfigError, match="own consumer_group"):
        parse_config({"stream_processors": {"a": proc, "b": proc}})


def test_sasl_requires_mechanism() -> None:
    with pytest.raises(ConfigError, match="sasl_mechanism"):
        parse_config({**MINIMAL, "kafka": {"security": {"protocol": "SASL_SSL"}}})


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = parse_config(MINIMAL, {"BATCH_SIZE": "5"})
    path = tmp_path / "streams-config.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path, {}) == cfg


def test_unreadable_and_invalid_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("stream_processors: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad, {})
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text(yaml.safe_dump("just a string"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar, {})


def test_snapshot_interval_defaults_to_a_second_and_is_not_negative() -> None:
    assert parse_config(MINIMAL).stream_processors["p"].snapshot_interval_ms == 1000
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL, {"SNAPSHOT_INTERVAL_MS": "-1"})
    assert err.value.problems[0][0] == "stream_processors.p.snapshot_interval_ms"


@pytest.mark.parametrize(
    "servers",
    [["k1:9092", "k2:9092"], "k1:9092,k2:9092", " k1:9092 , k2:9092 ", ("k1:9092", "k2:9092")],
)
def test_bootstrap_servers_as_yaml_list_or_comma_separated_string(servers: object) -> None:
    cfg = parse_config({**MINIMAL, "kafka": {"bootstrap_servers": servers}})
    assert cfg.kafka.bootstrap_servers == "k1:9092,k2:9092"


def test_bootstrap_servers_list_from_yaml_file_and_env_still_wins(tmp_path: Path) -> None:
    path = tmp_path / "streams-config.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "kafka": {"bootstrap_servers": ["a:1", "b:2"]}}))
    assert load_config(path, env={}).kafka.bootstrap_servers == "a:1,b:2"
    assert load_config(path, env={"KAFKA_BOOTSTRAP_SERVERS": "c:3"}).kafka.bootstrap_servers == "c:3"


@pytest.mark.parametrize("servers", [[], ["a:1", 7], ["nohost"]])
def test_bad_bootstrap_server_lists_are_refused(servers: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "kafka": {"bootstrap_servers": servers}})
    assert any(path == "kafka.bootstrap_servers" for path, _ in info.value.problems)
