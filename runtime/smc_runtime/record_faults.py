"""The outputs of a record that went wrong: dead letters and the alerts that go with them.

Kept apart from ``pipeline.py`` because none of it is on the per-record path: a Pipeline calls
these only for a rejected record, a full partition, a plugin failure or a record that raised.

Dead letters echo the record's value and key cut to ``max_record_bytes`` minus a header budget
(headers ``truncated``, ``original_size``), so a dead letter always fits a producer record. A
partition holds at most ``max_state_keys_per_partition`` keys: a record that needs one more is
dead-lettered (``state_key_limit``); the record that fills the last slot raises a ``state_key_limit``
alert.
"""

from __future__ import annotations

from collections.abc import Callable

from smc_runtime.analytics.interfaces import Alert, NonFiniteState
from smc_runtime.key_state import KeySlot
from smc_runtime.messages import Rejection, RejectReason
from smc_runtime.outputs import OutputRecord, dead_letter, exception_text
from smc_runtime.plugin_guards import PluginFailed


class FaultOutputs:
    """Makes the fault records of one Pipeline (its dead-letter value cap, key limit and encoder)."""

    def __init__(self, dl_value_cap: int, max_keys: int, encode: Callable[[object], bytes]) -> None:
        self.dl_value_cap = dl_value_cap
        self.max_keys = max_keys
        self.encode = encode

    def dead_letter(self, value: bytes | None, key: bytes | None, rejection: Rejection, topic: str,
                    partition: int, offset: int, timestamp_ms: int,
                    extra: tuple[tuple[str, bytes], ...] = ()) -> OutputRecord:
        return dead_letter(value, key, str(rejection.reason), rejection.message, topic, partition, offset,
                           timestamp_ms, self.dl_value_cap, extra)

    def state_reset(self, exc: Exception, state_key: str, symbol: str, value: bytes | None,
                    key: bytes | None, topic: str, partition: int, offset: int,
                    timestamp_ms: int) -> list[OutputRecord]:
        """A record raised and its key was reset: one dead letter with the exception, one
        ``state_reset`` alert."""
        reason = RejectReason.NON_FINITE_STATE if isinstance(exc, NonFiniteState) else (
            RejectReason.PROCESSING_ERROR)
        error = exception_text(exc)
        rejection = Rejection(reason, error)
        letter = self.dead_letter(value, key, rejection, topic, partition, offset, timestamp_ms,
                                  (("exception", type(exc).__name__.encode()),))
        alert = Alert("state_reset", "warning", symbol, timestamp_ms,
                      f"state of {state_key!r} reset: a record raised {error}",
                      {"state_key": state_key, "reason": str(reason), "exception": type(exc).__name__,
                       "source_topic": topic, "source_partition": partition, "source_offset": offset})
        return [letter, OutputRecord("alerts", symbol.encode(), self.encode(alert))]

    def key_limit(self, value: bytes | None, key: bytes | None, state_key: str, topic: str, partition: int,
                  offset: int, timestamp_ms: int) -> OutputRecord:
        rejection = Rejection(RejectReason.STATE_KEY_LIMIT,
                              f"partition {topic}[{partition}] holds max_state_keys_per_partition "
                              f"{self.max_keys} keys; no room for {state_key!r}")
        return self.dead_letter(value, key, rejection, topic, partition, offset, timestamp_ms)

    def key_limit_alert(self, slot: KeySlot, topic: str, partition: int, timestamp_ms: int) -> OutputRecord:
        alert = Alert("state_key_limit", "critical", slot.symbol, timestamp_ms,
                      f"partition {topic}[{partition}] reached max_state_keys_per_partition "
                      f"{self.max_keys} with key {slot.ident[2]!r}: records of new keys are dead-lettered "
                      "(state_key_limit)",
                      {"source_topic": topic, "source_partition": partition, "limit": self.max_keys})
        return OutputRecord("alerts", slot.key_bytes, self.encode(alert))

    def plugin_failures(self, failures: list[PluginFailed], slot: KeySlot, value: bytes | None,
                        key: bytes | None, topic: str, partition: int, offset: int, timestamp_ms: int,
                        outputs: list[OutputRecord]) -> None:
        """One dead letter per failed plugin call (the original bytes, the plugin and its error) and a
        ``plugin_disabled`` alert when that failure disabled the plugin."""
        for failure in failures:
            health = failure.health
            outputs.append(dead_letter(value, key or slot.key_bytes, "plugin_error", failure.error, topic,
                                       partition, offset, timestamp_ms, self.dl_value_cap,
                                       (("plugin", health.name.encode()),
                                        ("plugin_kind", health.kind.encode()))))
            if failure.just_disabled:
                alert = Alert("plugin_disabled", "critical", slot.symbol, timestamp_ms,
                              f"{health.kind} plugin {health.name!r} disabled after {health.consecutive} "
                              f"consecutive failures; last error: {failure.error}",
                              {"plugin": health.name, "plugin_kind": health.kind,
                               "consecutive_failures": health.consecutive, "failures": health.failures,
                               "error": failure.error})
                outputs.append(OutputRecord("alerts", slot.key_bytes, self.encode(alert)))
