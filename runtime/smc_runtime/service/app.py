"""The running service: every configured processor in its own thread, plus health and metrics.

A processor thread that ends with a non-zero code (fatal/fenced Kafka error, crash) stops the whole
process with that code, so the orchestrator restarts it; SIGTERM/SIGINT stop all of them gracefully.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from smc_runtime.config import KafkaSettings, ProcessorSettings, StreamsConfig
from smc_runtime.kafka import clients
from smc_runtime.kafka.processor import PipelineLike, ProcessorRunner
from smc_runtime.logs import get_logger
from smc_runtime.service.health import HealthReport, HealthServer
from smc_runtime.service.metrics import RuntimeMetrics
from smc_runtime.service.status import ProcessorState, ProcessorStatus

PipelineFactory = Callable[[ProcessorSettings], PipelineLike]

# A processor loop that has not come round for this long is wedged inside a Kafka call:
# send_offsets_to_transaction can ignore its timeout and block for good when the coordinator goes away
# (librdkafka #5456, #5511; seen here after a broker restart and, rarely, after an abort). The process
# exits non-zero so the orchestrator restarts it; the restart fences the wedged producer and resumes
# from the last commit. Retries and changelog restores beat the heartbeat, so they never trip it.
# Neither does an outage: while the broker does not answer, send_offsets_to_transaction blocks until
# it is back (its timeout ignored), and a restart would only restart into the same outage (issue 12,
# item 8). So once a loop has not beaten for PROBE_AFTER_S, the BrokerProbe asks the broker for
# metadata every PROBE_INTERVAL_S; while it does not answer the stall counts as waiting, and the
# loop is wedged only WEDGED_AFTER_S after the broker answers again.
WEDGED_AFTER_S = float(os.environ.get("SMC_WEDGED_AFTER_S", "30"))
EXIT_WEDGED = 5
PROBE_AFTER_S = 5.0
PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 3.0

log = get_logger("smc_runtime.service.app")


class BrokerProbe:
    """Tells a loop blocked by an outage from a wedged one (see PROBE_AFTER_S above): a thread that,
    only while some loop has not beaten for ``after_s`` or a client reported all brokers down, asks
    the broker for metadata with its own admin client and records the answer in every processor
    status (readiness is false while the broker does not answer)."""

    def __init__(self, kafka: KafkaSettings, client_id: str, statuses: dict[str, ProcessorStatus],
                 after_s: float = PROBE_AFTER_S, interval_s: float = PROBE_INTERVAL_S) -> None:
        self.kafka = kafka
        self.client_id = client_id
        self.statuses = statuses
        self.after_s = after_s
        self.interval_s = interval_s
        self._admin: AdminClient | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-probe", daemon=True)
        self._reachable = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop probing. An outage this probe logged is closed in the log before the process exits
        (a loop that gets an error from the returning broker can exit before the next probe)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(PROBE_TIMEOUT_S + self.interval_s)
        if self._reachable or self._thread.is_alive():
            return
        if self.probe():
            self._reachable = True
            log.info("broker answers again", at="shutdown")
        else:
            log.warning("stopping while the broker does not answer")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            stalled = [s for s in self.statuses.values() if now - s.heartbeat > self.after_s]
            # A client that reported "all brokers down" marked its status unreachable: probe until
            # the broker answers again, then clear it.
            reported = any(s.broker_unreachable for s in self.statuses.values())
            if not stalled and not reported and self._reachable:
                continue
            reachable = self.probe()
            if reachable != self._reachable:
                (log.info if reachable else log.warning)(
                    "broker answers again" if reachable else "broker not answering: an outage, not a wedge "
                    "(liveness holds, readiness false)",
                    stalled_processors=sorted(s.name for s in stalled))
                self._reachable = reachable
            for status in self.statuses.values():
                status.broker_probed(time.monotonic(), reachable)

    def probe(self) -> bool:
        try:
            if self._admin is None:
                conf = clients.base_settings(self.kafka, self.client_id)
                self._admin = AdminClient(conf, logger=logging.getLogger("smc_runtime.librdkafka.probe"))
            self._admin.list_topics(timeout=PROBE_TIMEOUT_S)
            return True
        except KafkaException:
            return False
        except Exception as exc:  # e.g. unreadable credential files: not an outage, let liveness decide
            log.warning("broker probe failed", error=str(exc))
            return True


def config_summary(config: StreamsConfig) -> dict[str, Any]:
    """What /status shows about the configuration: topology and tuning, never credentials."""
    return {
        "processor_id": config.processor_id,
        "kafka": clients.describe(config.kafka),
        "processors": {
            name: {
                "consumer_group": p.consumer_group,
                "processing_mode": p.processing_mode.value,
                "batch_size": p.batch_size,
                "commit_interval_ms": p.commit_interval_ms,
                "snapshot_interval_ms": p.snapshot_interval_ms,
                "max_poll_records": p.max_poll_records,
                "input_topics": p.input_topics,
                "output_topics": p.output_topics.by_role(),
                "changelog_topic": p.changelog_topic_name(),
            }
            for name, p in config.stream_processors.items()
        },
    }


class RuntimeApp:
    def __init__(self, config: StreamsConfig, pipeline_factory: PipelineFactory,
                 bind_address: str = "0.0.0.0", runner_kwargs: dict[str, Any] | None = None,
                 wedged_after_s: float | None = WEDGED_AFTER_S) -> None:
        """``wedged_after_s=None`` disables the watchdog (in-process use, where exiting is not ours to do)."""
        self.config = config
        self.metrics = RuntimeMetrics()
        self.stop_event = threading.Event()
        self.started_at = time.monotonic()
        self.statuses: dict[str, ProcessorStatus] = {}
        self.runners: dict[str, ProcessorRunner] = {}
        for name, settings in config.stream_processors.items():
            status = ProcessorStatus(
                name=name, consumer_group=settings.consumer_group,
                processing_mode=settings.processing_mode.value, input_topics=list(settings.input_topics),
                output_topics=settings.output_topics.by_role(),
                commit_interval_ms=settings.commit_interval_ms, batch_size=settings.batch_size)
            self.statuses[name] = status
            self.runners[name] = ProcessorRunner(
                name, settings, config.kafka, config.processor_id, pipeline_factory(settings), status,
                self.metrics, **(runner_kwargs or {}))
        self.report = HealthReport(self.statuses, config_summary(config), self.started_at)
        self.health = HealthServer(self.report, config.monitoring.health_check_port, bind_address)
        self.bind_address = bind_address
        self.exit_codes: dict[str, int] = {}
        self.wedged_after_s = wedged_after_s
        self.probe = BrokerProbe(config.kafka, f"{config.processor_id}.probe", self.statuses)

    def run(self) -> int:
        """Run until stop() or a processor failure; return 0 on a clean stop, else the failing code."""
        self.health.start()
        self.metrics.serve(self.config.monitoring.metrics_port, self.bind_address)
        log.info("runtime started", processors=sorted(self.runners),
                 health_port=self.config.monitoring.health_check_port,
                 metrics_port=self.config.monitoring.metrics_port)
        threads = [threading.Thread(target=self._run_one, args=(name,), name=f"processor-{name}", daemon=True)
                   for name in self.runners]
        for thread in threads:
            thread.start()
        self.probe.start()
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.2)
            self._check_wedged(time.monotonic())
        self.probe.stop()
        self.health.stop()
        failures = [code for code in self.exit_codes.values() if code != 0]
        code = failures[0] if failures else 0
        log.info("runtime stopped", exit_code=code)
        return code

    def _check_wedged(self, now: float) -> None:
        if self.wedged_after_s is None:
            return
        for name, status in self.statuses.items():
            stalled = status.stalled_for(now)  # an outage the probe saw counts as progress
            with status.lock:
                state = status.state
            if stalled > self.wedged_after_s and state is not ProcessorState.STOPPED:
                log.error("processor loop wedged: exiting for a restart", processor=name,
                          stalled_seconds=round(stalled, 1), state=state.value)
                logging.shutdown()
                os._exit(EXIT_WEDGED)  # the stuck thread cannot be joined; a restart recovers cleanly

    def _run_one(self, name: str) -> None:
        code = self.runners[name].run(self.stop_event)
        self.exit_codes[name] = code
        if code != 0:
            self.stop_event.set()  # one failed processor restarts the whole pod

    def stop(self) -> None:
        self.stop_event.set()
