"""The event log: every `wip_job_progress` event of a job, stored with a gapless per-job
sequence number in the same transaction as the state change it announces, then published.
Clients that reconnect read what they missed from here (``events_after``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.events import CurrentProduct, JobProgress
from wipsvc.domain.statuses import EventPhase, EventStatus, JobStatus
from wipsvc.domain.times import iso_utc
from wipsvc.store.records import ProgressEvent
from wipsvc.store.tables import job_events, utcnow, wip_jobs

# What an event reads from its job's row: returned by the statement that bumps its sequence.
EVENT_COLUMNS = (
    wip_jobs.c.event_seq,
    wip_jobs.c.collection_name,
    wip_jobs.c.status,
    wip_jobs.c.total_products,
    wip_jobs.c.processed_products,
    wip_jobs.c.successful_products,
    wip_jobs.c.failed_products,
)


async def events_after(conn: AsyncConnection, job_id: str, after_seq: int, limit: int) -> list[ProgressEvent]:
    query = (
        sa.select(job_events.c.seq, job_events.c.payload)
        .where(job_events.c.job_id == job_id, job_events.c.seq > after_seq)
        .order_by(job_events.c.seq)
        .limit(limit)
    )
    rows = (await conn.execute(query)).all()
    return [ProgressEvent(job_id, payload["collection_name"], seq, payload) for seq, payload in rows]


async def append_event(
    conn: AsyncConnection,
    job_id: str,
    status: EventStatus,
    current_product: dict[str, Any] | None,
    *,
    eta: float | None,
    phase: EventPhase | None = None,
) -> ProgressEvent:
    # Bumping the counter on the job row locks it, so sequence numbers are gapless and unique.
    # The event's ETA goes on the row too, so that job status needs no read of the events.
    now = utcnow()
    rounded_eta = None if eta is None else round(eta, 1)
    row = (
        (
            await conn.execute(
                wip_jobs.update()
                .where(wip_jobs.c.job_id == job_id)
                .values(event_seq=wip_jobs.c.event_seq + 1, eta_seconds=rounded_eta, eta_at=now)
                .returning(*EVENT_COLUMNS)
            )
        )
        .mappings()
        .one()
    )
    payload = JobProgress(
        job_id=job_id,
        status=status,
        total=row["total_products"],
        processed=row["processed_products"],
        successful=row["successful_products"],
        failed=row["failed_products"],
        current_product=None if current_product is None else CurrentProduct.model_validate(current_product),
        collection_name=row["collection_name"],
        seq=row["event_seq"],
        eta_seconds=rounded_eta,
        job_status=JobStatus(row["status"]),
        timestamp=iso_utc(now),
        phase=phase,
    ).payload()
    await conn.execute(
        job_events.insert().values(job_id=job_id, seq=row["event_seq"], created_at=now, payload=payload)
    )
    return ProgressEvent(job_id, row["collection_name"], row["event_seq"], payload)
