"""SQL for job priority: the order queued jobs are claimed in, and changing a waiting job's
priority (see :mod:`wipsvc.domain.priority`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from wipsvc.domain.priority import LOWEST_RANK, PRIORITY_CHANGEABLE_STATUSES, Priority
from wipsvc.domain.statuses import JobStatus
from wipsvc.store.database import Database
from wipsvc.store.records import Conflict, JobRecord, NotFound
from wipsvc.store.tables import wip_jobs


def claim_order(now: datetime, ageing_seconds: float | None) -> list[Any]:
    """ORDER BY for queued jobs: effective priority (the job's own, raised one class per
    ``ageing_seconds`` queued), then oldest first. Plain SQL, the same on SQLite and PostgreSQL:
    the ageing is a comparison of `created_at` with bound times, so no date arithmetic in SQL."""
    rank: Any = sa.case(
        *((wip_jobs.c.priority == p.value, p.rank) for p in Priority if p is not Priority.NORMAL),
        else_=Priority.NORMAL.rank,
    )
    if ageing_seconds is not None and ageing_seconds > 0:
        for periods in range(1, LOWEST_RANK + 1):
            cutoff = now - timedelta(seconds=periods * ageing_seconds)
            rank = rank - sa.case((wip_jobs.c.created_at <= cutoff, 1), else_=0)
        rank = sa.case((rank < 0, 0), else_=rank)
    return [rank, wip_jobs.c.created_at, wip_jobs.c.job_id]


def fits_cap(job: JobRecord, live: dict[str, int], urgent: dict[str, int], per_collection: int) -> bool:
    """Below its collection's running-job cap; or urgent, exactly at the cap, with a job of
    lower priority among those running (so at most one beyond it, and only to overtake)."""
    running = live.get(job.collection_name, 0)
    if running < per_collection:
        return True
    return (
        job.priority is Priority.URGENT
        and running == per_collection
        and urgent.get(job.collection_name, 0) < running
    )


class PriorityRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def change(
        self,
        job_id: str,
        priority: Priority,
        changeable: Collection[JobStatus] = PRIORITY_CHANGEABLE_STATUSES,
    ) -> JobRecord:
        """Set a waiting job's priority. One conditional UPDATE, so that a claim cannot slip in
        between the check and the change: a job claimed meanwhile is no longer changeable
        (Conflict); NotFound when there is no such job."""
        async with self.db.write() as conn:
            changed = await conn.execute(
                wip_jobs.update()
                .where(wip_jobs.c.job_id == job_id, wip_jobs.c.status.in_([s.value for s in changeable]))
                .values(priority=priority.value)
            )
            found = await conn.execute(sa.select(wip_jobs).where(wip_jobs.c.job_id == job_id))
            row = found.mappings().first()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        job = JobRecord.from_row(row)
        if changed.rowcount != 1:
            allowed = " or ".join(sorted(s.value for s in changeable))
            raise Conflict(
                f"job {job_id} is {job.status.value}: its priority can change only while {allowed}",
                status=job.status.value,
            )
        return job
