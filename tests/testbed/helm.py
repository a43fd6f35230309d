"""The ``helm`` CLI for tests, built from its Go module like the bed's other binaries (pinned, cached).

``go install helm.sh/helm/v3/cmd/helm@<pin>`` builds from the module's own go.mod (no wrapper module
needed, unlike Kubernetes). Module and build caches live under the bed cache, so a second build only
links; the binary is kept as ``<cache>/helm-<version>/helm``. ``HELM_BIN`` overrides (a helm you trust).

    python -m tests.testbed.helm      # prints the binary's path, building it when missing (~3 min cold)
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.testbed.common import cache_dir, progress

HELM_MODULE = "helm.sh/helm/v3"
HELM_VERSION = "v3.21.4"  # go-partial.tsv: newest v3 that go get / go mod tidy accepted on Go 1.26


def helm_binary(build: bool = True) -> Path | None:
    """Path of a usable helm: ``HELM_BIN``, else the cached build (built now when ``build``)."""
    explicit = os.environ.get("HELM_BIN")
    if explicit:
        return Path(explicit)
    home = cache_dir() / f"helm-{HELM_VERSION}"
    binary = home / "helm"
    if binary.exists():
        return binary
    if not build:
        return None
    home.mkdir(parents=True, exist_ok=True)
    with (home / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per cache (parallel test runs)
        if binary.exists():
            return binary
        env = {
            **os.environ,
            "GOBIN": str(home),
            "GOMODCACHE": os.environ.get("GOMODCACHE", str(cache_dir() / "go" / "mod")),
            "GOCACHE": os.environ.get("GOCACHE", str(cache_dir() / "go" / "build")),
            "GOFLAGS": "-mod=mod",
            "CGO_ENABLED": "0",
        }
        started = time.monotonic()
        progress(f"building helm {HELM_VERSION} from {HELM_MODULE} (cold: a few minutes)")
        version_flag = f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"
        subprocess.run(
            ["nice", "go", "install", f"-ldflags={version_flag}", f"{HELM_MODULE}/cmd/helm@{HELM_VERSION}"],
            env=env,
            check=True,
        )
        progress(f"built helm in {time.monotonic() - started:.0f}s")
    return binary


if __name__ == "__main__":
    found = helm_binary()
    print(found)
    sys.exit(0 if found is not None and found.exists() else 1)
