"""``smc-runtime replay``: the whole pipeline over a JSONL file, without Kafka.

Input lines come in two shapes (mixable):

* an **envelope** ``{"topic": str, "value": <JSON object | string | null>, "key": str?,
  "partition": int?, "timestamp": int?}``; a string ``value`` is passed through as raw bytes
  (so malformed payloads can be replayed), an object is re-encoded compactly;
* a **raw** Binance payload (``{"e": "trade", ...}``): the topic is inferred as
  ``market_data.binance.<symbol>.<trades|orderbook|klines>`` from ``e`` and ``s``, the timestamp
  from ``E``/``T``. Lines that are not JSON objects go to topic ``replay.input`` (and become
  dead letters). Depth snapshots carry no symbol: replay them inside an envelope.

Offsets count per (topic, partition) from 0. Output: one ``<topic>.jsonl`` per output topic in
``--output DIR`` (dead letters as ``{"reason", "error", "source_*", "value"}``), or with ``-``
every record on stdout as ``{"topic", "key", "value"}``. A JSON summary goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from smc_runtime.config import ConfigError, ProcessorSettings, load_config
from smc_runtime.outputs import OutputRecord
from smc_runtime.pipeline import Pipeline
from smc_runtime.plugins import load_plugins

FALLBACK_TOPIC = "replay.input"
_STREAM_BY_EVENT = {"trade": "trades", "aggTrade": "trades", "depthUpdate": "orderbook", "kline": "klines"}


class ReplayRecord(NamedTuple):
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def parse_line(line: bytes, last_timestamp: int) -> ReplayRecord:
    """One input line -> the Kafka-like record it stands for (never raises)."""
    raw = line.rstrip(b"\r\n")
    try:
        doc = json.loads(raw)
    except ValueError:
        return ReplayRecord(FALLBACK_TOPIC, 0, None, raw, last_timestamp)
    if not isinstance(doc, dict):
        return ReplayRecord(FALLBACK_TOPIC, 0, None, raw, last_timestamp)
    if "topic" in doc and "value" in doc:
        value = doc["value"]
        payload: bytes | None
        if value is None:
            payload = None
        elif isinstance(value, str):
            payload = value.encode()
        else:
            payload = json.dumps(value, separators=(",", ":")).encode()
        key = doc.get("key")
        timestamp = doc.get("timestamp")
        partition = doc.get("partition", 0)
        return ReplayRecord(
            str(doc["topic"]),
            partition if isinstance(partition, int) else 0,
            key.encode() if isinstance(key, str) else None,
            payload,
            timestamp if isinstance(timestamp, int) else last_timestamp,
        )
    stream = _STREAM_BY_EVENT.get(str(doc.get("e")))
    symbol = doc.get("s")
    topic = (f"market_data.binance.{symbol.lower()}.{stream}" if stream and isinstance(symbol, str) and symbol
             else FALLBACK_TOPIC)
    timestamp = doc.get("E") or doc.get("T")
    return ReplayRecord(topic, 0, symbol.encode() if isinstance(symbol, str) else None, raw,
                        timestamp if isinstance(timestamp, int) else last_timestamp)


def read_records(lines: Iterable[bytes]) -> Iterator[ReplayRecord]:
    last_timestamp = 0
    for line in lines:
        if not line.strip():
            continue
        record = parse_line(line, last_timestamp)
        last_timestamp = record.timestamp_ms
        yield record


def dead_letter_document(record: OutputRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {name: value.decode("utf-8", "replace") for name, value in record.headers}
    doc["value"] = record.value.decode("utf-8", "replace")
    return doc


class _Sink:
    """Writes output records to per-topic files or to stdout."""

    def __init__(self, output: str, topics: dict[str, str]) -> None:
        self._topics = topics
        self._stdout = output == "-"
        self._dir = Path(output)
        self._files: dict[str, IO[bytes]] = {}
        if not self._stdout:
            self._dir.mkdir(parents=True, exist_ok=True)
            for topic in topics.values():
                self._files[topic] = open(self._dir / f"{topic}.jsonl", "wb")  # noqa: SIM115
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def write(self, records: Iterable[OutputRecord]) -> None:
        for record in records:
            topic = self._topics[record.role]
            self.counts[topic] += 1
            if record.role == "dead_letters":
                doc = dead_letter_document(record)
                self.reasons[doc.get("reason", "")] += 1
                value = json.dumps(doc, separators=(",", ":")).encode()
            else:
                value = record.value
            if self._stdout:
                key = record.key.decode("utf-8", "replace")
                sys.stdout.buffer.write(b'{"topic":' + json.dumps(topic).encode() + b',"key":'
                                        + json.dumps(key).encode() + b',"value":' + value + b"}\n")
            else:
                self._files[topic].write(value + b"\n")

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        if self._stdout:
            sys.stdout.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True,
                        help="JSONL file of raw messages or envelopes ('-' = stdin)")
    parser.add_argument("--output", required=True,
                        help="directory for <topic>.jsonl files, or '-' for stdout")
    parser.add_argument("--config", help="streams-config.yaml (default: built-in defaults)")
    parser.add_argument("--processor", help="stream processor name in the config (default: the first)")
    parser.add_argument("--no-finalize", action="store_true",
                        help="do not flush detectors at end of input (keeps live-stream semantics)")


def settings_from_args(args: argparse.Namespace) -> ProcessorSettings:
    if not args.config:
        return ProcessorSettings(consumer_group="smc-replay", input_topics=[FALLBACK_TOPIC])
    config = load_config(args.config)
    name = args.processor or next(iter(config.stream_processors))
    if name not in config.stream_processors:
        raise ConfigError([("stream_processors", f"no processor named {name!r}")])
    return config.stream_processors[name]


def replay(lines: Iterable[bytes], settings: ProcessorSettings, output: str, *,
           finalize: bool = True) -> dict[str, Any]:
    """Run the pipeline over input lines, write outputs, return the summary."""
    pipeline = Pipeline(settings)
    sink = _Sink(output, settings.output_topics.by_role())
    offsets: Counter[tuple[str, int]] = Counter()
    records_in = 0
    started = time.perf_counter()
    try:
        for record in read_records(lines):
            position = (record.topic, record.partition)
            offset = offsets[position]
            offsets[position] += 1
            records_in += 1
            sink.write(pipeline.process(record.value, topic=record.topic, partition=record.partition,
                                        offset=offset, timestamp_ms=record.timestamp_ms, key=record.key))
        if finalize:
            sink.write(pipeline.finalize())
    finally:
        sink.close()
    elapsed = time.perf_counter() - started
    return {
        "event": "replay_summary",
        "records_in": records_in,
        "outputs": dict(sorted(sink.counts.items())),
        "dead_letters_by_reason": dict(sorted(sink.reasons.items())),
        "elapsed_s": round(elapsed, 3),
        "records_per_s": round(records_in / elapsed) if elapsed > 0 else None,
    }


def main(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        load_plugins(settings.plugins)  # unknown plugins or bad params: exit 2 before reading input
    except ConfigError as exc:
        print(json.dumps({"event": "config_error", "problems": exc.problems}), file=sys.stderr)
        return 2
    try:
        source: IO[bytes] = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")  # noqa: SIM115
    except OSError as exc:
        print(json.dumps({"event": "input_error", "path": args.input, "error": str(exc)}), file=sys.stderr)
        return 2
    with source:
        summary = replay(source, settings, args.output, finalize=not args.no_finalize)
    print(json.dumps(summary), file=sys.stderr)
    return 0
