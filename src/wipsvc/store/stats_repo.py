"""SQL for the service-wide figures of the dashboard's health panel."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from wipsvc.jobs.models import ItemStatus, JobStatus
from wipsvc.store.database import Database
from wipsvc.store.tables import job_items, utcnow, wip_jobs

# Skipped products never ran, so they are not throughput.
_FINISHED = [ItemStatus.SUCCEEDED.value, ItemStatus.FAILED.value]


@dataclass(frozen=True, slots=True)
class Throughput:
    """Products finished per wall-clock minute, oldest minute first; the last is the current one."""

    window_start: datetime
    finished: list[int]
    failed: list[int]


class StatsRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def throughput(
        self, minutes: int = 15, *, now: datetime | None = None, collections: Collection[str] | None = None
    ) -> Throughput:
        """``collections``: count only their products (None: every collection)."""
        now = now or utcnow()
        # Whole clock minutes, so that two readings a few seconds apart agree on the past buckets.
        window_start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
        query = sa.select(job_items.c.finished_at, job_items.c.status).where(
            job_items.c.finished_at >= window_start,
            job_items.c.finished_at <= now,
            job_items.c.status.in_(_FINISHED),
        )
        if collections is not None:
            query = query.join_from(job_items, wip_jobs, job_items.c.job_id == wip_jobs.c.job_id).where(
                wip_jobs.c.collection_name.in_(sorted(collections))
            )
        finished = [0] * minutes
        failed = [0] * minutes
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        # Bucketing here rather than in SQL keeps one query for SQLite and PostgreSQL alike;
        # the window is short, so the rows are few.
        for finished_at, status in rows:
            index = min(int((finished_at - window_start).total_seconds() // 60), minutes - 1)
            finished[index] += 1
            failed[index] += status == ItemStatus.FAILED.value
        return Throughput(window_start, finished, failed)

    async def job_counts(self, collections: Collection[str] | None = None) -> dict[JobStatus, int]:
        """Jobs per active status (queued, running) of ``collections`` (None: every collection);
        other statuses are not counted."""
        query = (
            sa.select(wip_jobs.c.status, sa.func.count())
            .where(wip_jobs.c.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
            .group_by(wip_jobs.c.status)
        )
        if collections is not None:
            query = query.where(wip_jobs.c.collection_name.in_(sorted(collections)))
        counts = {JobStatus.QUEUED: 0, JobStatus.RUNNING: 0}
        async with self.db.read() as conn:
            for status, count in await conn.execute(query):
                counts[JobStatus(status)] = count
        return counts

    async def jobs_by_status(self) -> dict[JobStatus, int]:
        """Jobs in the database per status, every status present (zero when none)."""
        query = sa.select(wip_jobs.c.status, sa.func.count()).group_by(wip_jobs.c.status)
        counts = dict.fromkeys(JobStatus, 0)
        async with self.db.read() as conn:
            for status, count in await conn.execute(query):
                counts[JobStatus(status)] = count
        return counts
