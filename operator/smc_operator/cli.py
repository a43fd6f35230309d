"""``smc-operator``: run the operator against the current kubeconfig (``$KUBECONFIG``) or in-cluster.

A thin wrapper over ``kopf.run`` with kopf's usual scoping flags (``--namespace``/``-n`` repeatable,
``--all-namespaces``/``-A``), ``--standalone`` (no kopf peering), a liveness endpoint and the Prometheus
metrics port. ``--leader-election`` runs several replicas active/standby on a ``coordination.k8s.io`` Lease
(see ``leader.py``): a standby answers the liveness URL itself and starts kopf only once elected.
"""

from __future__ import annotations

import argparse
import http.server
import os
import sys
import threading
import urllib.parse
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
    election = parser.add_argument_group("leader election (several replicas, one active)")
    election.add_argument("--leader-election", action="store_true", help="hold a Lease before acting")
    election.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE", "smc-system"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else smc-system)",
    )
    election.add_argument("--leader-election-id", default="smc-operator", help="name of the Lease")
    election.add_argument("--identity", default=None, help="this candidate's name (default: $POD_NAME)")
    election.add_argument(
        "--lease-duration", type=float, default=15.0, help="seconds a silent leader keeps it"
    )
    election.add_argument("--renew-period", type=float, default=5.0, help="seconds between renewals")
    election.add_argument("--retry-period", type=float, default=2.0, help="seconds between standby attempts")
    parser.add_argument("--log-format", choices=["json", "plain", "full"], default="json")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("--quiet", "-q", action="store_true")
    return parser


class _StandbyLiveness:
    """Answers the liveness URL with 200 while this replica is a standby (kopf, which serves it when
    active, has not started); stopped before kopf binds the same port."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        path = parsed.path or "/"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == path else 404)
                self.end_headers()
                self.wfile.write(b'{"role": "standby"}')

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(
            (parsed.hostname or "0.0.0.0", parsed.port or 80), Handler
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    log_format = {"json": kopf.LogFormat.JSON, "plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL}
    kopf.configure(verbose=args.verbose, quiet=args.quiet, log_format=log_format[args.log_format])
    import smc_operator.handlers  # noqa: F401  (registers the handlers with kopf's default registry)

    metrics.serve(args.metrics_port, args.metrics_address)
    if args.namespace and not any(ch in ns for ns in args.namespace for ch in "*?[!"):
        # Namespaced install (Roles only): kopf would list and watch namespaces and CRDs cluster-wide,
        # be forbidden, retry for about a minute and only then fall back to the names given. Named
        # namespaces need neither scan (kopf still discovers the CRD's API group once at start).

        @kopf.on.startup(id="namespaced-scope")
        def namespaced_scope(settings: kopf.OperatorSettings, **_: object) -> None:
            settings.scanning.disabled = True


    def run() -> None:
        kopf.run(
            standalone=args.standalone,
            clusterwide=args.all_namespaces,
            namespaces=args.namespace,
            peering_name=args.peering,
            priority=args.priority,
            liveness_endpoint=args.liveness or None,
        )

    if not args.leader_election:
        metrics.LEADER.set(1)
        run()
        return 0

    from smc_operator import kube, leader

    kube.load()
    elector = leader.LeaseElector(
        args.leader_election_namespace,
        args.leader_election_id,
        args.identity or leader.default_identity(),
        args.lease_duration,
    )
    standby: list[_StandbyLiveness] = []

    def on_standby() -> None:
        if args.liveness:
            standby.append(_StandbyLiveness(args.liveness))

    def on_active() -> None:
        while standby:
            standby.pop().stop()

    return leader.run_as_leader(
        elector, run, args.renew_period, args.retry_period, standby=on_standby, active=on_active
    )


if __name__ == "__main__":
    sys.exit(main())
