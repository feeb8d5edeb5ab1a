"""JSON logs on stdout: one object a line with time, level, unit, msg and request fields."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Request fields a log call may pass with ``extra=``; nothing else (headers, bodies) is written.
REQUEST_FIELDS = ("method", "path", "status", "latency_ms", "request_id", "route", "client")
EVENT_FIELDS = ("event", "reason", "mode", "duration_s", "rtf", "conversation_id", "error")


class JsonFormatter(logging.Formatter):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "unit": self.unit,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in REQUEST_FIELDS + EVENT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(unit: str, level: str) -> dict[str, Any]:
    """A logging dictConfig for the app and uvicorn (its access log is replaced by ours)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "unit": unit}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stdout}},
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            # Their DEBUG lines can carry request details; keep them quiet.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
