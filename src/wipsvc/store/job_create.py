"""Creating a job inside a transaction: its row, its ledger, its products' reservation; and the
move of scheduled jobs to the queue once their time has come. Shared by the job repository and
the recurring schedules, whose fire creates its jobs in the transaction that advances it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.priority import Priority
from wipsvc.domain.statuses import ItemStatus, JobStatus
from wipsvc.store import fencing
from wipsvc.store.records import Conflict, JobRecord, NotFound
from wipsvc.store.tables import job_items, utcnow, wip_jobs, wip_products


async def insert_job(
    conn: AsyncConnection,
    job_id: str,
    collection: str,
    wip_ids: Sequence[int],
    *,
    retry_of: str | None = None,
    run_at: datetime | None = None,
    schedule_id: int | None = None,
    priority: Priority = Priority.NORMAL,
) -> JobRecord:
    """Within the caller's transaction: the job, its ledger and its products' reservation.
    With ``run_at`` the job is `scheduled` (the claim queues it once that time has come)."""
    now = utcnow()
    rows = (
        await conn.execute(
            sa.select(wip_products.c.id, wip_products.c.sku, wip_products.c.active_job_id).where(
                wip_products.c.collection_name == collection, wip_products.c.id.in_(list(wip_ids))
            )
        )
    ).all()
    by_id = {row.id: row for row in rows}
    unknown = [wip_id for wip_id in wip_ids if wip_id not in by_id]
    if unknown:
        raise NotFound(f"unknown wip_ids in collection '{collection}': {', '.join(map(str, unknown))}")
    # Reserving in one conditional UPDATE makes two concurrent submits of the same
    # product impossible on both databases: the second matches fewer rows.
    reserved = await conn.execute(
        wip_products.update()
        .where(wip_products.c.id.in_(list(wip_ids)), wip_products.c.active_job_id.is_(None))
        .values(active_job_id=job_id)
    )
    if reserved.rowcount != len(wip_ids):
        busy = await _busy(conn, wip_ids, job_id)
        raise Conflict(  # the transaction rolls back, releasing what was reserved
            f"products already in an active job: {', '.join(map(str, sorted(busy)))}", busy=busy
        )
    status = JobStatus.QUEUED if run_at is None else JobStatus.SCHEDULED
    await conn.execute(
        wip_jobs.insert().values(
            job_id=job_id,
            collection_name=collection,
            wip_ids=json.dumps(list(wip_ids)),
            status=status.value,
            total_products=len(wip_ids),
            results="[]",
            created_at=now,
            retry_of=retry_of,
            run_at=run_at,
            schedule_id=schedule_id,
            priority=priority.value,
        )
    )
    await conn.execute(
        job_items.insert(),
        [
            {
                "job_id": job_id,
                "wip_id": wip_id,
                "position": position,
                "sku": by_id[wip_id].sku,
                "status": ItemStatus.PENDING.value,
                "checkpoint": {},
            }
            for position, wip_id in enumerate(wip_ids)
        ],
    )
    row = (await conn.execute(sa.select(wip_jobs).where(wip_jobs.c.job_id == job_id))).mappings().one()
    return JobRecord.from_row(row)


async def _busy(conn: AsyncConnection, wip_ids: Sequence[int], job_id: str) -> dict[int, str]:
    rows = await conn.execute(
        sa.select(wip_products.c.id, wip_products.c.active_job_id).where(
            wip_products.c.id.in_(list(wip_ids)),
            wip_products.c.active_job_id.is_not(None),
            wip_products.c.active_job_id != job_id,
        )
    )
    return dict(rows.all())


async def queue_due_scheduled(conn: AsyncConnection) -> None:
    """Scheduled jobs whose `run_at` the database's clock has passed become `queued`. On
    PostgreSQL rows another claim is moving are skipped, not waited for: two claims moving the
    same jobs in different orders would otherwise deadlock."""
    due = sa.select(wip_jobs.c.job_id).where(
        wip_jobs.c.status == JobStatus.SCHEDULED.value, wip_jobs.c.run_at <= fencing.db_now(conn)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    await conn.execute(
        wip_jobs.update()
        .where(wip_jobs.c.job_id.in_(due), wip_jobs.c.status == JobStatus.SCHEDULED.value)
        .values(status=JobStatus.QUEUED.value)
    )
