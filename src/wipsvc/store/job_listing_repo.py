"""SQL for listing jobs across collections, page by page."""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa

from wipsvc.jobs.models import JobStatus
from wipsvc.store.database import Database
from wipsvc.store.records import JobRecord
from wipsvc.store.tables import wip_jobs


class JobListingRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self,
        *,
        visible: Collection[str] | None,
        collection: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[JobRecord], int]:
        """Jobs newest first, and how many match in all. `visible` limits them to those
        collections (None: every collection)."""
        where: list[sa.ColumnElement[bool]] = []
        if visible is not None:
            where.append(wip_jobs.c.collection_name.in_(sorted(visible)))
        if collection is not None:
            where.append(wip_jobs.c.collection_name == collection)
        if status is not None:
            where.append(wip_jobs.c.status == status.value)
        query = (
            sa.select(wip_jobs)
            .where(*where)
            .order_by(wip_jobs.c.created_at.desc(), wip_jobs.c.job_id)
            .limit(limit)
            .offset(offset)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
            total = (
                await conn.execute(sa.select(sa.func.count()).select_from(wip_jobs).where(*where))
            ).scalar_one()
        return [JobRecord.from_row(row) for row in rows], int(total)
