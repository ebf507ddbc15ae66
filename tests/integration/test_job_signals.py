"""The instances' signals (cancel a job, a job is queued) over PostgreSQL `LISTEN`/`NOTIFY` and over
Redis pub/sub: one instance's signal reaches another's handlers, and a listening connection that
is cut is made again (with the reconnect reported, so that the registry looks again)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from wipsvc.jobs.signals import JobSignals, PostgresTransport, RedisTransport
from wipsvc.store import Store
from wipsvc.store.channel import LISTENER_NAME, asyncpg_dsn


class Heard:
    """One instance's handlers: what it was told."""

    def __init__(self) -> None:
        self.cancels: asyncio.Queue[str] = asyncio.Queue()
        self.queued = 0
        self.reconnects = 0
        self.reconnected = asyncio.Event()

    def on_queued(self) -> None:
        self.queued += 1

    def on_reconnect(self) -> None:
        self.reconnects += 1
        self.reconnected.set()

    async def start(self, signals: JobSignals) -> None:
        await signals.start(
            on_cancel=self.cancels.put_nowait, on_queued=self.on_queued, on_reconnect=self.on_reconnect
        )

    async def next_cancel(self) -> str:
        return await asyncio.wait_for(self.cancels.get(), 10)


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(postgres_url)
    yield opened
    await opened.close()


async def _exchange(sender: JobSignals, receiver: Heard) -> None:
    job_id = str(uuid.uuid4())
    await sender.send_cancel(job_id)
    assert await receiver.next_cancel() == job_id
    before = receiver.queued
    await sender.send_queued()
    await sender.send_cancel(job_id)  # in order: "queued" was handled before this arrives
    assert await receiver.next_cancel() == job_id
    assert receiver.queued == before + 1


async def _exchange_after_one_reconnect(sender: JobSignals, receiver: Heard) -> None:
    """The receiver, cut off, connects again (once) and hears the sender as before."""
    await asyncio.wait_for(receiver.reconnected.wait(), 10)
    await _exchange(sender, receiver)
    assert receiver.reconnects == 1


@pytest.mark.postgres
async def test_postgres_signals_reach_another_instance_and_survive_a_cut_connection(
    store: Store, postgres_url: str
) -> None:
    dsn = asyncpg_dsn(postgres_url)
    sender = JobSignals(PostgresTransport(store, dsn), "PostgreSQL")
    receiver = JobSignals(PostgresTransport(store, dsn), "PostgreSQL")
    heard, sender_heard = Heard(), Heard()
    await heard.start(receiver)
    await sender_heard.start(sender)
    try:
        await _exchange(sender, heard)
        # The sender hears its own messages too, and ignores them: it has acted already.
        assert sender_heard.cancels.empty() and sender_heard.queued == 0
        # The server ends the listening sessions (a restart, a network cut, an idle timeout).
        admin = await asyncpg.connect(dsn)
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1",
                LISTENER_NAME,
            )
        finally:
            await admin.close()
        assert ended == 2
        await _exchange_after_one_reconnect(sender, heard)
    finally:
        await receiver.stop()
        await sender.stop()


@pytest.mark.redis
async def test_redis_signals_reach_another_instance_and_survive_a_cut_connection(redis_url: str) -> None:
    receiving = RedisTransport(redis_url)
    sender = JobSignals(RedisTransport(redis_url), "Redis")
    receiver = JobSignals(receiving, "Redis")
    heard = Heard()
    await heard.start(receiver)
    admin = Redis.from_url(redis_url)
    try:
        await _exchange(sender, heard)
        # Only this receiver's subscription is cut: others share this Redis.
        clients = await admin.client_list()
        ours = [client["id"] for client in clients if client.get("name") == receiving.client_name]
        assert ours, clients
        for client_id in ours:
            await admin.client_kill_filter(_id=client_id)
        await _exchange_after_one_reconnect(sender, heard)
    finally:
        await admin.aclose()
        await receiver.stop()
        await sender.stop()
