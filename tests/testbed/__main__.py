"""Command line: `python -m tests.testbed {up,down,env,status,fetch,images,run-suite -- <pytest args>}`."""

from __future__ import annotations

import argparse
import sys
import time

from . import bed, images, kafka, kube
from .common import TestbedError, progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "start (or reuse) the test bed in the background"),
        ("down", "stop the test bed; no process is left behind"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument(
            "components",
            nargs="*",
            choices=[*bed.COMPONENTS, []],
            default=[],
            metavar="COMPONENT",
            help=f"subset of {', '.join(bed.ALL)} (default: all)",
        )
    sub.add_parser("env", help="print .testbed/env (source-able)")
    sub.add_parser("fetch", help="only provision the cache: Kafka jars and Kubernetes binaries")
    img = sub.add_parser(
        "images", help="build the base, pause, runtime and operator images; load them into a running node"
    )
    img.add_argument("--no-load", action="store_true", help="only build, even when the node runs")
    sub.add_parser("status", help="which components run and answer")
    suite = sub.add_parser("run-suite", help="up, pytest tests <args>, then down if this call started it")
    suite.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            bed.up(args.components or bed.ALL)
            progress(f"test bed up; `source {bed.env_file()}` to use it")
            sys.stdout.write(bed.env_file().read_text())
        elif args.command == "down":
            stopped = bed.down(args.components or bed.ALL)
            if not args.components or "kafka" in args.components:
                stopped += bed.down_second_broker()
            progress(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
        elif args.command == "env":
            if not bed.env_file().exists():
                progress("test bed is not up (run `python -m tests.testbed up`)")
                return 1
            sys.stdout.write(bed.env_file().read_text())
        elif args.command == "fetch":
            jars = kafka.classpath()
            bins = kube.binaries()
            if "node" in bed.ALL:
                bins.update(kube.node_binaries())
            progress(f"kafka classpath {jars}")
            for name, path in bins.items():
                progress(f"{name}: {path}")
        elif args.command == "images":
            started = time.monotonic()
            built = images.build_all()
            for name, image in built.items():
                how = f"built in {image.seconds:.0f}s" if image.seconds else "unchanged (cached)"
                progress(f"{name}: {image.image_id[:12]} {how}")
            if not args.no_load:
                loaded = bed.load_images(built[name] for name in images.DOCKERFILES)
                progress("loaded into the node's containerd" if loaded else
                         "the node is not running: images built only (`make testbed-up` starts it)")
            progress(f"images ready in {time.monotonic() - started:.0f}s")
        elif args.command == "status":
            for name, ok in bed.status().items():
                print(f"{name}: {'up' if ok else 'down'}")
        else:
            extra = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
            return bed.run_suite(extra)
    except TestbedError as exc:
        progress(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
