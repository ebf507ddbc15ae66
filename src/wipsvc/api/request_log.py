"""Request ids and the access log, in place of uvicorn's.

Every HTTP answer carries an `X-Request-ID`: the caller's own when it sent a usable one,
else a new one. The id, and the collection and job the path names, are in the logging
context for everything logged while the request is handled (see `wipsvc.logs`). Each
request gets one access-log line: successful reads (status polls, listings, the dashboard's
files) at DEBUG, writes and errors at INFO.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wipsvc import logs
from wipsvc.collection import COLLECTION_NAME_PATTERN

log = logging.getLogger("wipsvc.access")

HEADER = "X-Request-ID"
# What a caller's id may look like to be kept (ids from proxies and tracers: UUIDs, hex, base64url).
_USABLE_ID = re.compile(r"^[A-Za-z0-9._:+/=-]{1,128}$")
_COLLECTION = re.compile(COLLECTION_NAME_PATTERN.strip("^$"))
_PATH = re.compile(
    r"^/api/(?:collections/(?P<name>[^/]+)|(?P<collection>[^/]+)/wip(?:/jobs/(?P<job>[^/]+))?)"
)
_JOB_ID = re.compile(r"^[0-9a-f-]{36}$")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def request_id_from(headers: Headers) -> str:
    presented = headers.get(HEADER)
    if presented is not None and _USABLE_ID.fullmatch(presented):
        return presented
    return uuid.uuid4().hex


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_from(Headers(scope=scope))
        logs.request_id.set(rid)
        _bind_path(scope["path"])
        started = time.perf_counter()
        status = 500  # unless the app answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            method = scope["method"]
            level = logging.DEBUG if method in _READS and status < 400 else logging.INFO
            if log.isEnabledFor(level):
                # The raw path stays percent-encoded: nothing a caller sends can forge a log line.
                raw = scope.get("raw_path") or scope["path"].encode()
                path = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
                elapsed = (time.perf_counter() - started) * 1000
                log.log(level, "%s %s %d %.1f ms", method, path, status, elapsed)


def _bind_path(path: str) -> None:
    """Put the collection and job the path names in the logging context (well-formed ones only)."""
    match = _PATH.match(path)
    if match is None:
        return
    name = match.group("name") or match.group("collection")
    if name and _COLLECTION.fullmatch(name):
        logs.collection.set(name)
    job = match.group("job")
    if job and _JOB_ID.fullmatch(job):
        logs.job_id.set(job)
