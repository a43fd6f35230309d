"""No record may stop a processor (issue 12, second "Done when" bullet), against the real broker.

More than 10,000 hostile records of every class of the issue (tests/integration/hostile_records.py:
malformed and deeply nested JSON, wrong types, integers beyond int64, prices near 1e308, symbols
with '|' or control characters, forward id/time jumps, order-book diffs far above the level limit,
~1 MB and 2 MB values, a flood of random symbols) are mixed with clean "canary" market data and fed
while the runtime runs; it is killed with SIGKILL twice mid-stream and restarted each time. Then:

- the process recovered every time and never exited on its own (no crash loop);
- every input record is accounted for: a dead letter with the class's reason, matched by source
  topic, partition and offset (exactly one), or outputs; no dead letter without its input record;
- all outputs equal the oracle (the Pipeline over the committed input): exactly once;
- the canary symbols' outputs are byte-identical to a run over the canary records alone;
- no transaction aborted (no abort loop), and no output needed the loop's size fallback.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from smc_runtime.config import ProcessorSettings, parse_config
from smc_runtime.pipeline import Pipeline
from tests.integration import hostile_records as hr
from tests.integration import runtime_support as rs
from tests.testbed.fixture_types import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CANARIES = 20_000
CANARY_SYMBOLS = 4
FEED_RATE = 1_000.0  # records/s: ~30 s of feed, both kills land mid-stream
INPUT_MAX_MESSAGE_BYTES = 3_000_000  # the input topics accept the 2 MB records (the runtime refuses them)
KILL_AFTER_S = (5.0, 7.0)
TP = tuple[str, int]
Coords = tuple[str, int, int]


def mix(rng: random.Random, canary: list[tuple[str, bytes, bytes]],
        hostile: list[hr.Hostile]) -> list[tuple[str, bytes, bytes]]:
    """The first 1,000 canary records first (their state keys exist before any flood), then canary
    and hostile records merged at random, each keeping its order."""
    head, rest = canary[:1_000], canary[1_000:]
    merged: list[tuple[str, bytes, bytes]] = list(head)
    i = j = 0
    while i < len(rest) or j < len(hostile):
        left_c, left_h = len(rest) - i, len(hostile) - j
        if rng.random() < left_c / (left_c + left_h):
            merged.append(rest[i])
            i += 1
        else:
            merged.append((hostile[j].kind, hostile[j].key, hostile[j].value))
            j += 1
    return merged


def oracle(settings: ProcessorSettings, inputs: list[rs.Record]) -> tuple[rs.Outputs, dict[Coords, int]]:
    """``rs.reference_outputs`` plus the number of outputs (dead letters included) of each record."""
    pipeline = Pipeline(settings)
    by_partition: dict[TP, list[rs.Record]] = collections.defaultdict(list)
    for record in inputs:
        by_partition[(record.topic, record.partition)].append(record)
    outputs: rs.Outputs = {role: [] for role in rs.ROLES}
    produced: dict[Coords, int] = {}
    for tp in sorted(by_partition):
        for r in sorted(by_partition[tp], key=lambda rec: rec.offset):
            outs = pipeline.process(r.value, topic=r.topic, partition=r.partition, offset=r.offset,
                                    timestamp_ms=r.timestamp_ms, key=r.key)
            produced[(r.topic, r.partition, r.offset)] = len(outs)
            for out in outs:
                outputs[out.role].append((out.key, out.value, tuple(out.headers)))
    return outputs, produced


def header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return None


def event_type(value: bytes | None) -> str:
    try:
        doc = json.loads(value or b"")
    except ValueError:
        return "unparsable"
    return str(doc.get("e", "snapshot")) if isinstance(doc, dict) else "non-object"


def only_keys(outputs: rs.Outputs, keys: set[bytes]) -> rs.Outputs:
    return {role: [r for r in records if r[0] in keys] for role, records in outputs.items()}


def log_messages(log: Path) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            counts[json.loads(line).get("msg", "")] += 1
    return counts


def test_hostile_records_never_stop_the_processor(kafka_bootstrap: str, make_topic: MakeTopic,
                                                  tmp_path: Path) -> None:
    big = {"max.message.bytes": str(INPUT_MAX_MESSAGE_BYTES)}
    inputs = {kind: make_topic(partitions=3, config=big, prefix=f"rt-hostile-in-{kind}")
              for kind in ("trades", "orderbook", "klines")}
    outputs = {role: make_topic(partitions=2, prefix=f"rt-hostile-out-{role}") for role in rs.ROLES}
    topology = rs.Topology(inputs, outputs, group=f"rt-hostile-{time.time_ns()}")
    config = tmp_path / "streams-config.yaml"
    doc = rs.write_config(config, kafka_bootstrap,
                          {"main": topology.processor(snapshot_interval_ms=1_500)}, processor_id="hostile-0")
    settings = parse_config(doc).stream_processors["main"]

    rng = random.Random(1212)
    canary = [(kind, key, value) for kind, key, value in rs.market_data(CANARIES, symbols=CANARY_SYMBOLS,
                                                                        seed=31)]
    canary_keys = {key for _, key, _ in canary}
    hostile = hr.interleave(rng, hr.every_class(seed=77))
    assert len(hostile) >= 10_000
    expected_reason: dict[tuple[str, bytes], str | None] = {}
    class_of: dict[tuple[str, bytes], str] = {}
    for record in hostile:
        ident = (topology.inputs[record.kind], record.value)
        assert expected_reason.get(ident, record.expected) == record.expected, record.cls
        expected_reason[ident] = record.expected
        class_of[ident] = record.cls
    classes = collections.Counter(r.cls for r in hostile)
    messages = mix(rng, canary, hostile)

    log = tmp_path / "runtime.log"
    runtime = rs.RuntimeProcess(config, log).start()
    kills: list[str] = []
    crashes: list[int] = []

    def supervise() -> bool:
        """A restartPolicy: a runtime that exited on its own is started again (and remembered)."""
        nonlocal runtime
        if not runtime.alive():
            assert runtime.proc is not None
            crashes.append(runtime.proc.returncode)
            runtime = rs.RuntimeProcess(config, log).start()
        return rs.group_lag(kafka_bootstrap, topology) == 0

    try:
        runtime.wait_ready(90)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fed = pool.submit(rs.feed, kafka_bootstrap, topology, messages, FEED_RATE,
                              INPUT_MAX_MESSAGE_BYTES)
            for delay in KILL_AFTER_S:
                time.sleep(delay)
                assert runtime.alive(), f"exited before kill {len(kills) + 1}:\n{runtime.log_tail(40)}"
                assert not fed.done(), "input fully fed before the kill: feed more slowly"
                runtime.kill()
                kills.append(f"kill {len(kills) + 1}, group lag {rs.group_lag(kafka_bootstrap, topology)}")
                runtime = rs.RuntimeProcess(config, log).start()
                runtime.wait_ready(90)
            assert fed.result() == len(messages)
        try:
            rs.wait_until("all input committed", supervise, 300, 1.0)
        except AssertionError:
            runtime.dump_stacks()
            raise AssertionError(runtime.log_tail(60)) from None
        metrics = rs.http_text(f"http://127.0.0.1:{runtime.metrics_port}/metrics")
        assert runtime.terminate() == 0, runtime.log_tail()
    finally:
        runtime.kill()
    assert len(kills) == 2
    assert crashes == [], f"the runtime exited on its own (exit codes {crashes}):\n{runtime.log_tail(60)}"

    committed_inputs = rs.read_inputs(kafka_bootstrap, topology)
    assert len(committed_inputs) == len(messages)
    expected, produced = oracle(settings, committed_inputs)
    actual = rs.actual_outputs(kafka_bootstrap, topology)

    # Every dead letter names its input record; every hostile record got exactly its reason.
    letters: dict[Coords, list[str | None]] = collections.defaultdict(list)
    for _, _, headers in actual["dead_letters"]:
        coords = (header(headers, "source_topic"), header(headers, "source_partition"),
                  header(headers, "source_offset"))
        assert None not in coords, headers
        letters[(str(coords[0]), int(str(coords[1])), int(str(coords[2])))].append(header(headers, "reason"))
    by_coords = {(r.topic, r.partition, r.offset): r for r in committed_inputs}
    assert set(letters) <= set(by_coords), "dead letters without an input record"
    wrong: collections.Counter[str] = collections.Counter()
    unaccounted: collections.Counter[str] = collections.Counter()
    kind_of = {topic: kind for kind, topic in topology.inputs.items()}
    for coords, record in by_coords.items():
        got = letters.get(coords, [])
        if record.key in canary_keys:
            want, cls = None, "canary"
        else:
            ident = (record.topic, record.value or b"")
            assert ident in expected_reason, f"unknown input record {coords}"
            want, cls = expected_reason[ident], class_of[ident]
        if want is None:
            if got:
                wrong[f"valid record dead-lettered as {got}"] += 1
        elif got != [want]:
            wrong[f"expected [{want}], got {got}"] += 1
        if not got and not produced.get(coords):
            unaccounted[f"{cls} {kind_of[record.topic]} {event_type(record.value)}"] += 1
    assert not wrong, f"reasons differ: {dict(wrong)} (classes fed: {dict(classes)})"

    # Exactly once: the committed outputs are the oracle's, records and order per key.
    assert rs.compare(expected, actual) == []
    # Records without any output or dead letter: only depth diffs while their book waits for a
    # snapshot (not synced yet, or stale after a sequence gap: documented, the book publishes nothing).
    waiting = {k: n for k, n in unaccounted.items() if k.endswith(" orderbook depthUpdate")}
    assert unaccounted == waiting, f"records that produced nothing: {dict(unaccounted)}"

    # The canaries' outputs are byte-identical to a run over the canary records alone.
    canary_only, _ = oracle(settings, [r for r in committed_inputs if r.key in canary_keys])
    canary_expected = only_keys(canary_only, canary_keys)
    canary_actual = only_keys(actual, canary_keys)
    assert sum(len(v) for v in canary_expected.values()) > CANARIES // 2
    assert rs.compare(canary_expected, canary_actual) == []
    # Same bytes in the same order per symbol (alerts and signals of a symbol come from several
    # input topics, whose relative order is not defined: compared as multisets above).
    for role in rs.ORDERED_ROLES:
        for key in canary_keys:
            assert ([r for r in canary_expected[role] if r[0] == key]
                    == [r for r in canary_actual[role] if r[0] == key]), (role, key)

    # ~1 MB and 2 MB values were dead-lettered with a capped value that fits the producer.
    for size, count in ((1_000_000, 12), (2_000_000, 3)):
        capped = [(v, h) for _, v, h in actual["dead_letters"] if header(h, "original_size") == str(size)]
        assert len(capped) == count, size
        assert all(header(h, "truncated") == "true" and len(v) < settings.max_record_bytes for v, h in capped)

    # No abort loop: no transaction aborted at all (the kills abort nothing themselves: the next
    # instance's init_transactions does), and no record needed the loop's size fallback.
    messages_logged = log_messages(log)
    assert messages_logged["aborting transaction"] == 0, runtime.log_tail(60)
    assert messages_logged["output record too large for the producer: replaced by a capped dead letter"] == 0
    assert "smc_runtime_transactions_aborted_total{" not in metrics
    assert messages_logged["partitions assigned"] >= 3  # started three times, restored twice
