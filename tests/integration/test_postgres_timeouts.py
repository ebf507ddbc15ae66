"""PostgreSQL's timeouts on the service's sessions: what they end, and the one wait they miss.

A statement timeout is an outage (the job pauses and resumes), not a refusal of the product. A
frozen owner's session stalled mid-statement is ended by no timeout of PostgreSQL, so the
instances end it themselves before they claim (see `wipsvc.store.stalled_sessions`): asyncpg
prepares a statement with Parse/Describe/Flush and binds it in a second message, and the tests
freeze a session right in between, holding the job row its transaction locked first, the way a
process stopped with SIGSTOP at that moment does.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.store import Store, is_outage
from wipsvc.store.stalled_sessions import APPLICATION_NAME
from wipsvc.store.tables import wip_jobs

pytestmark = pytest.mark.postgres

IDLE_TIMEOUT = 0.5
STATEMENT_TIMEOUT = 2.0


@contextlib.asynccontextmanager
async def _store_with_timeouts(url: str) -> AsyncIterator[Store]:
    opened = await Store.open(
        url, idle_in_transaction_timeout=IDLE_TIMEOUT, statement_timeout=STATEMENT_TIMEOUT
    )
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def owner(postgres_url: str) -> AsyncIterator[Store]:
    async with _store_with_timeouts(postgres_url) as store:
        yield store


@pytest.fixture
async def other(postgres_url: str) -> AsyncIterator[Store]:
    async with _store_with_timeouts(postgres_url) as store:
        yield store


async def _running_job(owner: Store, other: Store) -> str:
    await other.collections.ensure("sinks")
    ids = await other.collections.create_products("sinks", [(uuid.uuid4().hex[:8], "https://shop.example/1")])
    job = await other.jobs.create(str(uuid.uuid4()), "sinks", ids)
    claimed = await owner.jobs.claim("a", lease_seconds=0.1, per_collection=1, limit=1, take_running=False)
    assert [c.job_id for c in claimed] == [job.job_id]
    return job.job_id


async def _freeze_mid_statement(conn: AsyncConnection, job_id: str) -> int:
    """Lock the job row as a fenced write does, then stop after the next statement's Parse: the
    session waits for a Bind that never comes. Returns its backend pid."""
    await conn.begin()
    await conn.execute(wip_jobs.update().where(wip_jobs.c.job_id == job_id).values(owner="a"))
    raw = (await conn.get_raw_connection()).driver_connection
    assert isinstance(raw, asyncpg.Connection)
    await raw.prepare("UPDATE wip_products SET updated_at = now() WHERE id = $1")
    pid: int = raw.get_server_pid()
    return pid


async def _session(store: Store, pid: int) -> tuple[str, str] | None:
    async with store.db.read() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT state, wait_event FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            )
        ).first()
    return (str(row[0]), str(row[1])) if row else None


def _dsn(postgres_url: str) -> str:
    return postgres_url.replace("postgresql+asyncpg://", "postgresql://")


async def _end_session(store: Store, pid: int) -> None:
    async with store.db.write() as conn:
        await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def _claim(store: Store) -> list[str]:
    claimed = await store.jobs.claim("b", lease_seconds=30, per_collection=1, limit=1, take_running=False)
    return [c.job_id for c in claimed]


async def test_a_session_frozen_mid_statement_is_ended_and_its_job_taken_over(
    owner: Store, other: Store
) -> None:
    job_id = await _running_job(owner, other)
    async with owner.engine.connect() as frozen:
        pid = await _freeze_mid_statement(frozen, job_id)
        # Twice the idle-in-transaction timeout later, PostgreSQL has ended nothing: the session
        # is mid-statement, waiting for its client, and the claim passes over the locked job.
        await asyncio.sleep(2 * IDLE_TIMEOUT)
        assert await _session(other, pid) == ("active", "ClientRead")
        assert await _claim(other) == []

        assert await other.stalled_sessions.end() == [pid]
        async with asyncio.timeout(20):  # the server ends the session at its next interrupt check
            while (taken := await _claim(other)) == []:
                await asyncio.sleep(0.05)
        assert taken == [job_id]
        assert await _session(other, pid) is None
        with pytest.raises(sa.exc.DBAPIError):  # the frozen instance finds its session gone
            await frozen.execute(sa.text("SELECT 1"))


async def test_a_session_blocked_sending_to_a_frozen_client_is_ended(
    owner: Store, other: Store, postgres_url: str
) -> None:
    job_id = await _running_job(owner, other)
    # A connection as the service opens them (its name and timeouts), driven by hand.
    settings = {
        "application_name": APPLICATION_NAME,
        "statement_timeout": str(round(STATEMENT_TIMEOUT * 1000)),
        "idle_in_transaction_session_timeout": str(round(IDLE_TIMEOUT * 1000)),
    }
    frozen = await asyncpg.connect(_dsn(postgres_url), server_settings=settings)
    pid = frozen.get_server_pid()
    await frozen.execute("BEGIN")
    await frozen.execute("UPDATE wip_jobs SET owner = 'a' WHERE job_id = $1", job_id)
    frozen._transport.pause_reading()  # the process reads its socket no more, as a frozen one
    # About 200 MB, sent as one simple query (no round trip before it runs): far more than the
    # sockets' buffers hold, so the server blocks sending it.
    flood = asyncio.create_task(frozen.execute("SELECT repeat('x', 1000) FROM generate_series(1, 200000)"))
    try:
        async with asyncio.timeout(20):
            while await _session(other, pid) != ("active", "ClientWrite"):
                await asyncio.sleep(0.05)
        # Past the statement timeout plus the idle-in-transaction timeout PostgreSQL has ended
        # nothing: its statement timeout waits for the write to go through.
        await asyncio.sleep(STATEMENT_TIMEOUT + IDLE_TIMEOUT)
        assert await _session(other, pid) == ("active", "ClientWrite")
        assert await _claim(other) == []

        assert await other.stalled_sessions.end() == [pid]
        async with asyncio.timeout(20):
            while (taken := await _claim(other)) == []:
                await asyncio.sleep(0.05)
        assert taken == [job_id]
    finally:
        await _end_session(other, pid)  # if the test failed before, so that it ends
        frozen._transport.resume_reading()
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
            await asyncio.wait_for(flood, 20)
        frozen.terminate()


async def test_only_the_services_sessions_stalled_past_the_timeout_are_ended(
    owner: Store, other: Store, postgres_url: str
) -> None:
    job_id = await _running_job(owner, other)
    stranger = await asyncpg.connect(_dsn(postgres_url))
    try:
        # Another client's session stalled the same way is none of the service's business.
        await stranger.execute("BEGIN")
        await stranger.prepare("SELECT 1")
        async with owner.engine.connect() as frozen:
            pid = await _freeze_mid_statement(frozen, job_id)
            # Not yet stalled for as long as the timeout, and never when the timeout is off.
            assert await other.stalled_sessions.end() == []
            patient = Store(other.engine, idle_timeout=0, statement_timeout=STATEMENT_TIMEOUT)
            await asyncio.sleep(2 * IDLE_TIMEOUT)
            assert await patient.stalled_sessions.end() == []
            assert await _session(other, pid) == ("active", "ClientRead")
            assert await other.stalled_sessions.end() == [pid]
            with pytest.raises(sa.exc.DBAPIError):
                await frozen.execute(sa.text("SELECT 1"))
        assert await _session(other, stranger.get_server_pid()) == ("active", "ClientRead")
    finally:
        stranger.terminate()


async def test_a_statement_timeout_is_an_outage_not_a_refusal(postgres_url: str) -> None:
    store = await Store.open(postgres_url, statement_timeout=0.1)
    try:
        with pytest.raises(sa.exc.DBAPIError) as raised:
            async with store.db.write() as conn:
                await conn.execute(sa.text("SELECT pg_sleep(5)"))
        assert raised.value.orig is not None
        assert getattr(raised.value.orig, "sqlstate", None) == "57014"  # query_canceled
        assert is_outage(raised.value)
        await store.ping()  # the connection itself is fine: the next statement runs
    finally:
        await store.close()
