"""Real Kafka + Kubernetes test bed provisioned from package registries (no Docker).

`python -m tests.testbed up|down|env|status|run-suite` drives it; pytest fixtures in `tests/conftest.py`
use `acquire`/`release` from here. See `bed.py` (lifecycle), `kafka.py` and `kube.py` (components).
"""

from .bed import ALL, Lease, acquire, down, env_file, env_vars, process_env, release, run_suite, status, up
from .common import TestbedError, cache_dir, load_state, testbed_dir

__all__ = [
    "ALL",
    "Lease",
    "TestbedError",
    "acquire",
    "cache_dir",
    "down",
    "env_file",
    "env_vars",
    "load_state",
    "process_env",
    "release",
    "run_suite",
    "status",
    "testbed_dir",
    "up",
]
