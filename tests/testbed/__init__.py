"""Real Kafka + Kubernetes test bed provisioned from package registries (no Docker).

`python -m tests.testbed up|down|env|status|run-suite` drives it; pytest fixtures in `tests/conftest.py`
use `acquire`/`release` from here. See `bed.py` (lifecycle), `kafka.py`, `kube.py` and `node.py`
(components), `network.py` (packages, pod bridge) and `images.py` (container images).
"""

from .bed import (
    ALL,
    Lease,
    acquire,
    down,
    ensure_images,
    env_file,
    env_vars,
    load_images,
    process_env,
    release,
    run_suite,
    status,
    up,
)
from .common import TestbedError, cache_dir, load_state, testbed_dir

__all__ = [
    "ALL",
    "Lease",
    "TestbedError",
    "acquire",
    "cache_dir",
    "down",
    "ensure_images",
    "env_file",
    "env_vars",
    "load_images",
    "load_state",
    "process_env",
    "release",
    "run_suite",
    "status",
    "testbed_dir",
    "up",
]
