"""Logging, configured in one place: one JSON object per line, ids as fields, phone numbers masked.

Every `sirena` process calls `configure_logging(level)` once at start (the CLI's main does it, and
long-running commands set their level from the settings). A line looks like

    {"ts": "2026-11-27T15:04:05.123Z", "level": "INFO", "logger": "sirena.jobs", "pid": 4242,
     "msg": "fan-out alert_id=12 wrote=5000 batches=10 done=True", "alert_id": 12}

- ids: `alert_id`, `delivery_id`, `carrier`, `bind`, `worker`, `job_id` become fields, taken from
  `extra={...}` or from `name=value` words in the message (how the code already logs them);
- phone numbers: any run of 8-15 digits (with or without +) shows only its last 4 digits, in the
  message, in extras and in tracebacks — logs leave the machine, the audit trail does not;
- message text: an extra named `text` (or `message_text`) is dropped above DEBUG, so what an
  alert says never reaches the logs in production;
- RQ's own loggers go through the same handler (its "Job OK" lines become JSON too).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

ID_FIELDS = ("alert_id", "delivery_id", "carrier", "bind", "worker", "job_id")
TEXT_FIELDS = frozenset({"text", "message_text"})
_PHONE = re.compile(r"(?<![\w.])\+?(\d{4,11})(\d{4})(?![\w.])")
_ID_WORDS = re.compile(r"\b(" + "|".join(ID_FIELDS) + r")=([\w.:-]+)")
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}


def mask_phones(text: str) -> str:
    """Keep only the last 4 digits of every phone-number-like run of 8-15 digits (not `…_id=` values)."""

    def masked(m: re.Match[str]) -> str:
        return m.group(0) if text[max(0, m.start() - 3):m.start()] == "id=" else "***" + m.group(2)

    return _PHONE.sub(masked, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; see the module docstring for the fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = mask_phones(record.getMessage())
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": message,
        }
        for name, value in _ID_WORDS.findall(message):
            out[name] = int(value) if value.isdigit() else value
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if key in TEXT_FIELDS and record.levelno > logging.DEBUG:
                continue
            out[key] = mask_phones(value) if isinstance(value, str) else _plain(value)
        if record.exc_info:
            out["exc"] = mask_phones(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, int | float | bool) or value is None:
        return value
    return mask_phones(str(value))


_handler: logging.Handler | None = None


def configure_logging(level: str | int = "WARNING", *, stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record of this process to `stream` (stderr) as JSON lines, at `level`.

    Idempotent: a second call changes the level (and the stream if given), never adds a handler.
    """
    global _handler
    root = logging.getLogger()
    if _handler is None:
        _handler = logging.StreamHandler(stream or sys.stderr)
        _handler.setFormatter(JsonFormatter())
        root.addHandler(_handler)
        # RQ adds its own coloured handler to these unless they have one; give them ours.
        for name in ("rq.worker", "rq.scheduler", "rq.queue"):
            rq_logger = logging.getLogger(name)
            rq_logger.addHandler(_handler)
            rq_logger.propagate = False
    elif stream is not None and isinstance(_handler, logging.StreamHandler):
        try:
            _handler.setStream(stream)
        except ValueError:  # the old stream is closed already (it cannot be flushed): just replace it
            _handler.stream = stream
    set_level(level)
    return _handler


def set_level(level: str | int) -> None:
    """Change the level of this process's logs (e.g. from SIRENA_LOG_LEVEL once settings are read)."""
    value = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(value, int):
        value = logging.INFO
    logging.getLogger().setLevel(value)
    for name in ("rq.worker", "rq.scheduler", "rq.queue"):
        logging.getLogger(name).setLevel(value)
