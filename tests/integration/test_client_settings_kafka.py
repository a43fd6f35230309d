"""The user's kafka_clients settings reach librdkafka: merged over the runtime's settings by the
client_settings helpers, used by real clients against the test bed's broker."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from smc_runtime import client_settings as cs
from smc_runtime.config import KafkaSettings, ProcessorSettings
from smc_runtime.kafka import clients


@pytest.mark.kafka
def test_user_settings_reach_librdkafka(kafka_bootstrap: str, make_topic: Any) -> None:
    """Statistics are off by default: stats callbacks arriving prove the user's
    statistics.interval.ms reached librdkafka; the record round-trips with the other tunables."""
    topic = make_topic(partitions=1)
    settings = ProcessorSettings.model_validate({
        "consumer_group": f"g-{topic}", "input_topics": [topic], "processing_mode": "at_least_once",
        "kafka_clients": {
            "producer": {"linger.ms": 30, "compression.type": "zstd", "batch.size": 65536,
                         "statistics.interval.ms": 100},
            "consumer": {"fetch.min.bytes": 1, "fetch.wait.max.ms": 30, "statistics.interval.ms": 100},
        }})
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    user = settings.kafka_clients
    producer_stats: list[dict[str, Any]] = []
    consumer_stats: list[dict[str, Any]] = []
    pconf = cs.producer_config(clients.producer_settings(kafka, settings, "t.p", "unused"), user.producer)
    assert pconf["linger.ms"] == 30 and pconf["compression.type"] == "zstd" and pconf["acks"] == "all"
    producer = Producer({**pconf, "stats_cb": lambda s: producer_stats.append(json.loads(s))})
    producer.produce(topic, key=b"k", value=b"hello")
    assert producer.flush(10) == 0
    cconf = cs.consumer_config(clients.consumer_settings(kafka, settings, "t.c"), user.consumer)
    assert cconf["fetch.wait.max.ms"] == 30 and cconf["isolation.level"] == "read_committed"
    consumer = Consumer({**cconf, "stats_cb": lambda s: consumer_stats.append(json.loads(s))})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 20
        got = None
        while got is None and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got = msg.value()
        while not consumer_stats and time.monotonic() < deadline:
            consumer.poll(0.1)
    finally:
        consumer.close()
    producer.poll(0.3)
    assert got == b"hello"
    assert producer_stats and producer_stats[-1]["type"] == "producer"
    assert consumer_stats and consumer_stats[-1]["type"] == "consumer"
