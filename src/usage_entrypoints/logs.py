"""Logging set-up: Laravel-style text lines or JSON, to stderr or a file."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from usage_core.log import EACH, NOTICE, Line

_SECRET_FIELDS = re.compile(
    r"""(?ix)
    (["']?(?:password|passwd|api[_-]?token|api[_-]?key|x-api-key|access[_-]?token|token|secret)["']?
     \s*[:=]\s*["']?)
    ([^"'&,\s}]+)
    """
)
HANDLER_NAME = "usage-sync"
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")


_HINTS = ("pass", "token", "key", "secret", "bearer")


def scrub(text: str) -> str:
    """Mask credential-looking values: `password=...`, `"token": "..."`, `Bearer ...`."""
    lowered = text.lower()
    # The regular expressions cost more than this check on the common clean line.
    if not any(hint in lowered for hint in _HINTS):
        return text
    return _BEARER.sub(r"\1***", _SECRET_FIELDS.sub(r"\1***", text))


class _PacedFileHandler(logging.FileHandler):
    """A file handler that flushes at most every 0.2 s, and at once from NOTICE up.

    A full sync logs one line per Eylandoo config; flushing each one costs more
    than formatting it. Lines reach the file within 0.2 s of the next record, and
    the run's last line (NOTICE) flushes everything before it.
    """

    _PACE_S = 0.2

    def __init__(self, filename: str) -> None:
        super().__init__(filename, encoding="utf-8")
        self._last_flush = 0.0
        self._urgent = False

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record; flush when it matters or when the pace allows."""
        self._urgent = record.levelno >= NOTICE
        super().emit(record)

    def flush(self) -> None:
        """Flush when urgent or when the last flush is old enough."""
        now = time.monotonic()
        if self._urgent or now - self._last_flush >= self._PACE_S:
            self._last_flush = now
            super().flush()

    def close(self) -> None:
        """Flush everything, then close."""
        self._urgent = True
        super().close()


def _context(record: logging.LogRecord) -> Mapping[str, object]:
    value = getattr(record, "context", None)
    return value if isinstance(value, Mapping) else {}


def _each(record: logging.LogRecord) -> tuple[str, Sequence[Line]] | None:
    """The message and lines of a `log_each` record, or None."""
    value = getattr(record, EACH, None)
    return value if isinstance(value, tuple) else None


_PLAIN_KEY = re.compile(r"[a-z_]+").fullmatch


def _context_json(context: Mapping[str, object]) -> str:
    """`json.dumps(context)`, written directly when every value is a plain integer.

    A sync logs one line per Eylandoo config with only its id as context;
    this is the same text at a fraction of the cost.
    """
    parts = []
    for key, value in context.items():
        if type(value) is not int or not _PLAIN_KEY(key):
            return json.dumps(context, default=str, ensure_ascii=False)
        parts.append(f'"{key}": {value}')
    return "{" + ", ".join(parts) + "}"


class LaravelTextFormatter(logging.Formatter):
    """`[2025-11-04 19:27:00] usage-sync.INFO: message {"key":"value"}`."""

    def __init__(self, tz: ZoneInfo) -> None:
        super().__init__()
        self._tz = tz
        # A full sync logs thousands of lines a second: render each second once.
        self._second = -1
        self._stamp = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            when = datetime.fromtimestamp(second, UTC).astimezone(self._tz)
            self._stamp, self._second = f"{when:%Y-%m-%d %H:%M:%S}", second
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a Laravel-style line (a line each for `log_each`)."""
        stamp = self._timestamp(record.created)
        prefix = f"[{stamp}] usage-sync.{record.levelname}: "
        each = _each(record)
        if each is not None:
            msg, lines = each
            # Scrubbed as one text: no credential pattern spans a line break and a prefix.
            return scrub(
                "\n".join(
                    f"{prefix}{msg % args} {_context_json(context)}"
                    if context
                    else prefix + msg % args
                    for args, context in lines
                )
            )
        context = _context(record)
        line = prefix + record.getMessage()
        if context:
            line += " " + _context_json(context)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context."""

    def __init__(self, tz: ZoneInfo) -> None:
        super().__init__()
        self._tz = tz

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a JSON line (a line each for `log_each`)."""
        when = datetime.fromtimestamp(record.created, UTC).astimezone(self._tz)
        head: dict[str, object] = {
            "time": when.isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        each = _each(record)
        if each is not None:
            msg, lines = each
            return "\n".join(
                self._dumps({**head, "message": msg % args, "context": dict(context)})
                for args, context in lines
            )
        document = {**head, "message": record.getMessage(), "context": dict(_context(record))}
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return self._dumps(document)

    @staticmethod
    def _dumps(document: dict[str, object]) -> str:
        return scrub(json.dumps(document, default=str, ensure_ascii=False))


def configure_logging(
    *,
    level: str = "INFO",
    log_format: str = "text",
    log_file: str | None = None,
    tz: ZoneInfo | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every layer's log records to one handler; return it."""
    logging.addLevelName(NOTICE, "NOTICE")
    zone = tz or ZoneInfo("UTC")
    handler: logging.Handler
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = _PacedFileHandler(log_file)
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter(zone) if log_format == "json" else LaravelTextFormatter(zone)
    handler.setFormatter(formatter)
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    # Replace only our own handler, so that configuring twice does not double lines.
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.getLevelName(level) if level != "NOTICE" else NOTICE)
    # httpx logs every request URL at INFO; the panels' own lines say more.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
