"""Property-based fuzzing of ``decode`` and ``Pipeline.process`` with hostile records (issue 12).

Each example is a clean baseline per stream (a trade, a book snapshot, a closed kline per symbol),
then a hypothesis-drawn mix of clean records and hostile ones of every class: malformed and deeply
nested JSON, wrong types, integers beyond int64, non-finite / huge / tiny numbers, symbols with the
state-key separator, control characters or huge length, forward jumps of ids and times (and
far-past times), book messages with huge level counts, ~1 MB values and floods of random symbols
beyond the key cap.
Properties, for the default bounds and for the widest bounds the configuration accepts:

* no exception escapes ``process``;
* every output is JSON whose numbers are all finite (checked on the objects before encoding, since
  the encoder would write NaN as ``null``);
* a record yields at most one dead letter, and a hostile record yields exactly one, with a reason of
  its class (records whose fate depends on state, e.g. a depth jump on a stale book, may be ignored);
* afterwards every key snapshots, restores into a fresh pipeline, snapshots to the same bytes, and
  both pipelines process the next clean record identically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smc_runtime.config import ProcessorSettings
from smc_runtime.messages import _SYMBOL_RE, MAX_INT64, Rejection, decode
from smc_runtime.pipeline import OutputRecord, Pipeline

TRADES = "market_data.binance.fuzz.trades"
BOOK = "market_data.binance.fuzz.orderbook"
KLINES = "market_data.binance.fuzz.klines"
TOPICS = (TRADES, BOOK, KLINES)
SYMBOLS = ("BTCUSDT", "ETHUSDT")
T0 = 1_735_689_600_000
KEY_CAP = 12

DECODE_REASONS = frozenset({"invalid_json", "schema", "non_finite", "non_positive", "crossed_book",
                            "unknown_type", "oversized", "out_of_range", "invalid_symbol",
                            "invalid_interval", "too_deep", "too_many_levels"})
STATE_REASONS = frozenset({"duplicate", "out_of_order", "crossed_book", "id_jump", "time_jump",
                           "state_key_limit"})

DEFAULT = {"max_state_keys_per_partition": KEY_CAP}
WIDEST = {"max_state_keys_per_partition": KEY_CAP, "enrichment": {
    "bounds": {"min_price": 1e-100, "max_price": 1e50, "min_quantity": 1e-100, "max_quantity": 1e49,
               "max_volume": 1e49}}}
# every SMC context feature and series on (issue 15): the same hostile streams reach the new detectors
ALL_SMC = {"max_state_keys_per_partition": KEY_CAP, "detection": {
    "swing_length": 5, "internal_length": 2, "internal_confluence": True, "trend": True, "zones": True,
    "fvg_min_size": "atr:0.5", "fvg_mitigation": "ce", "inverse_fvg": True, "ob_atr_filter": 2.0,
    "breakers": True, "sweep_outcome": True,
    "series": ["previous_high_low:1h", "sessions:London", "retracements"]}}


class Rec:
    """One generated record: where it goes and what may become of it.

    ``reasons``: the dead-letter reasons its class allows; ``must_reject``: it must yield exactly one
    dead letter (else at most one)."""

    __slots__ = ("key", "must_reject", "partition", "reasons", "topic", "value")

    def __init__(self, topic: str, value: bytes, key: bytes | None = None, partition: int = 0,
                 reasons: frozenset[str] = frozenset(), must_reject: bool = False) -> None:
        self.topic = topic
        self.value = value
        self.key = key
        self.partition = partition
        self.reasons = reasons
        self.must_reject = must_reject

    def __repr__(self) -> str:  # ~1 MB values: falsifying examples stay readable
        key = self.key if self.key is None or len(self.key) <= 40 else self.key[:40] + b"..."
        value = self.value if len(self.value) <= 300 else self.value[:300] + b"..."
        return (f"Rec({self.topic!r}, {value!r} ({len(self.value)} bytes), key={key!r}, "
                f"partition={self.partition}, reasons={sorted(self.reasons)}, "
                f"must_reject={self.must_reject})")


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def _trade_doc(symbol: str, trade_id: int, price: Any = "100.5", qty: Any = "0.25",
               t: int = T0) -> dict[str, Any]:
    return {"e": "trade", "E": t, "s": symbol, "t": trade_id, "p": price, "q": qty, "T": t,
            "m": trade_id % 2 == 0}


def _kline_doc(symbol: str, start: int, closed: bool = True, interval: str = "1m",
               ohlc: tuple[Any, Any, Any, Any] = ("10", "11", "9", "10.5")) -> dict[str, Any]:
    o, h, lo, c = ohlc
    return {"e": "kline", "E": start, "s": symbol, "k": {
        "t": start, "T": start + 59_999, "s": symbol, "i": interval, "o": o, "h": h, "l": lo, "c": c,
        "v": "5", "n": 3, "x": closed, "q": "50", "V": "2", "Q": "20"}}


def _diff_doc(symbol: str, first: int, final: int, bids: list[list[Any]],
              asks: list[list[Any]]) -> dict[str, Any]:
    return {"e": "depthUpdate", "E": T0, "s": symbol, "U": first, "u": final, "b": bids, "a": asks}


def _snapshot_doc(last: int, bids: list[list[Any]], asks: list[list[Any]]) -> dict[str, Any]:
    return {"lastUpdateId": last, "bids": bids, "asks": asks}


class Clock:
    """Monotonic ids and times for the clean records of one example."""

    def __init__(self) -> None:
        self.trade_id = {s: 1000 for s in SYMBOLS}
        self.update_id = {s: 5000 for s in SYMBOLS}
        self.kline_start = {s: T0 for s in SYMBOLS}


def baseline(clock: Clock) -> list[Rec]:
    out: list[Rec] = []
    for s in SYMBOLS:
        out.append(Rec(TRADES, _dumps(_trade_doc(s, clock.trade_id[s]))))
        out.append(Rec(BOOK, _dumps(_snapshot_doc(clock.update_id[s], [["99", "1"], ["98", "2"]],
                                                  [["101", "1"], ["102", "2"]])), key=s.encode()))
        out.append(Rec(KLINES, _dumps(_kline_doc(s, clock.kline_start[s]))))
    return out


# -- record classes: each draws one record (clean ones advance the clock) ---------------------------------

finite_prices = st.floats(min_value=90.0, max_value=110.0, allow_nan=False).map(lambda x: round(x, 2))
hostile_numbers = st.sampled_from(["1e308", "1e300", "1e-30", "5e-324", "1e16", "nan", "inf", "-inf", "-1",
                                   "0", 1e308, -0.0, "1e400"])
out_of_int64 = st.one_of(st.integers(min_value=2**63, max_value=2**200), st.integers(max_value=-1))
bad_symbols = st.one_of(
    st.sampled_from(["Z|book", "BTCUSDT|1m", "BTC\nUSDT", "BTC\x00", "btcusdt", "", "BTC USDT", "A" * 33,
                     "ÄBC", "BTC\u2028"]),
    st.text(min_size=1, max_size=40),
    st.integers(min_value=33, max_value=200_000).map(lambda n: "X" * n),
)
wrong_types = st.one_of(st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                        st.from_regex(r"\A[a-z]{1,5}\Z").filter(
                            lambda t: t not in ("true", "false", "nan", "inf")),
                        st.none())
symbol_choice = st.sampled_from(SYMBOLS)


@st.composite
def clean_trade(draw: st.DrawFn, clock: Clock) -> Rec:
    s = draw(symbol_choice)
    clock.trade_id[s] += draw(st.integers(1, 3))
    return Rec(TRADES, _dumps(_trade_doc(s, clock.trade_id[s], str(draw(finite_prices)), "0.5",
                                         T0 + clock.trade_id[s] * 1000)), reasons=STATE_REASONS)


@st.composite
def clean_diff(draw: st.DrawFn, clock: Clock) -> Rec:
    s = draw(symbol_choice)
    first = clock.update_id[s] + 1
    clock.update_id[s] = first + draw(st.integers(0, 3))
    bids = [[str(round(draw(st.floats(90, 99.9)), 2)), draw(st.sampled_from(["0", "1.5", "3"]))]
            for _ in range(draw(st.integers(0, 40)))]
    asks = [[str(round(draw(st.floats(100.1, 110)), 2)), draw(st.sampled_from(["0", "1.5", "3"]))]
            for _ in range(draw(st.integers(0, 40)))]
    return Rec(BOOK, _dumps(_diff_doc(s, first, clock.update_id[s], bids, asks)), reasons=STATE_REASONS)


@st.composite
def clean_kline(draw: st.DrawFn, clock: Clock) -> Rec:
    s = draw(symbol_choice)
    closed = draw(st.booleans())
    start = clock.kline_start[s] + 60_000
    if closed:
        clock.kline_start[s] = start
    lo = draw(finite_prices)
    hi = lo + draw(st.floats(0, 5)).__round__(2)
    return Rec(KLINES, _dumps(_kline_doc(s, start, closed, ohlc=(str(lo), str(hi), str(lo), str(hi)))),
               reasons=STATE_REASONS)


@st.composite
def malformed_json(draw: st.DrawFn, clock: Clock) -> Rec:
    base = _dumps(_trade_doc("BTCUSDT", 1))
    value = draw(st.one_of(st.binary(min_size=1, max_size=200),
                           st.integers(1, len(base) - 1).map(lambda n: base[:n]),
                           st.sampled_from([b"null", b"[]", b"1", b'"x"', b"{", b"\xff\xfe", b"{}"])))
    return Rec(draw(st.sampled_from(TOPICS)), value, reasons=DECODE_REASONS, must_reject=True)


@st.composite
def deep_nesting(draw: st.DrawFn, clock: Clock) -> Rec:
    depth = draw(st.integers(2_000, 200_000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    value = b'{"e":"trade","x":' + opener * depth + b"1" + closer * depth + b"}"
    return Rec(TRADES, value, reasons=frozenset({"too_deep", "oversized"}), must_reject=True)


@st.composite
def wrong_type(draw: st.DrawFn, clock: Clock) -> Rec:
    doc = _trade_doc("BTCUSDT", 10**9)
    doc[draw(st.sampled_from(["s", "t", "p", "q", "T", "m"]))] = draw(wrong_types)
    return Rec(TRADES, _dumps(doc), reasons=DECODE_REASONS, must_reject=True)


@st.composite
def huge_int(draw: st.DrawFn, clock: Clock) -> Rec:
    kind = draw(st.sampled_from(["trade", "diff", "kline", "snapshot"]))
    n = draw(out_of_int64)
    if kind == "trade":
        doc = _trade_doc("BTCUSDT", 1)
        doc[draw(st.sampled_from(["t", "T", "E"]))] = n
        return Rec(TRADES, _dumps(doc), reasons=frozenset({"out_of_range"}), must_reject=True)
    if kind == "diff":
        return Rec(BOOK, _dumps(_diff_doc("BTCUSDT", 1, n, [], [])), reasons=frozenset({"out_of_range"}),
                   must_reject=True)
    if kind == "snapshot":
        return Rec(BOOK, _dumps(_snapshot_doc(n, [], [])), key=b"BTCUSDT",
                   reasons=frozenset({"out_of_range"}), must_reject=True)
    doc = _kline_doc("BTCUSDT", T0)
    doc["k"][draw(st.sampled_from(["t", "T", "n"]))] = n
    return Rec(KLINES, _dumps(doc), reasons=frozenset({"out_of_range", "schema"}), must_reject=True)


@st.composite
def bad_number(draw: st.DrawFn, clock: Clock) -> Rec:
    x = draw(hostile_numbers)
    reasons = frozenset({"out_of_range", "non_finite", "non_positive"})
    kind = draw(st.sampled_from(["trade", "diff", "kline"]))
    raw = x if isinstance(x, str) else repr(x)
    if kind == "trade":
        field = draw(st.sampled_from(["p", "q"]))
        value = _dumps(_trade_doc("BTCUSDT", 1, **{"price" if field == "p" else "qty": "@"})).replace(
            b'"@"', raw.encode() if raw == "1e400" else json.dumps(raw).encode())
        return Rec(TRADES, value, reasons=reasons | {"schema"}, must_reject=True)
    if kind == "diff":
        return Rec(BOOK, _dumps(_diff_doc("BTCUSDT", 1, 2, [[raw, "1"]], [])),
                   reasons=reasons | {"schema"}, must_reject=True)
    doc = _kline_doc("BTCUSDT", T0, ohlc=(raw, raw, raw, raw))
    return Rec(KLINES, _dumps(doc), reasons=reasons | {"schema"}, must_reject=True)


@st.composite
def ratio_extremes(draw: st.DrawFn, clock: Clock) -> Rec:
    """Prices at the edges of the bounds in turn (1e300 -> 1e-30 under the widest bounds)."""
    s = draw(symbol_choice)
    clock.trade_id[s] += 1
    price = draw(st.sampled_from(["1e50", "1e-100", "1e-12", "1e15", "1e300", "1e-30", "3e-100"]))
    qty = draw(st.sampled_from(["1e50", "1e-100", "1e15", "1e-12", "1"]))
    return Rec(TRADES, _dumps(_trade_doc(s, clock.trade_id[s], price, qty, T0 + clock.trade_id[s] * 1000)),
               reasons=frozenset({"out_of_range"}) | STATE_REASONS)


@st.composite
def bad_symbol(draw: st.DrawFn, clock: Clock) -> Rec:
    kind = draw(st.sampled_from(["trade", "diff", "kline", "snapshot"]))
    if kind == "snapshot":  # the symbol comes from the key, upper-cased ("" falls back to the topic)
        symbol = draw(bad_symbols.filter(lambda s: s != "" and _SYMBOL_RE.fullmatch(s.upper()) is None))
        return Rec(BOOK, _dumps(_snapshot_doc(1, [], [])), key=symbol.encode("utf-8", "surrogatepass"),
                   reasons=frozenset({"invalid_symbol", "schema"}), must_reject=True)
    symbol = draw(bad_symbols.filter(lambda s: _SYMBOL_RE.fullmatch(s) is None))
    doc = {"trade": _trade_doc(symbol, 1), "diff": _diff_doc(symbol, 1, 2, [], []),
           "kline": _kline_doc(symbol, T0)}[kind]
    topic = {"trade": TRADES, "diff": BOOK, "kline": KLINES}[kind]
    value = json.dumps(doc).encode("utf-8", "surrogatepass")
    return Rec(topic, value, reasons=frozenset({"invalid_symbol", "invalid_json"}), must_reject=True)


@st.composite
def forward_jump(draw: st.DrawFn, clock: Clock) -> Rec:
    s = draw(symbol_choice)
    kind = draw(st.sampled_from(["trade_id", "trade_time", "trade_past", "kline", "kline_far", "depth"]))
    if kind == "trade_id":
        doc = _trade_doc(s, draw(st.integers(2**63 - 10**6, MAX_INT64)), t=T0 + clock.trade_id[s] * 1000)
        return Rec(TRADES, _dumps(doc), reasons=frozenset({"id_jump"}), must_reject=True)
    if kind == "trade_time":
        t = draw(st.integers(T0 + 400 * 86_400_000, 253_402_300_799_999))
        doc = _trade_doc(s, clock.trade_id[s] + 1, t=t)
        return Rec(TRADES, _dumps(doc), reasons=frozenset({"time_jump"}), must_reject=True)
    if kind == "trade_past":  # far behind the key's day: would move its session back
        doc = _trade_doc(s, clock.trade_id[s] + 1, t=draw(st.integers(0, T0 - 400 * 86_400_000)))
        return Rec(TRADES, _dumps(doc), reasons=frozenset({"time_jump"}), must_reject=True)
    if kind == "kline":  # year ~5000 (closed or not: the jump is against the last closed)
        start = draw(st.integers(95_000_000_000_000, 253_402_300_000_000))
        return Rec(KLINES, _dumps(_kline_doc(s, start, draw(st.booleans()))),
                   reasons=frozenset({"time_jump"}), must_reject=True)
    if kind == "kline_far":  # year 300,000: beyond the calendar bound
        return Rec(KLINES, _dumps(_kline_doc(s, 9_400_000_000_000_000)), reasons=frozenset({"out_of_range"}),
                   must_reject=True)
    u = draw(st.integers(2**62 - 10, 2**62 + 10))
    return Rec(BOOK, _dumps(_diff_doc(s, clock.update_id[s] + 1, u, [["99.5", "1"]], [])),
               reasons=frozenset({"id_jump"}))  # a stale book ignores diffs: no dead letter then


@st.composite
def many_levels(draw: st.DrawFn, clock: Clock) -> Rec:
    s = draw(symbol_choice)
    n = draw(st.sampled_from([5001, 20_000, 60_000]))
    levels = [[f"{1 + i * 1e-4:.4f}", "1"] for i in range(n)]
    if draw(st.booleans()):
        return Rec(BOOK, _dumps(_snapshot_doc(clock.update_id[s], levels, [])), key=s.encode(),
                   reasons=frozenset({"too_many_levels", "oversized"}), must_reject=True)
    return Rec(BOOK, _dumps(_diff_doc(s, clock.update_id[s] + 1, clock.update_id[s] + 1, levels, [])),
               reasons=frozenset({"too_many_levels", "oversized"}), must_reject=True)


@st.composite
def allowed_many_levels(draw: st.DrawFn, clock: Clock) -> Rec:
    """A diff of 1,000-5,000 levels: within max_book_levels, applied (merged) in linear time."""
    s = draw(symbol_choice)
    first = clock.update_id[s] + 1
    clock.update_id[s] = first
    n = draw(st.integers(1000, 5000))
    levels = [[f"{50 + i * 1e-3:.3f}", "1"] for i in range(n)]
    return Rec(BOOK, _dumps(_diff_doc(s, first, first, levels, [])), reasons=STATE_REASONS)


@st.composite
def megabyte(draw: st.DrawFn, clock: Clock) -> Rec:
    size = draw(st.integers(1_048_577, 1_100_000))
    if draw(st.booleans()):  # garbage of about 1 MB
        return Rec(draw(st.sampled_from(TOPICS)), b"{" + b"x" * (size - 1),
                   key=b"K" * draw(st.integers(0, 5000)), reasons=frozenset({"oversized"}), must_reject=True)
    doc = _trade_doc("BTCUSDT", 1)
    doc["pad"] = "x" * size
    return Rec(TRADES, _dumps(doc), reasons=frozenset({"oversized"}), must_reject=True)


@st.composite
def symbol_flood(draw: st.DrawFn, clock: Clock) -> Rec:
    symbol = draw(st.from_regex(r"\A[A-Z0-9][A-Z0-9_.-]{0,31}\Z").filter(lambda s: s not in SYMBOLS))
    return Rec(TRADES, _dumps(_trade_doc(symbol, draw(st.integers(0, 10**9)))),
               partition=draw(st.integers(0, 1)), reasons=frozenset({"state_key_limit"}) | STATE_REASONS)


CLASSES: list[Callable[[Clock], st.SearchStrategy[Rec]]] = [
    clean_trade, clean_diff, clean_kline, malformed_json, deep_nesting, wrong_type, huge_int, bad_number,
    ratio_extremes, bad_symbol, forward_jump, many_levels, allowed_many_levels, megabyte, symbol_flood,
]


@st.composite
def streams(draw: st.DrawFn) -> list[Rec]:
    clock = Clock()
    records = baseline(clock)
    for _ in range(draw(st.integers(1, 40))):
        make = draw(st.sampled_from(CLASSES))
        records.append(draw(make(clock)))
    return records


# -- the properties -------------------------------------------------------------------------------------

def _assert_finite(obj: Any, path: str = "$") -> None:
    if isinstance(obj, float):
        assert math.isfinite(obj), f"non-finite number at {path}: {obj}"
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _assert_finite(v, f"{path}.{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _assert_finite(v, f"{path}[{i}]")


def _checking_encoder() -> Callable[[Any], bytes]:
    encode = msgspec.json.Encoder().encode

    def checked(obj: Any) -> bytes:
        _assert_finite(msgspec.to_builtins(obj))
        return encode(obj)

    return checked


def _pipeline(raw: dict[str, Any]) -> Pipeline:
    settings = ProcessorSettings.model_validate({"consumer_group": "g", "input_topics": list(TOPICS), **raw})
    pipeline = Pipeline(settings)
    pipeline._encode = _checking_encoder()  # outputs are checked for finiteness before encoding
    return pipeline


def run(records: list[Rec], raw: dict[str, Any]) -> None:
    pipeline = _pipeline(raw)
    widest = "bounds" in raw.get("enrichment", {})
    for offset, rec in enumerate(records):
        # what replay asks before it processes (kafka/recovery.py): never raises, names the key updated
        state_key = pipeline.state_key_of(rec.value, topic=rec.topic, key=rec.key)
        outputs = pipeline.process(rec.value, topic=rec.topic, partition=rec.partition, offset=offset,
                                   timestamp_ms=T0, key=rec.key)
        touched = pipeline.take_touched()
        assert touched <= {(rec.topic, rec.partition, state_key)}, (touched, state_key, rec.value[:120])
        _check_outputs(rec, outputs, widest)
    assert all(pipeline.state_key_count(t, p) <= KEY_CAP for t in TOPICS for p in (0, 1))
    _check_snapshots(pipeline, raw)


def _check_outputs(rec: Rec, outputs: list[OutputRecord], widest: bool) -> None:
    """At most one dead letter; exactly one for a hostile record; reasons of its class; finite JSON."""
    dead = [o for o in outputs if o.role == "dead_letters"]
    assert len(dead) <= 1, [dict(d.headers) for d in dead]
    # under the widest bounds a number the defaults refuse as out_of_range may be fine, and the record
    # then meets the key's state like any other
    lenient = widest and "out_of_range" in rec.reasons
    allowed = rec.reasons | STATE_REASONS if lenient else rec.reasons
    if rec.must_reject and not lenient:
        assert len(dead) == 1, f"no dead letter for {rec.value[:120]!r}: {[o.role for o in outputs]}"
    for d in dead:
        headers = dict(d.headers)
        reason = headers["reason"].decode()
        assert reason in allowed, (reason, headers["error"][:200], rec.value[:120])
        assert len(d.value) + len(d.key) + sum(len(k) + len(v) for k, v in d.headers) < 1_000_000
    for o in outputs:
        if o.role != "dead_letters":
            json.loads(o.value, parse_constant=_no_constants)


def _no_constants(name: str) -> float:
    raise AssertionError(f"non-finite JSON constant {name}")


def _check_snapshots(pipeline: Pipeline, raw: dict[str, Any]) -> None:
    restored = _pipeline(raw)
    keys = [(t, p, k) for t in TOPICS for p in (0, 1) for k in pipeline.state_keys(t, p)]
    for topic, partition, key in keys:
        data = pipeline.snapshot(topic, partition, key)
        assert data is not None
        restored.restore(topic, partition, key, data)
        assert restored.snapshot(topic, partition, key) == data
    probe = _dumps(_trade_doc("BTCUSDT", 10**9 + 5, "100", "1", T0 + 10**9))
    for p in (pipeline, restored):
        p._encode = msgspec.json.Encoder().encode
    a = pipeline.process(probe, topic=TRADES, partition=0, offset=10**6, timestamp_ms=T0)
    b = restored.process(probe, topic=TRADES, partition=0, offset=10**6, timestamp_ms=T0)
    assert [(o.role, o.key, o.value, o.headers) for o in a] == [
        (o.role, o.key, o.value, o.headers) for o in b]


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.data_too_large])


@FUZZ
@given(streams())
def test_hostile_streams_with_default_bounds(records: list[Rec]) -> None:
    run(records, DEFAULT)


@FUZZ
@given(streams())
def test_hostile_streams_with_the_widest_bounds_the_config_accepts(records: list[Rec]) -> None:
    run(records, WIDEST)


@FUZZ
@given(streams())
def test_hostile_streams_with_every_smc_feature_on(records: list[Rec]) -> None:
    run(records, ALL_SMC)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(
                                  st.sampled_from(["e", "s", "t", "p", "q", "T", "m", "k", "U", "u", "b", "a",
                                                   "lastUpdateId", "bids", "asks", "x"]), c, max_size=8),
                              max_leaves=30).map(lambda d: json.dumps(d, allow_nan=True).encode())),
       st.sampled_from([None, b"", b"BTCUSDT", b"Z|book", b"\x00"]))
def test_decode_never_raises(value: bytes, key: bytes | None) -> None:
    result = decode(value, topic=TRADES, key=key)
    if isinstance(result, Rejection):
        assert result.reason in DECODE_REASONS
