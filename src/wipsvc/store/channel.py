"""PostgreSQL `LISTEN`/`NOTIFY`: short messages between the instances sharing one database.

`notify` sends through the engine's pool (`pg_notify`, delivered when its transaction commits,
here at once). `PgListener` keeps one dedicated asyncpg connection listening: the pool's
connections come and go, a listener must stay. When that connection is lost (the server
restarted, a network cut, an idle connection dropped by a firewall, noticed by a periodic
`SELECT 1`), it connects again after a short wait and says so through ``on_reconnect``: messages
sent meanwhile are lost, and whoever relies on them looks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from wipsvc.store.database import Database
from wipsvc.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# How often an idle listening connection is checked, and the waits before connecting again.
_CHECK_EVERY = 10.0
_RECONNECT_WAITS = (0.2, 0.5, 1.0, 2.0, 5.0)
# How the listening sessions show in `pg_stat_activity`.
LISTENER_NAME = "wipsvc-listen"


async def notify(db: Database, channel: str, payload: str) -> None:
    """Send ``payload`` to every connection listening on ``channel`` (PostgreSQL only)."""
    async with db.write() as conn:
        await conn.execute(
            sa.text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
        )


def asyncpg_dsn(database_url: str) -> str:
    """The asyncpg DSN of a ``postgresql+asyncpg://`` SQLAlchemy URL (password kept)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgListener:
    """Calls ``on_message(payload)`` for each notification on ``channel`` until stopped."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_message: Callable[[str], None],
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def start(self) -> None:
        """Start listening; returns once the first connection listens (or failed to connect:
        the loop keeps trying)."""
        self._task = asyncio.create_task(self._run(), name=f"wipsvc-listen-{self._channel}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 5)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        import asyncpg  # the `postgres` extra; only reached on PostgreSQL

        failures = 0
        connected_before = False
        while True:
            try:
                conn = await asyncpg.connect(
                    self._dsn, timeout=10, server_settings={"application_name": LISTENER_NAME}
                )
            except Exception as error:  # refused, unknown database, TLS, a timeout: try again
                wait = _RECONNECT_WAITS[min(failures, len(_RECONNECT_WAITS) - 1)]
                failures += 1
                log.warning("listening on %s: cannot connect (%s); again in %g s", self._channel, error, wait)
                await asyncio.sleep(wait)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self._channel, self._deliver)
                failures = 0
                self._listening.set()
                if connected_before and self._on_reconnect is not None:
                    log.info("listening on %s again", self._channel)
                    self._on_reconnect()
                connected_before = True
                await self._watch(conn, lost)
            except Exception as error:  # the connection broke under a statement, or timed out
                log.warning("listening on %s: connection lost (%s); connecting again", self._channel, error)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(_RECONNECT_WAITS[0])

    async def _watch(self, conn: Any, lost: asyncio.Event) -> None:
        """Return when the connection is gone: closed under us, or no longer answering."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):  # not wait_for: it may swallow a cancel (3.11)
                async with asyncio.timeout(_CHECK_EVERY):
                    await lost.wait()
            if lost.is_set() or conn.is_closed():
                return
            await conn.fetchval("SELECT 1", timeout=5)

    def _deliver(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._on_message(payload)
        except Exception:  # one bad message must not end the listening
            log.exception("handling a notification on %s failed", self._channel)
