"""Both SMC engines refuse a snapshot written with another state layout version, and round-trip their own."""

from __future__ import annotations

import msgspec
import pytest

from smc_runtime.analytics.smc.bars import Bar
from smc_runtime.analytics.smc.engine import SmcEngine
from smc_runtime.analytics.smc.params import SmcParams
from smc_runtime.analytics.smc.series.engine import SeriesEngine, parse_series
from smc_runtime.analytics.smc.state_codec import StateCodec


class _Tiny(msgspec.Struct, array_like=True):
    version: int
    value: int


def test_codec_round_trips_and_names_the_engine_on_a_version_mismatch() -> None:
    codec = StateCodec(_Tiny, 2, "tiny")
    assert codec.decode(codec.encode(_Tiny(2, 7))) == _Tiny(2, 7)
    with pytest.raises(ValueError, match="unsupported tiny snapshot version 1"):
        codec.decode(codec.encode(_Tiny(1, 7)))


def _bump_version(snapshot: bytes) -> bytes:
    fields = msgspec.msgpack.decode(snapshot)
    assert isinstance(fields, list) and fields[0] == 1  # array_like state, version first
    fields[0] = 99
    return msgspec.msgpack.encode(fields)


def _bars(n: int) -> list[Bar]:
    bars = []
    for i in range(n):
        o, c = 100.0 + i % 7, 100.0 + i % 4
        bars.append(Bar(timestamp_ms=60_000 * i, open=o, high=max(o, c) + 1 + i % 5,
                        low=min(o, c) - 1 - i % 3, close=c, volume=1.0 + i))
    return bars


@pytest.mark.parametrize("engine", ["smc", "series"])
def test_engines_restore_their_own_snapshot_and_refuse_another_version(engine: str) -> None:
    eng: SmcEngine | SeriesEngine
    if engine == "smc":
        eng = SmcEngine(SmcParams())
    else:
        eng = SeriesEngine([parse_series("previous_high_low:1h")], compat=False)
    for bar in _bars(40):
        eng.on_bar(bar)
    data = eng.snapshot()
    assert type(eng).restore(data).snapshot() == data
    with pytest.raises(ValueError, match="snapshot version 99"):
        type(eng).restore(_bump_version(data))
