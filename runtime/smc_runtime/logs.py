"""Structured JSON logs: one JSON object per line, with the context (processor, topic, partition, ...)
passed as keyword fields, so logs can be filtered by field instead of by regex.

Secrets never reach a log line: fields whose name looks like a credential are redacted.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

_SECRET_MARKERS = ("password", "secret", "token", "sasl.username", "credential", "private")
REDACTED = "***"


def redact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``fields`` with credential-like keys masked (recursively for nested mappings)."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if any(marker in key.lower() for marker in _SECRET_MARKERS):
            clean[key] = REDACTED
        elif isinstance(value, Mapping):
            clean[key] = redact(value)
        else:
            clean[key] = value
    return clean


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line: ts, level, logger, msg, the structured fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            doc.update(redact(fields))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


class StructLogger:
    """``log.info("committed", processor="p", offsets=3)``: message plus keyword context fields."""

    def __init__(self, logger: logging.Logger, context: Mapping[str, Any] | None = None) -> None:
        self._logger = logger
        self._context = dict(context or {})

    def bind(self, **fields: Any) -> StructLogger:
        """A logger that adds ``fields`` to every line (e.g. the processor name)."""
        return StructLogger(self._logger, {**self._context, **fields})

    def _log(self, level: int, msg: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, exc_info=exc_info, extra={"fields": {**self._context, **fields}},
                             stacklevel=3)

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, False, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, False, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, False, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, False, fields)

    def exception(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, True, fields)

    def is_enabled(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)


def get_logger(name: str, **context: Any) -> StructLogger:
    return StructLogger(logging.getLogger(name), context)


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Route the ``smc_runtime`` loggers (and librdkafka's, via Python logging) to JSON on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("smc_runtime")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
