"""One log format for the whole process (uvicorn's lines too), as text or JSON, with context.

The context (request id, job id, collection) lives in context variables: a request sets its
id in the access-log middleware, a job runner sets its job and collection when it starts, and
asyncio copies them into every task started from there, so each line says what it belongs to
without being passed anything.

Noisy routine lines go to DEBUG: httpx's one line per request (every page fetch and every call
to Google or the LLM) and successful reads such as status polls (see `wipsvc.api.request_log`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from wipsvc.config import Settings

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
collection: contextvars.ContextVar[str | None] = contextvars.ContextVar("collection", default=None)

CONTEXT_FIELDS = ("request_id", "job_id", "collection")
_VARIABLES = {"request_id": request_id, "job_id": job_id, "collection": collection}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers of libraries that write one INFO line per HTTP request they make.
_CHATTY = ("httpx",)
# Libraries whose DEBUG lines trace their own internals (every SQLite call, every frame):
# at `debug` the service's own lines and the requests above are what is wanted.
INTERNAL_LOGGERS = (
    "aiosqlite",
    "asyncio",
    "httpcore",
    "hpack",
    "multipart",
    "websockets",
    "engineio",
    "socketio",
)


def bind_job(job: str, collection_name: str) -> None:
    """Name the job (and its collection) in every line logged from this task and its children."""
    job_id.set(job)
    collection.set(collection_name)


class ContextFilter(logging.Filter):
    """Copies the context variables onto each record (as attributes, for both formatters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _VARIABLES.items():
            if not hasattr(record, name):
                setattr(record, name, variable.get())
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={value}" for name in CONTEXT_FIELDS if (value := getattr(record, name, None))
        )
        if not context:
            return line
        # The context goes on the first line, before any traceback.
        first, newline, rest = line.partition("\n")
        return f"{first} [{context}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _DemoteToDebug(logging.Filter):
    """Turns a chatty library's INFO lines into DEBUG ones, kept only when DEBUG is wanted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def make_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    return handler


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Send every logger's lines (the app's, uvicorn's, libraries') through one handler on the
    root logger, in the configured format; returns that handler."""
    level = settings.log_level.upper()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = make_handler(settings, stream)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's loggers, once given no config of their own, only need to reach the root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    for name in INTERNAL_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    for name in _CHATTY:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DemoteToDebug) for f in logger.filters):
            logger.addFilter(_DemoteToDebug())
    return handler
