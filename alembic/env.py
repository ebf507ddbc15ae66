"""Alembic environment: async engines, or a connection handed over by the service."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from wipsvc.store.engine import create_engine
from wipsvc.store.tables import metadata

target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    from wipsvc.config import Settings

    url = os.environ.get("WIPSVC_DATABASE_URL") or Settings().database_url
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
elif context.is_offline_mode():
    raise SystemExit("offline migrations are not supported")
else:
    asyncio.run(_run_with_own_engine())
