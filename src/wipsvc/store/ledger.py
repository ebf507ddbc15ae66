"""The product ledger of a job: one row per product with its step, checkpoint, attempts and
outcome. While a job runs, its results are read from here; when it ends they are written once
into ``wip_jobs.results`` (see :mod:`wipsvc.store.jobs_repo`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.statuses import TERMINAL_ITEM_STATUSES, TERMINAL_JOB_STATUSES, WipStatus
from wipsvc.store import ledger_batch, ledger_results
from wipsvc.store.database import Database
from wipsvc.store.lease import Lease
from wipsvc.store.ledger_batch import Committed, ItemCheckpoint, ItemFinish, ItemStart, LedgerWrite
from wipsvc.store.records import RESULT_COLUMNS, ItemRecord, JobRecord, ProgressEvent, item_result
from wipsvc.store.tables import job_items

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

    async def results_json(self, job: JobRecord) -> str:
        """`results` as a JSON array: a running job's from the results kept on its ledger rows (a
        poll joins stored text), an ended job's as stored with it."""
        if job.status in TERMINAL_JOB_STATUSES:
            return job.results_json
        async with self.db.read() as conn:
            return await ledger_results.results_json_of(conn, job.job_id)

    async def finished_results(self, job_id: str) -> dict[int, str]:
        """Each finished product's result as JSON, by wip id in submission order."""
        async with self.db.read() as conn:
            return await ledger_results.finished_results(conn, job_id)

    async def write_batch(self, lease: Lease, writes: Sequence[LedgerWrite]) -> Committed:
        """Many products' writes in one transaction (see :mod:`wipsvc.store.ledger_batch`)."""
        async with self.db.write() as conn:
            return await ledger_batch.write_batch(conn, lease, writes)

    async def start_item(self, lease: Lease, wip_id: int) -> ItemRecord:
        """Start one product and read its entry back (a running job's products go through
        ``write_batch``, knowing their entries already)."""
        async with self.db.write() as conn:
            await ledger_batch.write_batch(conn, lease, [ItemStart(wip_id)])
            query = sa.select(job_items).where(
                job_items.c.job_id == lease.job_id, job_items.c.wip_id == wip_id
            )
            row = (await conn.execute(query)).mappings().one()
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
        await self.write_batch(
            lease, [ItemCheckpoint(wip_id, step, checkpoint, row_num, wip_status, product_values)]
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
        """Close one product: ledger, WIP status, job counters, one event. Idempotent: a product
        already closed is counted once (and has no event)."""
        async with self.db.write() as conn:
            query = sa.select(job_items.c.sku, job_items.c.row_num).where(
                job_items.c.job_id == lease.job_id, job_items.c.wip_id == wip_id
            )
            sku, row_num = (await conn.execute(query)).one()
            finish = ItemFinish(
                wip_id,
                sku,
                error,
                error_step,
                duration,
                eta,
                row_num=row_num,
                token_usage=token_usage,
                transient=transient,
            )
            events = (await ledger_batch.write_batch(conn, lease, [finish])).events
        return events[0] if events else None


async def results_of(conn: AsyncConnection, job_id: str) -> list[dict[str, Any]]:
    """The results of the job's finished products, from the ledger, in submission order (only the
    columns a result needs: a running job's status is read often, with all its products)."""
    query = (
        sa.select(*(job_items.c[name] for name in RESULT_COLUMNS))
        .where(job_items.c.job_id == job_id, job_items.c.status.in_(TERMINAL_ITEMS))
        .order_by(job_items.c.position)
    )
    return [item_result(row) for row in (await conn.execute(query)).mappings()]
