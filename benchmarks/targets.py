"""How to start each processor under test as one process, with the same topics and commit interval.

``smc_stream`` writes a ``streams-config.yaml`` for ``smc-runtime run`` (all six output roles on fresh
topics); the peers are the programs in ``benchmarks.peers``. Every target writes its enriched trades keyed
by symbol with a ``trade_id`` (the bare loop copies the raw trade, whose id is ``"t"``), which is how the
latency collector matches an output to the moment its input was sent.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import yaml

from benchmarks.harness import Target, create_topics, unique

OUTPUT_ROLES = ("enriched_trades", "orderbook_metrics", "kline_metrics", "smc_signals", "alerts",
                "dead_letters")
PEERS = {
    "bare": "benchmarks.peers.bare_loop",
    "quix": "benchmarks.peers.quix_app",
    "faust": "benchmarks.peers.faust_app",
}
# Peers whose packages live in the bench venv (their client pins); the bare loop uses the driver's client.
VENV_PEERS = ("quix", "faust")
BENCH_PYTHON = Path(__file__).resolve().parents[1] / ".venv-bench" / "bin" / "python"
# Each framework's own default commit interval (what a user gets without tuning).
DEFAULT_COMMIT = {"smc-stream": "100 ms", "bare": "100 ms", "quix": "5 s", "faust": "2.8 s"}
FRAMEWORK_NAMES = {"smc-stream": "smc-stream", "bare": "bare confluent-kafka", "quix": "Quix Streams 3.28",
                   "faust": "faust-streaming 0.15", "floor": "floor (no processor)"}


def commit_label(framework: str, commit_interval_ms: int | None) -> str:
    if commit_interval_ms is None:
        return f"default ({DEFAULT_COMMIT[framework]})"
    return f"{commit_interval_ms} ms"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def smc_stream(bootstrap: str, inputs: list[str], partitions: int, mode: str, commit_interval_ms: int | None,
               workdir: Path, *, trade_windows_like_peers: bool = False, max_poll_records: int | None = None,
               batch_size: int | None = None, processor_overrides: dict[str, object] | None = None) -> Target:
    """``smc-runtime run`` on a generated config; output topics are created here (fresh names)."""
    run = unique("smc")
    outputs = {role: f"{run}.{role}" for role in OUTPUT_ROLES}
    create_topics(bootstrap, dict.fromkeys(outputs.values(), partitions))
    processor: dict[str, object] = {
        "consumer_group": f"{run}.group",
        "processing_mode": mode,
        "input_topics": inputs,
        "output_topics": outputs,
        "changelog_topic": f"{run}.changelog",
    }
    if commit_interval_ms is not None:
        processor["commit_interval_ms"] = commit_interval_ms
    if max_poll_records is not None:
        processor["max_poll_records"] = max_poll_records
    if batch_size is not None:
        processor["batch_size"] = batch_size
    processor.update(processor_overrides or {})  # e.g. kafka_clients (benchmarks/bench_client_tuning.py)
    if trade_windows_like_peers:  # same windows as the peer workload; the other indicators still run
        processor["enrichment"] = {"trades": {"sma_windows": [20], "vwap_window": 100}}
    metrics_port, health_port = free_port(), free_port()
    config = {
        "kafka": {"bootstrap_servers": bootstrap},
        "processor_id": f"{run}-0",
        "stream_processors": {"bench": processor},
        "monitoring": {"metrics_port": metrics_port, "health_check_port": health_port,
                       "log_level": "WARNING"},
    }
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{run}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Target(
        framework="smc-stream", mode=mode,
        commit=commit_label("smc-stream", commit_interval_ms),
        command=[sys.executable, "-m", "smc_runtime.cli", "run", "--config", str(path),
                 "--bind-address", "127.0.0.1"],
        group=f"{run}.group", output_topic=outputs["enriched_trades"],
        extra_output_topics=(outputs["dead_letters"],),
        env={"PYTHONUNBUFFERED": "1"},
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        log_path=str(workdir / f"{run}.log"),
    )


def peer_python(name: str, override: str | None = None) -> str:
    """The interpreter a peer runs on: Quix and Faust from the bench venv (``--peer-python`` or
    ``.venv-bench``), the bare loop from this interpreter, so it uses the same client as smc-stream."""
    if name not in VENV_PEERS:
        return sys.executable
    if override:
        return override
    return str(BENCH_PYTHON) if BENCH_PYTHON.exists() else sys.executable


def peer(name: str, bootstrap: str, input_topic: str, partitions: int, mode: str,
         commit_interval_ms: int | None, workdir: Path, python: str | None = None) -> Target:
    """One of the peer programs, reading ``input_topic`` and writing a fresh output topic."""
    run = unique(name)
    output = f"{run}.enriched"
    create_topics(bootstrap, {output: partitions})
    command = [peer_python(name, python), "-m", PEERS[name], "--bootstrap", bootstrap,
               "--input-topic", input_topic, "--output-topic", output, "--group", f"{run}.group",
               "--mode", mode, "--partitions", str(partitions), "--state-dir", str(workdir / "state" / run)]
    if commit_interval_ms is not None:
        command += ["--commit-interval-ms", str(commit_interval_ms)]
    commit = commit_label(name, commit_interval_ms)
    return Target(
        framework=name, mode=mode, commit=commit, command=command, group=f"{run}.group", output_topic=output,
        id_field=b'"t"' if name == "bare" else b'"trade_id"',
        env={"PYTHONUNBUFFERED": "1"}, log_path=str(workdir / f"{run}.log"),
    )


def floor(input_topic: str) -> Target:
    """No processor: the latency collector reads the steady input topic itself, so a steady run of
    this target measures the load generator, the broker and the collector alone. No processor's
    latency can be lower; on a busy or slow host this floor shows how much of a p99 is the host's."""
    return Target(
        framework="floor", mode="-", commit="-",
        command=[sys.executable, "-c", "import time; time.sleep(24 * 3600)"],
        group="", output_topic=input_topic, id_field=b'"t"',
    )
