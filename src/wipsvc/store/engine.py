"""Engine construction and schema upgrades."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from wipsvc.store.stalled_sessions import APPLICATION_NAME

# Any constant works; it only has to be the same for every instance sharing a database.
_MIGRATION_LOCK_KEY = 0x57495053


def alembic_dir() -> Path:
    """The migrations: inside the installed package, or the project's `alembic/` folder in a checkout.

    The wheel ships the top-level `alembic/` folder as `wipsvc/migrations` (see setup.py). An
    editable install maps that package only for imports, and the folder has no `__init__.py`
    (one would shadow the alembic library when run from the project root), so a checkout is
    found next to the sources instead.
    """
    shipped = files("wipsvc") / "migrations"
    if shipped.is_dir():
        return Path(str(shipped))
    checkout = Path(__file__).resolve().parents[3] / "alembic"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"wipsvc's migrations are missing: neither {shipped} nor {checkout} exists")


def create_engine(
    database_url: str,
    *,
    echo: bool = False,
    statement_timeout: float | None = None,
    idle_in_transaction_timeout: float | None = None,
) -> AsyncEngine:
    """An engine; on PostgreSQL every connection is named ``wipsvc`` and gets the given statement
    and idle-in-transaction timeouts (seconds), so that a paused or partitioned instance cannot
    hold row locks (a job's lease, a claim) for longer than that (one wait escapes both: see
    `stalled_sessions`)."""
    url = make_url(database_url)
    kwargs: dict[str, Any] = {"echo": echo}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        # The name tells the service's sessions apart from any other client's (see stalled_sessions).
        server_settings = {"application_name": APPLICATION_NAME}
        server_settings.update(
            (name, str(round(seconds * 1000)))
            for name, seconds in (
                ("statement_timeout", statement_timeout),
                ("idle_in_transaction_session_timeout", idle_in_transaction_timeout),
            )
            if seconds
        )
        kwargs["connect_args"] = {"server_settings": server_settings}
    try:
        engine = create_async_engine(url, **kwargs)
    except ModuleNotFoundError as error:  # PostgreSQL's driver is the optional extra `postgres`
        raise RuntimeError(
            f"the database driver {error.name!r} is not installed: pip install 'wipsvc[postgres]'"
        ) from error
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while the single writer commits; NORMAL is durable in WAL mode
    # except for the last transactions on power loss, which the lease/resume design tolerates.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(alembic_dir()))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


async def upgrade_schema(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration; safe with several instances starting at once."""
    async with engine.begin() as conn, _migration_lock(conn):
        await conn.run_sync(_upgrade)


@contextlib.asynccontextmanager
async def _migration_lock(conn: AsyncConnection) -> AsyncIterator[None]:
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        # A migration, and the wait for another instance's, may outlast the service's
        # statement timeout, and pause between statements for longer than its idle timeout.
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        await conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
        # Transaction-scoped: released at commit, so a crashed instance never holds it.
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    yield
