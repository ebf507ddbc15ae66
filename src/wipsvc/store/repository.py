"""`Store`: the one object the rest of the service uses to reach the database."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from wipsvc.store.collections_repo import CollectionsRepository
from wipsvc.store.database import Database
from wipsvc.store.engine import create_engine, upgrade_schema
from wipsvc.store.job_listing_repo import JobListingRepository
from wipsvc.store.jobs_repo import JobsRepository
from wipsvc.store.keys_repo import KeysRepository
from wipsvc.store.lifecycle_repo import LifecycleRepository
from wipsvc.store.outbox_repo import OutboxRepository
from wipsvc.store.priority_repo import PriorityRepository
from wipsvc.store.rerun_repo import RerunRepository
from wipsvc.store.schedules_repo import SchedulesRepository
from wipsvc.store.stalled_sessions import StalledSessions


class Store:
    def __init__(
        self, engine: AsyncEngine, *, idle_timeout: float = 0.0, statement_timeout: float = 0.0
    ) -> None:
        """``idle_timeout`` and ``statement_timeout``: the connections' (seconds, 0 = none), from
        which sessions stalled mid-statement are judged (see stalled_sessions)."""
        self.engine = engine
        self.db = Database(engine)
        self.stalled_sessions = StalledSessions(
            self.db, idle_timeout=idle_timeout, statement_timeout=statement_timeout
        )
        self.collections = CollectionsRepository(self.db)
        self.jobs = JobsRepository(self.db)
        self.keys = KeysRepository(self.db)
        self.job_listing = JobListingRepository(self.db)
        self.lifecycle = LifecycleRepository(self.db)
        self.outbox = OutboxRepository(self.db)
        self.reruns = RerunRepository(self.db)
        self.priority = PriorityRepository(self.db)
        self.schedules = SchedulesRepository(self.db)

    @classmethod
    async def open(
        cls,
        database_url: str,
        *,
        upgrade: bool = True,
        statement_timeout: float | None = None,
        idle_in_transaction_timeout: float | None = None,
    ) -> Store:
        """Open the database; the timeouts (seconds, PostgreSQL only) apply to every connection."""
        engine = create_engine(
            database_url,
            statement_timeout=statement_timeout,
            idle_in_transaction_timeout=idle_in_transaction_timeout,
        )
        if upgrade:
            await upgrade_schema(engine)
        return cls(
            engine,
            idle_timeout=idle_in_transaction_timeout or 0.0,
            statement_timeout=statement_timeout or 0.0,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.db.is_sqlite

    async def ping(self) -> None:
        async with self.db.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def check_writable(self) -> None:
        """Raise if the database cannot be written (a read-only file, mount or replica): a write
        that changes nothing."""
        async with self.db.write() as conn:
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))

    async def close(self) -> None:
        await self.engine.dispose()
