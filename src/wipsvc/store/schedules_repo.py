"""SQL for recurring schedules and their fires log.

A fire is one transaction: a compare-and-set on the schedule's `next_fire_at` (it matches only
while nobody has fired that due time), the jobs it makes, and its row in the fires log. Two
instances firing the same due time at once: on PostgreSQL the second one's UPDATE waits for
the first's row lock, then matches no row and changes nothing; SQLite has one writer anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.schedules import FireOutcome, FirePlan
from wipsvc.store.database import Database
from wipsvc.store.job_create import insert_job
from wipsvc.store.records import NotFound
from wipsvc.store.tables import schedule_fires, schedules, utcnow, wip_products


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    id: int
    collection_name: str
    cron: str
    timezone: str
    statuses: list[str]
    paused: bool
    next_fire_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> ScheduleRecord:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class FireRecord:
    id: int
    schedule_id: int
    due_at: datetime
    fired_at: datetime
    outcome: FireOutcome
    job_ids: list[str]
    products: int

    @classmethod
    def from_row(cls, row: RowMapping) -> FireRecord:
        values: dict[str, Any] = {name: row[name] for name in cls.__slots__}
        values["outcome"] = FireOutcome(values["outcome"])
        return cls(**values)


class SchedulesRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, collection: str, cron: str, timezone: str, statuses: Sequence[str], *, next_fire_at: datetime
    ) -> ScheduleRecord:
        now = utcnow()
        async with self.db.write() as conn:
            result = await conn.execute(
                schedules.insert()
                .values(
                    collection_name=collection,
                    cron=cron,
                    timezone=timezone,
                    statuses=list(statuses),
                    paused=False,
                    next_fire_at=next_fire_at,
                    created_at=now,
                    updated_at=now,
                )
                .returning(*schedules.c)
            )
            return ScheduleRecord.from_row(result.mappings().one())

    async def of_collection(self, collection: str) -> list[ScheduleRecord]:
        query = sa.select(schedules).where(schedules.c.collection_name == collection).order_by(schedules.c.id)
        async with self.db.read() as conn:
            return [ScheduleRecord.from_row(row) for row in (await conn.execute(query)).mappings()]

    async def get(self, collection: str, schedule_id: int) -> ScheduleRecord:
        """The schedule; NotFound if it is another collection's (answered like a missing one)."""
        query = sa.select(schedules).where(
            schedules.c.id == schedule_id, schedules.c.collection_name == collection
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFound(f"schedule {schedule_id} not found in collection '{collection}'")
        return ScheduleRecord.from_row(row)

    async def set_paused(
        self, collection: str, schedule_id: int, paused: bool, *, next_fire_at: datetime | None = None
    ) -> ScheduleRecord:
        values: dict[str, Any] = {"paused": paused, "updated_at": utcnow()}
        if next_fire_at is not None:
            values["next_fire_at"] = next_fire_at
        async with self.db.write() as conn:
            row = (
                (
                    await conn.execute(
                        schedules.update()
                        .where(schedules.c.id == schedule_id, schedules.c.collection_name == collection)
                        .values(**values)
                        .returning(*schedules.c)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"schedule {schedule_id} not found in collection '{collection}'")
        return ScheduleRecord.from_row(row)

    async def delete(self, collection: str, schedule_id: int) -> None:
        """Delete the schedule and its fires log; the jobs it made keep their `schedule_id`."""
        async with self.db.write() as conn:
            deleted = await conn.execute(
                schedules.delete().where(
                    schedules.c.id == schedule_id, schedules.c.collection_name == collection
                )
            )
            if deleted.rowcount == 0:
                raise NotFound(f"schedule {schedule_id} not found in collection '{collection}'")
            await conn.execute(schedule_fires.delete().where(schedule_fires.c.schedule_id == schedule_id))

    async def fires(self, schedule_id: int, *, limit: int) -> list[FireRecord]:
        """The schedule's fires, newest first."""
        query = (
            sa.select(schedule_fires)
            .where(schedule_fires.c.schedule_id == schedule_id)
            .order_by(schedule_fires.c.due_at.desc())
            .limit(limit)
        )
        async with self.db.read() as conn:
            return [FireRecord.from_row(row) for row in (await conn.execute(query)).mappings()]

    async def due(self, now: datetime, *, limit: int = 100) -> list[ScheduleRecord]:
        """Unpaused schedules whose next due time has come, the most overdue first."""
        query = (
            sa.select(schedules)
            .where(schedules.c.paused.is_(False), schedules.c.next_fire_at <= now)
            .order_by(schedules.c.next_fire_at, schedules.c.id)
            .limit(limit)
        )
        async with self.db.read() as conn:
            return [ScheduleRecord.from_row(row) for row in (await conn.execute(query)).mappings()]

    async def fire(
        self,
        schedule: ScheduleRecord,
        plan: FirePlan,
        *,
        now: datetime,
        max_batch: int,
        new_job_id: Callable[[], str],
    ) -> FireRecord | None:
        """Fire ``schedule`` for ``plan.due_at``: advance it to ``plan.next_at`` if nobody fired
        it meanwhile (None otherwise), make its jobs (unless the plan says the fire was missed)
        and log the fire, all in one transaction. Raises the store's Conflict when a product was
        taken by a job meanwhile: nothing is changed, and the next round tries again."""
        async with self.db.write() as conn:
            advanced = await conn.execute(
                schedules.update()
                .where(
                    schedules.c.id == schedule.id,
                    schedules.c.next_fire_at == schedule.next_fire_at,
                    schedules.c.paused.is_(False),
                )
                .values(next_fire_at=plan.next_at, updated_at=now)
            )
            if advanced.rowcount != 1:
                return None  # fired by another instance, paused or deleted meanwhile
            job_ids: list[str] = []
            wip_ids: list[int] = []
            if plan.run:
                wip_ids = await _selected_products(conn, schedule)
                for start in range(0, len(wip_ids), max_batch):
                    job = await insert_job(
                        conn,
                        new_job_id(),
                        schedule.collection_name,
                        wip_ids[start : start + max_batch],
                        schedule_id=schedule.id,
                    )
                    job_ids.append(job.job_id)
            outcome = (
                FireOutcome.MISSED if not plan.run else FireOutcome.FIRED if job_ids else FireOutcome.SKIPPED
            )
            row = (
                await conn.execute(
                    schedule_fires.insert()
                    .values(
                        schedule_id=schedule.id,
                        due_at=plan.due_at,
                        fired_at=now,
                        outcome=outcome.value,
                        job_ids=job_ids,
                        products=len(wip_ids),
                    )
                    .returning(*schedule_fires.c)
                )
            ).mappings()
            return FireRecord.from_row(row.one())


async def _selected_products(conn: AsyncConnection, schedule: ScheduleRecord) -> list[int]:
    """The collection's products in the schedule's statuses and in no active job, oldest first."""
    query = (
        sa.select(wip_products.c.id)
        .where(
            wip_products.c.collection_name == schedule.collection_name,
            wip_products.c.status.in_(schedule.statuses),
            wip_products.c.active_job_id.is_(None),
        )
        .order_by(wip_products.c.created_at, wip_products.c.id)
    )
    return list((await conn.execute(query)).scalars().all())
