"""Limits on what one caller can make the service do: body size, job starts, active jobs.

The rate limit and the active-job locks live in this process: with several instances,
each one enforces the rate on its own, and the active-job cap can be overshot by at most
one job per instance that checks at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wipsvc.api.deps import Access, HeaderedApiError, RuntimeDep
from wipsvc.api.errors import ApiError, error_response
from wipsvc.config import Settings
from wipsvc.services import Services

# Beyond this many callers tracked, buckets that have refilled completely are forgotten.
_MAX_TRACKED = 10_000


class BodyTooLarge(StarletteHTTPException):
    # An HTTPException, so that FastAPI passes it through while reading the body instead
    # of turning it into "400: error parsing the body".
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body too large: at most {max_bytes} bytes are accepted")
        self.max_bytes = max_bytes

    def response(self) -> JSONResponse:
        return error_response(413, "request_too_large", self.detail, {"max_bytes": self.max_bytes})


class BodySizeLimit:
    """Answers 413 to bodies over `max_bytes`: at once when Content-Length says so, and
    otherwise (chunked uploads, lying headers) as soon as the bytes read pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await BodyTooLarge(self.max_bytes).response()(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Normally the app's handler answers; this catches bodies read outside a route.
            if started:
                raise
            await BodyTooLarge(self.max_bytes).response()(scope, receive, send)


class HeadSizeLimit:
    """Answers 431 to a request whose line and headers together pass `max_bytes`.

    The HTTP parser (h11, see `wipsvc.server_options`) already stops buffering a head past
    that size, which keeps a 20 MB header out of memory; but a head that arrives in one read
    is parsed whole, so the exact limit is checked here, for Socket.IO's path too."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or _head_size(scope) <= self.max_bytes:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1009})  # "message too big": 403 to the handshake
            return
        message = f"request line and headers too large: at most {self.max_bytes} bytes are accepted"
        await error_response(431, "headers_too_large", message, {"max_bytes": self.max_bytes})(
            scope, receive, send
        )


def _head_size(scope: Scope) -> int:
    """The bytes of a request's line and headers, as sent (give or take the HTTP version)."""
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b"")) + 1
    line = len(scope.get("method", "GET")) + target + len(" HTTP/1.1\r\n")
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


class RateLimiter:
    """A token bucket per caller: `per_minute` tokens, refilled evenly, in bursts of up to
    `per_minute`."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._capacity = float(per_minute)
        self._per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when counted)

    def acquire(self, caller: str) -> float:
        """Take a token: 0.0 if one was free, else the seconds until one will be."""
        now = self._clock()
        tokens = self._tokens(caller, now)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            if len(self._buckets) > _MAX_TRACKED:
                self._forget_full(now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        return (1.0 - tokens) / self._per_second

    def _tokens(self, caller: str, now: float) -> float:
        tokens, then = self._buckets.get(caller, (self._capacity, now))
        return min(self._capacity, tokens + (now - then) * self._per_second)

    def _forget_full(self, now: float) -> None:
        for caller in [c for c in self._buckets if self._tokens(c, now) >= self._capacity]:
            del self._buckets[caller]


class ActiveJobCap:
    """At most `limit` scheduled, queued or running jobs per collection."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Check and submit happen under one lock per collection, so that concurrent
        # requests on this instance cannot both take the last slot.
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def slot(self, services: Services, collection: str) -> AsyncIterator[None]:
        """Hold while submitting a job; raises 409 when the collection is at its limit."""
        async with self._locks.setdefault(collection, asyncio.Lock()):
            active = await services.job_service.active_jobs(collection)
            if active >= self.limit:
                raise ApiError(
                    409,
                    "too_many_active_jobs",
                    f"collection '{collection}' already has {active} active (scheduled, queued or running) "
                    f"jobs, the most allowed; wait for one to finish or cancel one",
                    {"active_jobs": active, "limit": self.limit},
                )
            yield


async def limit_job_starts(runtime: RuntimeDep, access: Access) -> None:
    """429 with Retry-After once the caller has started too many jobs lately."""
    limiter = runtime.job_start_limiter
    wait = limiter.acquire(access.rate_key)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise HeaderedApiError(
            429,
            "rate_limited",
            f"too many jobs started: at most {limiter.per_minute} per minute; retry in {seconds} s",
            {"retry_after": seconds},
            headers={"Retry-After": str(seconds)},
        )


async def get_job_cap(runtime: RuntimeDep) -> ActiveJobCap:  # async: no thread-pool hop (see deps.py)
    return runtime.active_job_cap


JobStartLimit = Depends(limit_job_starts)
JobCap = Annotated[ActiveJobCap, Depends(get_job_cap)]


def install_limits(api: FastAPI, settings: Settings) -> None:
    """The body-size middleware and the answers that carry headers (the job limits themselves
    are the app runtime's, built when it starts)."""
    api.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)

    @api.exception_handler(HeaderedApiError)
    async def _with_headers(_: Request, exc: HeaderedApiError) -> JSONResponse:
        response = error_response(exc.status_code, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

    @api.exception_handler(BodyTooLarge)
    async def _body_too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return exc.response()
