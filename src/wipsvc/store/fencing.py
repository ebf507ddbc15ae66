"""Fencing: every write made on behalf of a running job carries the job's lease, and changes
nothing once another instance has taken the job over (it raises ``LeaseLost``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.statuses import JobStatus
from wipsvc.store.lease import Lease
from wipsvc.store.records import LeaseLost
from wipsvc.store.tables import utcnow, wip_jobs


def db_now(conn: AsyncConnection) -> Any:
    """Now by the database's clock on PostgreSQL, so that lease times never depend on the
    instances' wall clocks; SQLite serves one instance, whose clock is the only one."""
    return sa.func.now() if conn.dialect.name == "postgresql" else utcnow()


def lease_expiry(conn: AsyncConnection, lease_seconds: float) -> Any:
    return db_now(conn) + timedelta(seconds=lease_seconds)


def owned(job_id: str, owner: str) -> sa.Update:
    return wip_jobs.update().where(
        wip_jobs.c.job_id == job_id,
        wip_jobs.c.owner == owner,
        wip_jobs.c.status == JobStatus.RUNNING.value,
    )


async def fence(conn: AsyncConnection, lease: Lease, *, renew: bool) -> None:
    """Lock the job's row for the write, or fail if this owner lost the job; with ``renew``, the
    write extends the lease too (a job's last writes, which hand it on, need not)."""
    values: dict[str, Any] = {}
    if renew:
        values["lease_expires_at"] = lease_expiry(conn, lease.seconds)
    else:
        values["owner"] = wip_jobs.c.owner  # a no-op assignment that still locks the row
    result = await conn.execute(owned(lease.job_id, lease.owner).values(**values))
    if result.rowcount == 0:
        raise LeaseLost(f"job {lease.job_id} is no longer owned by {lease.owner}")
