"""Scratch PostgreSQL databases, one per test or benchmark run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


@asynccontextmanager
async def scratch_postgres(admin_dsn: str, prefix: str) -> AsyncIterator[str]:
    """A fresh database next to ``admin_dsn``'s, dropped afterwards (even if its users still hold
    connections); yields its DSN in ``admin_dsn``'s form (``postgresql://…``)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(admin_dsn, f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_dsn.rsplit('/', 1)[0]}/{name}"
    finally:
        await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(dsn: str) -> str:
    """The asyncpg DSN as SQLAlchemy's async engine (and ``WIPSVC_DATABASE_URL``) takes it."""
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


async def _admin(admin_dsn: str, statement: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()
