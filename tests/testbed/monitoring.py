"""``monitoring-check``: decodes ServiceMonitor/PodMonitor/PrometheusRule objects strictly into
prometheus-operator's own ``monitoring.coreos.com/v1`` Go types (``monitoring_check/main.go``), and parses
every PrometheusRule expression with Prometheus's PromQL parser (``promql/parser`` of the prometheus
module, the parser Prometheus itself loads rules with).

Why not the CRD YAML: the Go module proxy refuses the prometheus-operator main module (where the CRDs
live); its ``pkg/apis/monitoring`` module (types only) is served. Built like helm (pinned, cached under
the bed cache, ~1 min cold); ``MONITORING_CHECK_BIN`` overrides.

    python -m tests.testbed.monitoring      # prints the binary's path, building it when missing
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.testbed.common import cache_dir, progress

MODULE = "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring"
VERSION = "v0.95.2"  # go-partial.tsv: newest accepted on Go 1.26
PROMQL_MODULE = "github.com/prometheus/prometheus"
PROMQL_VERSION = "v0.316.0"  # go-partial.tsv: newest accepted on Go 1.26 (Prometheus 3.x numbering)
SOURCE = Path(__file__).resolve().parent / "monitoring_check" / "main.go"


def check_binary(build: bool = True) -> Path | None:
    explicit = os.environ.get("MONITORING_CHECK_BIN")
    if explicit:
        return Path(explicit)
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    home = cache_dir() / f"monitoring-check-{VERSION}-{PROMQL_VERSION}-{digest}"
    binary = home / "monitoring-check"
    if binary.exists() or not build:
        return binary if binary.exists() else None
    home.mkdir(parents=True, exist_ok=True)
    with (home / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        shutil.copy(SOURCE, home / "main.go")
        go_mod = (
            "module smcstream/monitoringcheck\n\ngo 1.26.0\n\n"
            f"require (\n\t{MODULE} {VERSION}\n\t{PROMQL_MODULE} {PROMQL_VERSION}\n)\n"
        )
        (home / "go.mod").write_text(go_mod)
        env = {
            **os.environ,
            "GOMODCACHE": os.environ.get("GOMODCACHE", str(cache_dir() / "go" / "mod")),
            "GOCACHE": os.environ.get("GOCACHE", str(cache_dir() / "go" / "build")),
            "GOFLAGS": "-mod=mod",
            "CGO_ENABLED": "0",
        }
        started = time.monotonic()
        progress(f"building monitoring-check against {MODULE}@{VERSION}, {PROMQL_MODULE}@{PROMQL_VERSION}")
        subprocess.run(["go", "mod", "tidy"], cwd=home, env=env, check=True)
        subprocess.run(["nice", "go", "build", "-o", str(binary), "."], cwd=home, env=env, check=True)
        progress(f"built monitoring-check in {time.monotonic() - started:.0f}s")
    return binary


if __name__ == "__main__":
    found = check_binary()
    print(found)
    sys.exit(0 if found is not None and found.exists() else 1)
