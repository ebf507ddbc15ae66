"""Socket.IO: relays `wip_job_progress` events from the bus to the clients allowed to see them.

Clients receive their collections' events without subscribing (the original front-end
code works as written). A client may also emit `subscribe` with `{job_id, after_seq}` to
be sent the stored events it missed, in order; events carry `seq`, so a client that
gets one twice (replayed and live) drops the duplicate. A replay sends at most
`socket_replay_page` events; the answer's `more` says to subscribe again from its `last_seq`.

One connection cannot make the server work or buffer without limit: a malformed
`subscribe` gets an error answer, replays of one connection run one at a time and are
rate-limited (`socket_subscribes_per_minute`), and a connection with more than
`socket_max_queued_packets` packets waiting to be sent is closed (see `bounded.py`).

A key is checked when a client connects, again before every replay, and every
`socket_key_recheck_seconds` for every open connection: a revoked key's connections are
closed (the client's reconnect is then refused), so revocation also ends live events.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable
from typing import Any

import socketio
from socketio.exceptions import ConnectionRefusedError as SocketRefused

from wipsvc.api.limits import RateLimiter
from wipsvc.auth import Unauthorized, arrived_via_loopback, authenticate
from wipsvc.config import Settings
from wipsvc.jobs.events import Notice
from wipsvc.realtime.bounded import BoundedAsyncServer
from wipsvc.services import Services
from wipsvc.store import ProgressEvent
from wipsvc.tasks import cancel_and_wait

log = logging.getLogger(__name__)

EVENT = "wip_job_progress"
ALL_COLLECTIONS_ROOM = "collections:*"
# As the REST routes take a job id; anything else cannot name a job.
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# `seq` is a 32-bit integer column on PostgreSQL.
MAX_SEQ = 2**31 - 1


def collection_room(name: str) -> str:
    return f"collection:{name}"


class Realtime:
    def __init__(self, settings: Settings, services: Callable[[], Services]) -> None:
        manager = socketio.AsyncRedisManager(settings.redis_url) if settings.redis_url else None
        self.server = BoundedAsyncServer(
            max_queued_packets=settings.socket_max_queued_packets,
            async_mode="asgi",
            client_manager=manager,
            cors_allowed_origins=settings.cors_origins or None,
            logger=False,
            engineio_logger=False,
        )
        self._services = services
        # sid -> API key id (None: connected while no key existed), for this instance's connections
        self._key_of: dict[str, int | None] = {}
        self._replay_page = settings.socket_replay_page
        self._subscribes = RateLimiter(settings.socket_subscribes_per_minute)
        self._replaying: dict[str, asyncio.Lock] = {}  # sid -> held while replaying to it
        self.server.on("connect", self._connect)
        self.server.on("disconnect", self._disconnect)
        self.server.on("subscribe", self._subscribe)

    async def close(self) -> None:
        """Stop listening to Redis and close its connections (python-socketio has no call for it)."""
        manager = self.server.manager
        listener = getattr(manager, "thread", None)
        if isinstance(listener, asyncio.Task):
            await cancel_and_wait(listener)
        for connection in (getattr(manager, "pubsub", None), getattr(manager, "redis", None)):
            if connection is not None:
                await connection.aclose()

    def client_count(self) -> int:
        """Clients connected to this instance."""
        return len(self._key_of)

    async def watch_revocations(self, interval: float) -> None:
        """Run until cancelled: every ``interval`` seconds, close connections whose key was revoked."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.close_revoked()
            except Exception:  # the store may be briefly unavailable: try again next round
                log.exception("checking the API keys of open connections failed")

    async def close_revoked(self) -> int:
        """Disconnect this instance's clients whose key is revoked or gone, and those that came in
        without a key while none existed once a key exists; how many."""
        keys = self._services().store.keys
        connected = dict(self._key_of)
        valid = await keys.still_valid({key_id for key_id in connected.values() if key_id is not None})
        keyless = any(key_id is None for key_id in connected.values()) and await keys.any_exist()
        closing = [
            sid
            for sid, key_id in connected.items()
            if (key_id is None and keyless) or (key_id is not None and key_id not in valid)
        ]
        for sid in closing:
            if not self.server.manager.is_connected(sid, "/"):
                self._key_of.pop(sid, None)  # already gone without a disconnect event
                continue
            key_id = connected[sid]
            reason = "no API key, and keys exist now" if key_id is None else f"API key {key_id} revoked"
            try:
                log.info("closing a Socket.IO connection: %s", reason)
                # This instance's own client: no need to go through the Redis manager's queue.
                await self.server.disconnect(sid, ignore_queue=True)
            except Exception:  # left in `_key_of`: the next round tries again
                log.exception("closing Socket.IO connection %s failed", sid)
        return len(closing)

    async def relay(self, event: ProgressEvent) -> None:
        """Bus handler: send one stored event to every client allowed to see it."""
        await self.server.emit(
            EVENT, event.payload, to=[collection_room(event.collection_name), ALL_COLLECTIONS_ROOM]
        )

    async def relay_notice(self, notice: Notice) -> None:
        """Bus handler for live announcements (`wip_job_scheduled`): to the same rooms."""
        await self.server.emit(
            notice.name, notice.payload, to=[collection_room(notice.collection_name), ALL_COLLECTIONS_ROOM]
        )

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        scope = environ.get("asgi.scope") or {}
        client = scope.get("client")
        try:
            principal = await authenticate(
                self._services().store.keys,
                _presented_key(environ, auth),
                client=str(client[0]) if client else "unknown",
                via_loopback=arrived_via_loopback(scope.get("server")),
            )
        except Unauthorized:
            raise SocketRefused("unauthorized") from None
        # Rooms are joined only now that the client's access is known.
        allowed = None if principal.collections is None else sorted(principal.collections)
        await self.server.save_session(sid, {"collections": allowed, "key_id": principal.key_id})
        self._key_of[sid] = principal.key_id
        if allowed is None:
            await self.server.enter_room(sid, ALL_COLLECTIONS_ROOM)
        for name in allowed or ():
            await self.server.enter_room(sid, collection_room(name))

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        self._key_of.pop(sid, None)
        self._replaying.pop(sid, None)

    async def _subscribe(self, sid: str, *args: Any) -> dict[str, Any]:
        # Whatever a client sends must end in an answer: no payload, several, wrong types.
        request = _subscribe_request(args)
        if isinstance(request, str):
            return {"ok": False, "error": request}
        wait = self._subscribes.acquire(sid)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            error = f"too many subscribes; retry in {seconds} s"
            return {"ok": False, "error": error, "retry_after": seconds}
        job_id, after_seq = request
        # One replay at a time per connection, so its events are read and queued page by page.
        async with self._replaying.setdefault(sid, asyncio.Lock()):
            session = await self._session(sid)
            if session is None:
                return {"ok": False, "error": "not connected"}
            return await self._replay(sid, session, job_id, after_seq)

    async def _replay(self, sid: str, session: dict[str, Any], job_id: str, after_seq: int) -> dict[str, Any]:
        services = self._services()
        if not await self._key_still_valid(session.get("key_id"), services):
            return {"ok": False, "error": "unauthorized"}
        job = await services.store.jobs.get(job_id)
        allowed = session.get("collections")
        if job is None or (allowed is not None and job.collection_name not in allowed):
            return {"ok": False, "error": "job not found"}
        events = await services.store.jobs.events_after(job.job_id, after_seq, limit=self._replay_page)
        for event in events:
            if not self.server.manager.is_connected(sid, "/"):
                break  # closed meanwhile (see bounded.py): the rest would be dropped anyway
            await self.server.emit(EVENT, event.payload, to=sid)
        last_seq = events[-1].seq if events else job.event_seq
        return {
            "ok": True,
            "replayed": len(events),
            "last_seq": last_seq,
            "more": len(events) == self._replay_page and last_seq < job.event_seq,
        }

    async def _session(self, sid: str) -> dict[str, Any] | None:
        """The connection's session; None once it is gone (a subscribe may outlive its connection)."""
        if not self.server.manager.is_connected(sid, "/"):
            return None
        try:
            session: dict[str, Any] = await self.server.get_session(sid)
        except KeyError:
            return None
        return session

    async def _key_still_valid(self, key_id: int | None, services: Services) -> bool:
        # A key revoked after this client connected stops replays at once.
        if key_id is None:
            return True
        record = await services.store.keys.get(key_id)
        return record is not None and not record.revoked


def _subscribe_request(args: tuple[Any, ...]) -> tuple[str, int] | str:
    """`(job_id, after_seq)` from a `subscribe`'s arguments, or what is wrong with them."""
    if len(args) != 1 or not isinstance(args[0], dict):
        return "expected one argument {job_id: str, after_seq: int}"
    job_id, after_seq = args[0].get("job_id"), args[0].get("after_seq", 0)
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        return "job_id must be 1-64 letters, digits, '-' or '_'"
    if not isinstance(after_seq, int) or isinstance(after_seq, bool) or not 0 <= after_seq <= MAX_SEQ:
        return f"after_seq must be an integer from 0 to {MAX_SEQ}"
    return job_id, after_seq


def _presented_key(environ: dict[str, Any], auth: Any) -> str | None:
    """The key from the connect `auth` payload (`{"api_key": …}`), else from the same
    headers REST takes (for clients that cannot send an auth payload)."""
    if isinstance(auth, dict) and isinstance(auth.get("api_key"), str) and auth["api_key"]:
        return str(auth["api_key"])
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return str(environ.get("HTTP_X_API_KEY", "")) or None
