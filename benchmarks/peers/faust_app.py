"""The workload in faust-streaming, written the way its docs show: an agent over a topic and a Table.

Per-symbol windows live in a Faust Table (in-memory store backed by its changelog topic). Faust offers
``processing_guarantee="exactly_once"`` (aiokafka transactions); ``broker_commit_interval`` is its commit
period. The input is keyed by symbol, so the table is co-partitioned with the stream.
"""

from __future__ import annotations

import sys
from typing import Any

import faust

from benchmarks.peers.workload import common_arguments, enrich


def build_app(argv: list[str]) -> tuple[faust.App, Any]:
    args = common_arguments(__doc__ or "faust").parse_args(argv)
    options: dict[str, Any] = {}
    if args.commit_interval_ms is not None:
        options["broker_commit_interval"] = args.commit_interval_ms / 1000.0
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        processing_guarantee="exactly_once" if args.mode == "exactly_once" else "at_least_once",
        store="memory://",
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=args.state_dir,
        **options,
    )
    trades = app.topic(args.input_topic, key_type=bytes, value_serializer="json", partitions=args.partitions)
    enriched = app.topic(args.output_topic, key_type=bytes, value_serializer="json")
    windows = app.Table("windows", default=list, partitions=args.partitions)

    @app.agent(trades)  # type: ignore[untyped-decorator]
    async def enrich_trades(stream: Any) -> None:
        async for event in stream.events():
            symbol = event.key
            window = windows[symbol]
            record = enrich(event.value, window)
            windows[symbol] = window
            await enriched.send(key=symbol, value=record, timestamp=event.message.timestamp)

    return app, enrich_trades


def main() -> int:
    app, _ = build_app(sys.argv[1:])
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
