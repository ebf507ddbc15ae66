"""Signals between the instances sharing one database: "cancel this job" and "a job is queued".

A cancel sent to one instance for a job another instance runs is stored as a flag on the job;
the owner would see it at its next lease renewal (a third of the lease later). The signal tells
the owner at once, and it stops the job's runner as a local cancel would. "Queued" wakes every
instance's claim loop, so that a job submitted to an instance at its cap starts at once on
another. Both are hints: a lost signal (a connection down at that moment) costs only time, as
the renewal and the claim interval still find what it would have told; after a reconnect each
instance renews its leases and claims at once.

With `WIPSVC_REDIS_URL` the signals go over a Redis pub/sub channel; without Redis, on
PostgreSQL, over `LISTEN`/`NOTIFY`. On SQLite there is one instance and nothing to signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from wipsvc.config import Settings
from wipsvc.store import Store
from wipsvc.store.channel import PgListener, asyncpg_dsn, notify
from wipsvc.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CHANNEL = "wipsvc_jobs"
_CANCEL, _QUEUED = "cancel", "queued"
_MAX_JOB_ID = 64  # as the REST routes take a job id
_CHECK_EVERY = 10.0  # seconds between pings of an idle Redis subscription
_RECONNECT_WAITS = (0.2, 0.5, 1.0, 2.0, 5.0)
_SEND_TIMEOUT = 2.0  # seconds

OnMessage = Callable[[str], None]
OnReconnect = Callable[[], None]


class Transport(Protocol):
    async def send(self, payload: str) -> None: ...
    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None: ...
    async def stop(self) -> None: ...


class JobSignals:
    def __init__(self, transport: Transport, kind: str) -> None:
        self._transport = transport
        self.kind = kind  # "Redis" or "PostgreSQL", for the log
        # Every listener hears its own messages too; this one has acted on them already.
        self._me = uuid.uuid4().hex[:12]
        self._on_cancel: Callable[[str], None] = lambda _job_id: None
        self._on_queued: Callable[[], None] = lambda: None

    async def start(
        self, *, on_cancel: Callable[[str], None], on_queued: Callable[[], None], on_reconnect: OnReconnect
    ) -> None:
        self._on_cancel, self._on_queued = on_cancel, on_queued
        await self._transport.start(self._received, on_reconnect)
        log.info("cancels and queued jobs are signalled to the other instances over %s", self.kind)

    async def stop(self) -> None:
        await self._transport.stop()

    async def send_cancel(self, job_id: str) -> None:
        await self._send(f"{_CANCEL} {self._me} {job_id}")

    async def send_queued(self) -> None:
        await self._send(f"{_QUEUED} {self._me}")

    async def _send(self, payload: str) -> None:
        try:
            # Sent from a cancel's or a submit's request: an unreachable channel must not hold it.
            async with asyncio.timeout(_SEND_TIMEOUT):
                await self._transport.send(payload)
        except Exception as error:  # a hint only: the lease renewal and the claim loop still find it
            log.warning("could not signal the other instances (%s): %s", payload, error)

    def _received(self, payload: str) -> None:
        kind, sender, job_id = [*payload.split(" ", 2), "", ""][:3]
        if not sender or sender == self._me:
            return
        if kind == _CANCEL and 0 < len(job_id) <= _MAX_JOB_ID:
            self._on_cancel(job_id)
        elif kind == _QUEUED and not job_id:
            self._on_queued()


def job_signals(settings: Settings, store: Store) -> JobSignals | None:
    """The signals for this deployment: Redis when configured, else PostgreSQL; None on SQLite."""
    if store.is_sqlite:
        return None
    if settings.redis_url is not None:
        return JobSignals(RedisTransport(settings.redis_url), "Redis")
    return JobSignals(PostgresTransport(store, asyncpg_dsn(settings.database_url)), "PostgreSQL")


class PostgresTransport:
    def __init__(self, store: Store, dsn: str) -> None:
        self._store = store
        self._dsn = dsn
        self._listener: PgListener | None = None

    async def send(self, payload: str) -> None:
        await notify(self._store.db, CHANNEL, payload)

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        self._listener = PgListener(self._dsn, CHANNEL, on_message, on_reconnect)
        await self._listener.start()

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()


class RedisTransport:
    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis  # the `redis` extra, needed only with WIPSVC_REDIS_URL

        # Named, so that an operator (or a test) can find this instance's subscription.
        self.client_name = f"wipsvc-signals-{uuid.uuid4().hex[:12]}"
        self._redis: Any = Redis.from_url(url, client_name=self.client_name)
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def send(self, payload: str) -> None:
        await self._redis.publish(CHANNEL, payload)

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        self._task = asyncio.create_task(self._run(on_message, on_reconnect), name="wipsvc-signals-redis")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 5)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._redis.aclose()

    async def _run(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        failures = 0
        subscribed_before = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            wait = _RECONNECT_WAITS[0]
            try:
                await pubsub.subscribe(CHANNEL)
                failures = 0
                self._listening.set()
                if subscribed_before:
                    log.info("subscribed to the instances' signals again")
                    on_reconnect()
                subscribed_before = True
                while True:
                    message = await pubsub.get_message(timeout=_CHECK_EVERY)
                    if message is None:
                        await pubsub.ping()  # an idle subscription: is the connection still there?
                    elif message.get("type") == "message":
                        _deliver(on_message, message.get("data"))
            except Exception as error:  # redis-py raises ConnectionError, OSError, TimeoutError…
                wait = _RECONNECT_WAITS[min(failures, len(_RECONNECT_WAITS) - 1)]
                failures += 1
                log.warning(
                    "the instances' signals: Redis subscription lost (%s); again in %g s", error, wait
                )
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(wait)


def _deliver(on_message: OnMessage, data: object) -> None:
    try:
        on_message(data.decode() if isinstance(data, bytes) else str(data))
    except Exception:  # one bad message must not end the subscription
        log.exception("handling a signal from another instance failed")
