"""The benchmark's summary table: drains with their steady latency, steady-only runs and the floor."""

from __future__ import annotations

from benchmarks import targets
from benchmarks.harness import DrainResult, SteadyResult
from benchmarks.run_all import drain_footnote, parse_args, summary_rows


def _steady(framework: str, p99: float, mode: str = "exactly_once", commit: str = "20 ms") -> SteadyResult:
    return SteadyResult(framework=framework, mode=mode, commit=commit, rate=5000.0, seconds=15.0, sent=10,
                        received=10, p50_ms=p99 / 2, p95_ms=p99, p99_ms=p99, max_ms=p99, cpu_s_per_1k=0.05,
                        peak_rss_mb=100.0)


def _drain(framework: str, rate: float) -> DrainResult:
    return DrainResult(framework=framework, mode="exactly_once", commit="20 ms", messages=300_000,
                       seconds=300_000 / rate, msgs_per_s=rate, cpu_s_per_1k=0.03, peak_rss_mb=120.0,
                       outputs=300_000, complete=True, startup_s=1.0)


def test_steady_only_runs_and_the_floor_get_rows_of_their_own() -> None:
    rows = summary_rows([], [_steady("floor", 80.0, "-", "-"), _steady("smc-stream", 300.0),
                             _steady("bare", 200.0)])
    assert [row[0] for row in rows] == [targets.FRAMEWORK_NAMES[f] for f in ("floor", "smc-stream", "bare")]
    floor, smc, bare = rows
    assert floor[3] == "-" and floor[5] == 80.0 and floor[6] is None  # no processor: no CPU column
    assert smc[5] == 300.0 and smc[6] == 0.05 and bare[5] == 200.0


def test_a_drain_row_carries_its_steady_latency_once() -> None:
    rows = summary_rows([_drain("smc-stream", 30_000.0), _drain("bare", 120_000.0)],
                        [_steady("smc-stream", 300.0), _steady("bare", 200.0)])
    assert len(rows) == 2
    assert rows[0][3] == "30,000" and rows[0][5] == 300.0 and rows[0][8] == "1.00x"
    assert rows[1][5] == 200.0 and rows[1][8] == "0.25x"


def test_the_timeout_footnote_only_when_a_drain_was_cut_short() -> None:
    cut = DrainResult(framework="quix", mode="exactly_once", commit="20 ms", messages=90_000, seconds=300.0,
                      msgs_per_s=300.0, cpu_s_per_1k=0.2, peak_rss_mb=150.0, outputs=90_000, complete=False,
                      startup_s=2.0)
    assert drain_footnote([]) is None
    assert drain_footnote([_drain("smc-stream", 30_000.0)]) is None
    note = drain_footnote([_drain("smc-stream", 30_000.0), cut])
    assert note is not None and note.startswith("*")
    rows = summary_rows([cut], [])
    assert rows[0][3].endswith("*")  # the row the note explains


def test_the_floor_target_reads_the_input_topic_with_the_raw_trade_id() -> None:
    target = targets.floor("bench.steady.x")
    assert target.output_topic == "bench.steady.x" and target.id_field == b'"t"'
    assert parse_args(["--floor"]).floor and not parse_args([]).floor
