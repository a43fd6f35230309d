"""``smc-operator``: run the operator against the current kubeconfig (``$KUBECONFIG``) or in-cluster.

A thin wrapper over ``kopf.run`` with kopf's usual scoping flags (``--namespace``/``-n`` repeatable,
``--all-namespaces``/``-A``), ``--standalone`` (no peering: run exactly one replica, ``strategy: Recreate``),
a liveness endpoint and the Prometheus metrics port.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import kopf

from smc_operator import metrics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smc-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="namespace to serve (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="serve every namespace")
    parser.add_argument("--standalone", action="store_true", help="no peering (run a single replica)")
    parser.add_argument("--peering", default=None, help="kopf peering object name (when not standalone)")
    parser.add_argument("--priority", type=int, default=None, help="peering priority")
    parser.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", help="liveness endpoint URL ('' to disable)"
    )
    parser.add_argument("--metrics-port", type=int, default=9090, help="Prometheus metrics port (0 disables)")
    parser.add_argument("--metrics-address", default="0.0.0.0", help="metrics bind address")
    parser.add_argument("--log-format", choices=["json", "plain", "full"], default="json")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("--quiet", "-q", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    log_format = {"json": kopf.LogFormat.JSON, "plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL}
    kopf.configure(verbose=args.verbose, quiet=args.quiet, log_format=log_format[args.log_format])
    import smc_operator.handlers  # noqa: F401  (registers the handlers with kopf's default registry)

    metrics.serve(args.metrics_port, args.metrics_address)
    kopf.run(
        standalone=args.standalone,
        clusterwide=args.all_namespaces,
        namespaces=args.namespace,
        peering_name=args.peering,
        priority=args.priority,
        liveness_endpoint=args.liveness or None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
