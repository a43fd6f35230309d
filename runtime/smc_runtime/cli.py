"""``smc-runtime``: one entry point, one module per subcommand (imported lazily so
``detect`` does not pay for Kafka and HTTP imports)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, help). Each module exposes add_arguments(parser) and main(args) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("smc_runtime.run_command", "run the exactly-once Kafka processing service"),
    "replay": ("smc_runtime.replay_command", "run the whole pipeline over a JSONL file, without Kafka"),
    "detect": ("smc_runtime.detect_command", "run the SMC detectors over a CSV of bars (conformance)"),
    "status": ("smc_runtime.status_command", "print a running service's /status (/health, /ready) document"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="smc-runtime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if args_list[:1] == [name]:
            importlib.import_module(module_name).add_arguments(sub_parser)
    args = parser.parse_args(args_list)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    result: int = module.main(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
