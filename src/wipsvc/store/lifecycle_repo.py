"""SQL that removes data: deleting products, finished jobs and whole collections, and pruning
the bulky history (events, ledger rows) of jobs that ended long ago.

Only wipsvc's own tables are touched: a Google sheet is never changed by a deletion, and API
keys naming a deleted collection keep the name (a collection created again under that name is
reachable with them again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.statuses import ACTIVE_JOB_STATUSES, TERMINAL_JOB_STATUSES
from wipsvc.store.database import Database
from wipsvc.store.records import Conflict, NotFound
from wipsvc.store.tables import (
    collections,
    job_events,
    job_items,
    notification_outbox,
    notification_targets,
    schedule_fires,
    schedules,
    sheet_rows,
    wip_jobs,
    wip_products,
)

_ACTIVE = [status.value for status in ACTIVE_JOB_STATUSES]
_TERMINAL = [status.value for status in TERMINAL_JOB_STATUSES]


@dataclass(frozen=True, slots=True)
class Deleted:
    """What one deletion removed, by kind."""

    products: int = 0
    jobs: int = 0
    sheet_rows: int = 0


@dataclass(frozen=True, slots=True)
class Pruned:
    jobs: int  # finished jobs whose history was pruned
    events: int
    items: int


class LifecycleRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def delete_product(self, collection: str, wip_id: int) -> Deleted:
        """Delete a product not held by a queued or running job. Its entries in finished jobs'
        results stay: they are those jobs' history."""
        async with self.db.write() as conn:
            # The condition on `active_job_id` in the DELETE itself, not a read before it: a job
            # reserving the product concurrently either wins (nothing deleted) or finds it gone.
            deleted = await conn.execute(
                wip_products.delete().where(
                    wip_products.c.id == wip_id,
                    wip_products.c.collection_name == collection,
                    wip_products.c.active_job_id.is_(None),
                )
            )
            if deleted.rowcount:
                return Deleted(products=1)
            holder = (
                await conn.execute(
                    sa.select(wip_products.c.active_job_id).where(
                        wip_products.c.id == wip_id, wip_products.c.collection_name == collection
                    )
                )
            ).first()
        if holder is None:
            raise NotFound(f"WIP product {wip_id} not found in collection '{collection}'")
        raise Conflict(
            f"WIP product {wip_id} is in active job {holder.active_job_id}; cancel it first",
            job_id=holder.active_job_id,
        )

    async def delete_job(self, collection: str, job_id: str) -> Deleted:
        """Delete a finished job with its ledger and events (a queued or running job: 409)."""
        async with self.db.write() as conn:
            query = sa.select(wip_jobs.c.status).where(
                wip_jobs.c.job_id == job_id, wip_jobs.c.collection_name == collection
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()  # against a claim starting it meanwhile
            status = (await conn.execute(query)).scalar()
            if status is None:
                raise NotFound(f"job {job_id} not found in collection '{collection}'")
            if status not in _TERMINAL:
                raise Conflict(f"job {job_id} is still {status}; cancel it first", status=status)
            await _delete_jobs(conn, [job_id])
        return Deleted(jobs=1)

    async def delete_collection(self, name: str) -> Deleted:
        """Delete a collection with its products, jobs, schedules and embedded worksheet rows;
        refused while one of its jobs is scheduled, queued or running."""
        async with self.db.write() as conn:
            exists = (
                await conn.execute(sa.select(collections.c.name).where(collections.c.name == name))
            ).first()
            if exists is None:
                raise NotFound(f"collection '{name}' not found")
            # Products first, and only those no job holds: a job reserving products at the same
            # time either keeps them (and the check below refuses) or finds them gone.
            products = await conn.execute(
                wip_products.delete().where(
                    wip_products.c.collection_name == name, wip_products.c.active_job_id.is_(None)
                )
            )
            active = (
                (
                    await conn.execute(
                        sa.select(wip_jobs.c.job_id).where(
                            wip_jobs.c.collection_name == name, wip_jobs.c.status.in_(_ACTIVE)
                        )
                    )
                )
                .scalars()
                .all()
            )
            held = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(wip_products)
                    .where(wip_products.c.collection_name == name)
                )
            ).scalar_one()
            if active or held:
                raise Conflict(  # the transaction rolls back: nothing is deleted
                    f"collection '{name}' has active jobs: {', '.join(active) or 'starting'}; "
                    "cancel them first",
                    active_jobs=list(active),
                )
            job_ids = list(
                (await conn.execute(sa.select(wip_jobs.c.job_id).where(wip_jobs.c.collection_name == name)))
                .scalars()
                .all()
            )
            await _delete_jobs(conn, job_ids)
            rows = await conn.execute(sheet_rows.delete().where(sheet_rows.c.collection_name == name))
            for table in (notification_outbox, notification_targets):
                await conn.execute(table.delete().where(table.c.collection_name == name))
            # Its recurring schedules go with it (and their fires log).
            schedule_ids = sa.select(schedules.c.id).where(schedules.c.collection_name == name)
            await conn.execute(schedule_fires.delete().where(schedule_fires.c.schedule_id.in_(schedule_ids)))
            await conn.execute(schedules.delete().where(schedules.c.collection_name == name))
            await conn.execute(collections.delete().where(collections.c.name == name))
        return Deleted(products=products.rowcount, jobs=len(job_ids), sheet_rows=rows.rowcount)

    async def prune_history(self, finished_before: datetime, *, max_jobs: int = 200) -> Pruned:
        """Delete the events and ledger rows of at most `max_jobs` jobs that ended before
        `finished_before`. The job rows and their `results` stay. Call again while it prunes."""
        has_items = sa.exists().where(job_items.c.job_id == wip_jobs.c.job_id)
        has_events = sa.exists().where(job_events.c.job_id == wip_jobs.c.job_id)
        query = (
            sa.select(wip_jobs.c.job_id)
            .where(
                wip_jobs.c.status.in_(_TERMINAL),
                wip_jobs.c.completed_at < finished_before,
                sa.or_(has_items, has_events),
            )
            .order_by(wip_jobs.c.completed_at)
            .limit(max_jobs)
        )
        async with self.db.write() as conn:
            job_ids = list((await conn.execute(query)).scalars().all())
            if not job_ids:
                return Pruned(0, 0, 0)
            events = await conn.execute(job_events.delete().where(job_events.c.job_id.in_(job_ids)))
            items = await conn.execute(job_items.delete().where(job_items.c.job_id.in_(job_ids)))
        return Pruned(len(job_ids), events.rowcount, items.rowcount)


async def _delete_jobs(conn: AsyncConnection, job_ids: list[str]) -> None:
    # Children first: PostgreSQL enforces the foreign keys to wip_jobs.
    for start in range(0, len(job_ids), 500):
        chunk = job_ids[start : start + 500]
        await conn.execute(job_events.delete().where(job_events.c.job_id.in_(chunk)))
        await conn.execute(notification_outbox.delete().where(notification_outbox.c.job_id.in_(chunk)))
        await conn.execute(job_items.delete().where(job_items.c.job_id.in_(chunk)))
        await conn.execute(wip_jobs.delete().where(wip_jobs.c.job_id.in_(chunk)))
