"""``smc-runtime run [--config PATH]``: load the config, start the processors, serve health/metrics.

Exit codes: 0 clean stop (SIGTERM/SIGINT), 2 invalid configuration (every problem listed),
3 fatal/fenced Kafka error, 4 unexpected crash.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import signal
import sys
from types import FrameType
from typing import cast

from smc_runtime import logs
from smc_runtime.config import ConfigError, load_config, resolve_config_path
from smc_runtime.service.app import PipelineFactory, RuntimeApp

EXIT_CONFIG = 2
DEFAULT_PIPELINE = "smc_runtime.pipeline:Pipeline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="streams-config.yaml (default: $STREAMS_CONFIG or "
                                         "/app/config/streams-config.yaml)")
    parser.add_argument("--bind-address", default=os.environ.get("HTTP_BIND_ADDRESS", "0.0.0.0"),
                        help="address of the health and metrics servers (default 0.0.0.0)")
    parser.add_argument("--pipeline", default=os.environ.get("SMC_PIPELINE", DEFAULT_PIPELINE),
                        help="module:callable building the Pipeline from ProcessorSettings (tests swap it)")


def load_pipeline_factory(spec: str) -> PipelineFactory:
    module_name, _, attr = spec.partition(":")
    return cast(PipelineFactory, getattr(importlib.import_module(module_name), attr))


def main(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config, os.environ)
    try:
        config = load_config(path, os.environ)
    except ConfigError as exc:
        print(f"smc-runtime: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.monitoring.log_level)
    try:
        app = RuntimeApp(config, load_pipeline_factory(args.pipeline), bind_address=args.bind_address)
    except ConfigError as exc:  # plugins (built with the pipelines): unknown names or bad params
        print(f"smc-runtime: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    def on_signal(signum: int, frame: FrameType | None) -> None:
        app.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1` dumps every thread's stack
    return app.run()
