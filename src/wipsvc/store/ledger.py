"""The product ledger of a job: one row per product with its step, checkpoint, attempts and
outcome. While a job runs, its results are read from here; when it ends they are written once
into ``wip_jobs.results`` (see :mod:`wipsvc.store.jobs_repo`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.statuses import (
    TERMINAL_ITEM_STATUSES,
    TERMINAL_JOB_STATUSES,
    EventStatus,
    ItemStatus,
    WipStatus,
)
from wipsvc.store import event_log, fencing
from wipsvc.store.database import Database
from wipsvc.store.lease import Lease
from wipsvc.store.outbox_repo import enqueue_product_failure
from wipsvc.store.records import ItemRecord, JobRecord, ProgressEvent
from wipsvc.store.tables import job_items, utcnow, wip_jobs, wip_products
from wipsvc.text import clean_json, clean_text

TERMINAL_ITEMS = [status.value for status in TERMINAL_ITEM_STATUSES]


class JobLedger:
    """The ledger's reads and the fenced writes of a running job's products."""

    db: Database

    async def items(self, job_id: str) -> list[ItemRecord]:
        query = sa.select(job_items).where(job_items.c.job_id == job_id).order_by(job_items.c.position)
        async with self.db.read() as conn:
            return [ItemRecord.from_row(row) for row in (await conn.execute(query)).mappings()]

    async def results(self, job: JobRecord) -> list[dict[str, Any]]:
        """The job's per-product results: from the ledger while it runs (the products finished so
        far), and once it has ended from ``wip_jobs.results``, written once, at the end (see
        ``_finish``), and never pruned with the ledger."""
        if job.status in TERMINAL_JOB_STATUSES:
            return job.results
        async with self.db.read() as conn:
            return await results_of(conn, job.job_id)

    async def start_item(self, lease: Lease, wip_id: int) -> ItemRecord:
        job_id = lease.job_id
        async with self.db.write() as conn:
            await fencing.fence(conn, lease, renew=True)
            await conn.execute(
                _item(job_id, wip_id)
                .where(job_items.c.status.not_in(TERMINAL_ITEMS))
                .values(
                    status=ItemStatus.RUNNING.value,
                    attempts=job_items.c.attempts + 1,
                    started_at=sa.func.coalesce(job_items.c.started_at, utcnow()),
                )
            )
            row = (
                (
                    await conn.execute(
                        sa.select(job_items).where(job_items.c.job_id == job_id, job_items.c.wip_id == wip_id)
                    )
                )
                .mappings()
                .one()
            )
        return ItemRecord.from_row(row)

    async def checkpoint(
        self,
        lease: Lease,
        wip_id: int,
        *,
        step: str | None,
        checkpoint: dict[str, Any],
        row_num: int | None,
        wip_status: WipStatus,
        product_values: dict[str, Any],
    ) -> None:
        """Persist a step's outcome on the ledger and the WIP product together."""
        job_id = lease.job_id
        async with self.db.write() as conn:
            await fencing.fence(conn, lease, renew=True)
            await conn.execute(
                _item(job_id, wip_id).values(step=step, checkpoint=clean_json(checkpoint), row_num=row_num)
            )
            await conn.execute(
                wip_products.update()
                .where(wip_products.c.id == wip_id)
                .values(status=wip_status.value, updated_at=utcnow(), **clean_json(product_values))
            )

    async def finish_item(
        self,
        lease: Lease,
        wip_id: int,
        *,
        error: str | None,
        error_step: str | None,
        duration: float,
        eta: float | None,
        token_usage: dict[str, int] | None = None,
        transient: bool = False,
    ) -> ProgressEvent | None:
        """Close one product: ledger, WIP status, job counters and results, one event.
        Idempotent: a product already closed is counted once."""
        job_id = lease.job_id
        success = error is None
        error = clean_text(error) if error is not None else None
        async with self.db.write() as conn:
            await fencing.fence(conn, lease, renew=True)
            closed = await conn.execute(
                _item(job_id, wip_id)
                .where(job_items.c.status.not_in(TERMINAL_ITEMS))
                .values(
                    status=(ItemStatus.SUCCEEDED if success else ItemStatus.FAILED).value,
                    error=error,
                    error_step=error_step,
                    error_transient=None if success else transient,
                    finished_at=utcnow(),
                    duration=duration,
                )
            )
            if closed.rowcount == 0:
                return None
            await conn.execute(
                wip_products.update()
                .where(wip_products.c.id == wip_id)
                .values(
                    status=(WipStatus.READY if success else WipStatus.ERROR).value,
                    error=error,
                    updated_at=utcnow(),
                )
            )
            await conn.execute(
                wip_jobs.update()
                .where(wip_jobs.c.job_id == job_id)
                .values(
                    processed_products=wip_jobs.c.processed_products + 1,
                    successful_products=wip_jobs.c.successful_products + int(success),
                    failed_products=wip_jobs.c.failed_products + int(not success),
                    claims=0,  # progress: the job's run limit starts again
                )
            )
            if token_usage:
                await _add_token_usage(conn, job_id, token_usage)
            item = (
                (
                    await conn.execute(
                        sa.select(job_items).where(job_items.c.job_id == job_id, job_items.c.wip_id == wip_id)
                    )
                )
                .mappings()
                .one()
            )
            current = {"wip_id": wip_id, "sku": item["sku"], "success": success, "row_num": item["row_num"]}
            if error is not None:
                current["error"] = error
                current["error_step"] = error_step  # the step it failed at, as in the job's results
                await enqueue_product_failure(conn, job_id, current)
            return await event_log.append_event(conn, job_id, EventStatus.PROCESSING, current, eta=eta)


async def _add_token_usage(conn: AsyncConnection, job_id: str, usage: dict[str, int]) -> None:
    query = sa.select(wip_jobs.c.token_usage).where(wip_jobs.c.job_id == job_id)
    total = dict((await conn.execute(query)).scalar() or {})
    for key, value in usage.items():
        total[key] = total.get(key, 0) + value
    await conn.execute(wip_jobs.update().where(wip_jobs.c.job_id == job_id).values(token_usage=total))


def _item(job_id: str, wip_id: int) -> sa.Update:
    return job_items.update().where(job_items.c.job_id == job_id, job_items.c.wip_id == wip_id)


async def results_of(conn: AsyncConnection, job_id: str) -> list[dict[str, Any]]:
    """The results of the job's finished products, from the ledger, in submission order."""
    query = (
        sa.select(job_items)
        .where(job_items.c.job_id == job_id, job_items.c.status.in_(TERMINAL_ITEMS))
        .order_by(job_items.c.position)
    )
    return [ItemRecord.from_row(row).result() for row in (await conn.execute(query)).mappings()]
