# smc-stream developer entry points. Everything installs into .venv and caches slow builds
# (Kafka jars, Kubernetes binaries) under $${XDG_CACHE_HOME:-~/.cache}/smc-stream.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= --durations=15

.PHONY: setup lint test test-unit test-integration testbed-up testbed-down testbed-status testbed-fetch images demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml examples/smc-example-plugin/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q -e examples/smc-example-plugin
	touch $@

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Real Kafka + Kubernetes control plane + a node (kubelet, containerd, kube-scheduler, kube-proxy) in the
# background (idempotent); `source .testbed/env` to use it. Installs the node's Debian packages if missing.
testbed-up: setup
	$(PY) -m tests.testbed up

# Stops every test bed process (process groups); nothing is left running.
testbed-down:
	$(PY) -m tests.testbed down

testbed-status: setup
	$(PY) -m tests.testbed status

# Only provision the cache (Kafka jars from Maven Central, K8s binaries incl. kubelet built from Go modules).
testbed-fetch: setup
	$(PY) -m tests.testbed fetch

# Container images without Docker: a Debian base (mmdebstrap), pause, and Dockerfile.runtime/Dockerfile.operator
# built by buildah as localhost/smc-runtime:dev and localhost/smc-operator:dev; loaded into the node's
# containerd when the test bed runs. Unchanged inputs are not rebuilt (cache: ~/.cache/smc-stream/images).
images: setup
	$(PY) -m tests.testbed images

# Full suite: lint, then every test against the real Kafka + Kubernetes test bed. Two pytest processes run
# at once: the cluster tests (markers k8s, node) on the bed, all others against a second broker of their own
# (SMC_SUITE_SPLIT=0 runs one process). Each prints its own summary and slowest tests.
test: setup lint
	$(PY) -m tests.testbed run-suite -- $(PYTEST_ARGS)

# `make demo DEMO_PLUGINS=1` also runs the example plugin (examples/smc-example-plugin) in every processor.
DEMO_PLUGINS ?=
EXAMPLE_PLUGINS := {"enrichers": {"trade_streak": {"min_streak": 4}}, "detectors": {"range_breakout": {"lookback": 20}}, "alert_rules": {"price_level": {"levels": {"BTCUSDT": [64000, 65000, 66000], "ETHUSDT": [3150, 3200, 3250]}}}}
demo: setup
	if [ -n "$(DEMO_PLUGINS)" ]; then export SMC_PLUGINS='$(EXAMPLE_PLUGINS)'; fi; $(PY) -m smc_runtime.demo

# Side-by-side benchmark (Quix Streams, Faust, bare client, smc-stream). The driver, smc-stream and the bare
# loop run from .venv (the client smc-stream ships with); Quix and Faust from their own .venv-bench, because
# quixstreams pins confluent-kafka<2.13 and must not downgrade .venv. BENCH_ARGS passes flags to run_all.
BENCH_VENV := .venv-bench
BENCH_ARGS ?=
bench: setup
	$(PY) -m pip install -q -e '.[profile]'
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.run_all --peer-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

clean:
	-test -x $(PY) && $(PY) -m tests.testbed down
	rm -rf $(VENV) $(BENCH_VENV) .testbed .pytest_cache .mypy_cache .ruff_cache

# The operator in-cluster and a processor fleet scaling on lag, on the test bed's node (started if needed,
# images built and loaded like `make images`); prints the `kubectl get sp` timeline and a summary.
# DEMO_K8S_ARGS passes flags, e.g. `--records 600000`, or `--current-cluster --bootstrap ...` for your own
# cluster (see tools/demo_k8s.py). Leaves everything running: `make testbed-down` stops it.
DEMO_K8S_ARGS ?=
.PHONY: demo-k8s
demo-k8s: setup
	$(PY) -m tools.demo_k8s $(DEMO_K8S_ARGS)
