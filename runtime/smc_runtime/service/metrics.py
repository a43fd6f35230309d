"""Prometheus metrics of the runtime (one registry per process, served on METRICS_PORT /metrics).

Names follow Prometheus conventions: ``smc_runtime_`` prefix, base units (seconds), ``_total`` for
counters. Labels are bounded: processor, topic, partition, reason, pattern, kind.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_E2E_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
                1.0, 2.0, 5.0, 10.0, 30.0)


class RuntimeMetrics:
    """Every metric, grouped by what feeds it (``kafka/telemetry.py`` is the one writer)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._records(self.registry)
        self._transactions(self.registry)
        self._state(self.registry)
        self._flow(self.registry)

    def _records(self, r: CollectorRegistry) -> None:
        """Per batch: records in, out, rejected; processing and end-to-end latency."""
        self.messages_processed = Counter(
            "smc_runtime_messages_processed", "Input messages processed", ["processor", "topic"], registry=r)
        self.messages_failed = Counter(
            "smc_runtime_messages_failed", "Input messages rejected (sent to dead letters)",
            ["processor", "topic", "reason"], registry=r)
        self.plugin_failures = Counter(
            "smc_runtime_plugin_failures", "Messages a plugin raised on (dead-lettered)",
            ["processor", "plugin"], registry=r)
        self.dead_letters = Counter(
            "smc_runtime_dead_letters", "Records produced to the dead-letter topic", ["processor", "reason"],
            registry=r)
        self.output_records = Counter(
            "smc_runtime_output_records", "Output records produced", ["processor", "topic"], registry=r)
        self.processing_latency = Histogram(
            "smc_runtime_processing_latency_seconds", "Pipeline time per input message",
            ["processor"], buckets=_LATENCY_BUCKETS, registry=r)
        self.end_to_end_latency = Histogram(
            "smc_runtime_end_to_end_latency_seconds",
            "Commit (output visible) time minus input record timestamp", ["processor"],
            buckets=_E2E_BUCKETS, registry=r)

    def _transactions(self, r: CollectorRegistry) -> None:
        """Per commit or abort, and rebalances."""
        self.transactions_committed = Counter(
            "smc_runtime_transactions_committed", "Transactions (or offset commits) completed", ["processor"],
            registry=r)
        self.transactions_aborted = Counter(
            "smc_runtime_transactions_aborted", "Transactions aborted and rewound", ["processor", "reason"],
            registry=r)
        self.commit_latency = Histogram(
            "smc_runtime_commit_latency_seconds", "Time to snapshot, send offsets and commit", ["processor"],
            buckets=_LATENCY_BUCKETS, registry=r)
        self.rebalances = Counter(
            "smc_runtime_rebalances", "Rebalance events", ["processor", "kind"], registry=r)
        self.partitions_assigned = Gauge(
            "smc_runtime_partitions_assigned", "Input partitions assigned", ["processor"], registry=r)

    def _state(self, r: CollectorRegistry) -> None:
        """Changelog restores, replays and snapshots; state keys; signals."""
        self.state_restored_keys = Counter(
            "smc_runtime_state_restored_keys", "State keys restored from the changelog", ["processor"],
            registry=r)
        self.state_replayed_records = Counter(
            "smc_runtime_state_replayed_records",
            "Input records replayed after a restore or abort to rebuild state from the last snapshot "
            "(outputs suppressed)", ["processor"], registry=r)
        self.changelog_records = Counter(
            "smc_runtime_changelog_records", "State snapshots written to the changelog", ["processor"],
            registry=r)
        self.smc_patterns = Counter(
            "smc_runtime_smc_patterns_detected", "SMC signals produced, by pattern", ["processor", "pattern"],
            registry=r)

    def _flow(self, r: CollectorRegistry) -> None:
        """Breaker, backpressure, readiness, topics."""
        self.breaker_state = Gauge(
            "smc_runtime_circuit_breaker_state", "Output circuit breaker: 0 closed, 1 half-open, 2 open",
            ["processor"], registry=r)
        self.throughput = Gauge(
            "smc_runtime_throughput_messages_per_second", "Input messages per second (10 s window)",
            ["processor"], registry=r)
        self.consumer_lag = Gauge(
            "smc_runtime_consumer_lag_messages", "High watermark minus position",
            ["processor", "topic", "partition"], registry=r)
        self.producer_queue = Gauge(
            "smc_runtime_producer_queue_messages", "Messages waiting in the producer queue", ["processor"],
            registry=r)
        self.paused = Gauge(
            "smc_runtime_consumption_paused", "1 while consumption is paused (backpressure or breaker)",
            ["processor"], registry=r)
        self.ready = Gauge("smc_runtime_ready", "1 when assigned and restored", ["processor"], registry=r)
        self.state_keys = Gauge(
            "smc_runtime_state_keys", "State keys held per source partition (capped by "
            "max_state_keys_per_partition)", ["processor", "topic", "partition"], registry=r)
        self.snapshots_too_large = Counter(
            "smc_runtime_snapshots_too_large", "State snapshots refused as larger than the record limit "
            "(written as tombstones: a restore starts the key afresh)", ["processor"], registry=r)
        self.missing_topics = Gauge(
            "smc_runtime_missing_topics", "Output, dead-letter or changelog topics missing at start "
            "(the processor waits for them, not ready)", ["processor"], registry=r)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
