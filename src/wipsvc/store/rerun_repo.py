"""SQL for automatic re-runs: products that failed on a transient cause are re-run once, as a
new job linked to the first (`retry_of`), a delay after the first job ended."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.statuses import ItemStatus, JobStatus, WipStatus
from wipsvc.store.database import Database
from wipsvc.store.tables import job_items, utcnow, wip_jobs, wip_products


async def mark_for_rerun(conn: AsyncConnection, job_id: str) -> None:
    """Inside the transaction that ends a job: a completed job that is not itself a re-run,
    with a product failed on a transient cause, awaits its re-run."""
    transient_failure = sa.exists().where(
        job_items.c.job_id == job_id,
        job_items.c.status == ItemStatus.FAILED.value,
        job_items.c.error_transient.is_(True),
    )
    await conn.execute(
        wip_jobs.update()
        .where(
            wip_jobs.c.job_id == job_id,
            wip_jobs.c.status == JobStatus.COMPLETED.value,
            wip_jobs.c.retry_of.is_(None),
            transient_failure,
        )
        .values(rerun_pending_since=utcnow())
    )


class RerunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def due(self, ended_before: datetime, *, limit: int = 50) -> list[tuple[str, str]]:
        """(job_id, collection) of the jobs whose re-run is due."""
        query = (
            sa.select(wip_jobs.c.job_id, wip_jobs.c.collection_name)
            .where(
                wip_jobs.c.rerun_pending_since.is_not(None), wip_jobs.c.rerun_pending_since <= ended_before
            )
            .order_by(wip_jobs.c.rerun_pending_since)
            .limit(limit)
        )
        async with self.db.read() as conn:
            return [(row.job_id, row.collection_name) for row in (await conn.execute(query)).all()]

    async def transient_failures(self, job_id: str) -> list[int]:
        """The job's products that failed on a transient cause and still wait for a fix: in
        `error`, and in no other active job."""
        query = (
            sa.select(job_items.c.wip_id)
            .join(wip_products, wip_products.c.id == job_items.c.wip_id)
            .where(
                job_items.c.job_id == job_id,
                job_items.c.status == ItemStatus.FAILED.value,
                job_items.c.error_transient.is_(True),
                wip_products.c.status == WipStatus.ERROR.value,
                wip_products.c.active_job_id.is_(None),
            )
            .order_by(job_items.c.position)
        )
        async with self.db.read() as conn:
            return list((await conn.execute(query)).scalars().all())

    async def settle(self, job_id: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                wip_jobs.update().where(wip_jobs.c.job_id == job_id).values(rerun_pending_since=None)
            )
