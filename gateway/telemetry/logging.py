"""JSON log lines carrying the request id; keys and base64 data are scrubbed on the way out.

Nothing in the gateway logs prompt text or request bodies; the scrubbing is a second line
of defence for what might slip into a message (an exception's text, a header echoed back).
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from gateway.telemetry.context import current_request

_SCRUB = [
    # API keys (``vg_`` + base62) and any bearer credential.
    (re.compile(r"\bvg_[A-Za-z0-9]{8,}"), "vg_[redacted]"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1[redacted]"),
    # data: URIs and long base64 runs (media bytes).
    (re.compile(r"data:[\w.+\-/]+;base64,[A-Za-z0-9+/=_\-]*"), "data:[redacted]"),
    (re.compile(r"[A-Za-z0-9+/]{120,}={0,2}"), "[base64 redacted]"),
]


def scrub(text: str) -> str:
    """``text`` without API keys, bearer tokens or base64 data."""
    for pattern, replacement in _SCRUB:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        info = current_request()
        if info is not None:
            entry["request_id"] = info.request_id
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Plain lines for a terminal, with the same scrubbing and request id."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a line of text."""
        info = current_request()
        record.request_id = info.request_id if info else "-"
        return scrub(super().format(record))


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for visiongate and uvicorn (applied in every worker)."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if log_format == "json"
        else {
            "()": TextFormatter,
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        }
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            # uvicorn's loggers propagate to the root handler: one format for every line.
            name: {"handlers": [], "level": level.upper(), "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
