"""The workload in Quix Streams, written the way its docs show: a StreamingDataFrame with a stateful apply.

Per-symbol windows live in Quix state (RocksDB + changelog topic), which is what makes its
exactly-once mode recover correctly; Quix's checkpoint (``commit_interval``) commits the transaction.
"""

from __future__ import annotations

from typing import Any

from quixstreams import Application, State

from benchmarks.peers.workload import common_arguments, enrich


def enrich_with_state(trade: dict[str, Any], state: State) -> dict[str, Any]:
    window: list[list[float]] = state.get("window", [])
    record = enrich(trade, window)
    state.set("window", window)
    return record


def main() -> int:
    args = common_arguments(__doc__ or "quix").parse_args()
    options: dict[str, Any] = {}
    if args.commit_interval_ms is not None:
        options["commit_interval"] = args.commit_interval_ms / 1000.0
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once" if args.mode == "exactly_once" else "at-least-once",
        state_dir=args.state_dir,
        loglevel="WARNING",
        **options,
    )
    trades = app.topic(args.input_topic, key_deserializer="str", value_deserializer="json")
    enriched = app.topic(args.output_topic, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(trades)
    sdf = sdf.apply(enrich_with_state, stateful=True)
    sdf.to_topic(enriched)
    app.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
