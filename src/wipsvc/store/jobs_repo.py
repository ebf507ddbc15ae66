"""SQL for jobs, their product ledger and their stored progress events.

Every state change and the event announcing it are written in one transaction, and
the event is returned for the caller to publish after the commit. Writes made on
behalf of a running job are fenced by its lease: if another instance has taken the
job over, they raise `LeaseLost` and change nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.jobs.models import (
    ACTIVE_JOB_STATUSES,
    EVENT_STATUS_FOR_TERMINAL,
    TERMINAL_ITEM_STATUSES,
    EventPhase,
    EventStatus,
    ItemStatus,
    JobStatus,
    WipStatus,
)
from wipsvc.store.database import Database
from wipsvc.store.lease import Clock, Lease
from wipsvc.store.outbox_repo import enqueue_job_end, enqueue_product_failure
from wipsvc.store.records import Conflict, ItemRecord, JobRecord, LeaseLost, NotFound, ProgressEvent
from wipsvc.store.rerun_repo import mark_for_rerun
from wipsvc.store.tables import job_events, job_items, utcnow, wip_jobs, wip_products
from wipsvc.text import clean_json, clean_text

_ACTIVE = [status.value for status in ACTIVE_JOB_STATUSES]
_TERMINAL_ITEMS = [status.value for status in TERMINAL_ITEM_STATUSES]
# Namespace of the per-collection advisory locks taken by claims (pg_advisory_xact_lock(int, int)).
_CLAIM_LOCK_NAMESPACE = 0x57495043


class JobsRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading ---------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        async with self.db.read() as conn:
            return await _get_job(conn, job_id)

    async def recent(
        self, collection: str, *, limit: int, status: JobStatus | None = None
    ) -> list[JobRecord]:
        query = sa.select(wip_jobs).where(wip_jobs.c.collection_name == collection)
        if status is not None:
            query = query.where(wip_jobs.c.status == status.value)
        query = query.order_by(wip_jobs.c.created_at.desc(), wip_jobs.c.job_id).limit(limit)
        async with self.db.read() as conn:
            return [JobRecord.from_row(row) for row in (await conn.execute(query)).mappings()]

    async def items(self, job_id: str) -> list[ItemRecord]:
        query = sa.select(job_items).where(job_items.c.job_id == job_id).order_by(job_items.c.position)
        async with self.db.read() as conn:
            return [ItemRecord.from_row(row) for row in (await conn.execute(query)).mappings()]

    async def events_after(self, job_id: str, after_seq: int, limit: int = 10_000) -> list[ProgressEvent]:
        query = (
            sa.select(job_events.c.seq, job_events.c.payload)
            .where(job_events.c.job_id == job_id, job_events.c.seq > after_seq)
            .order_by(job_events.c.seq)
            .limit(limit)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [ProgressEvent(job_id, payload["collection_name"], seq, payload) for seq, payload in rows]

    # -- creating and cancelling -----------------------------------------------------------

    async def create(
        self, job_id: str, collection: str, wip_ids: Sequence[int], *, retry_of: str | None = None
    ) -> JobRecord:
        """Queue a job, reserving its products; none may be unknown or in another active job."""
        now = utcnow()
        async with self.db.write() as conn:
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
                raise NotFound(
                    f"unknown wip_ids in collection '{collection}': {', '.join(map(str, unknown))}"
                )
            # Reserving in one conditional UPDATE makes two concurrent submits of the same
            # product impossible on both databases: the second matches fewer rows.
            reserved = await conn.execute(
                wip_products.update()
                .where(wip_products.c.id.in_(list(wip_ids)), wip_products.c.active_job_id.is_(None))
                .values(active_job_id=job_id)
            )
            if reserved.rowcount != len(wip_ids):
                busy = await self._busy(conn, wip_ids, job_id)
                raise Conflict(  # the transaction rolls back, releasing what was reserved
                    f"products already in an active job: {', '.join(map(str, sorted(busy)))}",
                    busy=busy,
                )
            await conn.execute(
                wip_jobs.insert().values(
                    job_id=job_id,
                    collection_name=collection,
                    wip_ids=json.dumps(list(wip_ids)),
                    status=JobStatus.QUEUED.value,
                    total_products=len(wip_ids),
                    results="[]",
                    created_at=now,
                    retry_of=retry_of,
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
            job = await _get_job(conn, job_id)
        assert job is not None
        return job

    async def _busy(self, conn: AsyncConnection, wip_ids: Sequence[int], job_id: str) -> dict[int, str]:
        rows = await conn.execute(
            sa.select(wip_products.c.id, wip_products.c.active_job_id).where(
                wip_products.c.id.in_(list(wip_ids)),
                wip_products.c.active_job_id.is_not(None),
                wip_products.c.active_job_id != job_id,
            )
        )
        return dict(rows.all())

    async def request_cancel(self, job_id: str) -> tuple[JobRecord, ProgressEvent | None]:
        """Cancel a queued job at once; flag a running one for its owner to stop."""
        async with self.db.write() as conn:
            job = await _get_job(conn, job_id, lock=True)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            if job.status is JobStatus.QUEUED:
                event = await _finish(conn, job_id, JobStatus.CANCELLED, None, eta=None)
            elif job.status is JobStatus.RUNNING and not await _held(conn, job_id):
                # Its run stopped (and nobody resumed it yet): nothing would see the flag.
                event = await _finish(conn, job_id, JobStatus.CANCELLED, None, eta=0.0)
            elif job.status is JobStatus.RUNNING:
                await conn.execute(
                    wip_jobs.update().where(wip_jobs.c.job_id == job_id).values(cancel_requested=True)
                )
                event = None
            else:
                raise Conflict(
                    f"job {job_id} has already ended ({job.status.value})", status=job.status.value
                )
            job = await _get_job(conn, job_id)
        assert job is not None
        return job, event

    # -- ownership -------------------------------------------------------------------------

    async def claim(
        self, owner: str, *, lease_seconds: float, per_collection: int, limit: int, take_running: bool
    ) -> list[JobRecord]:
        """Take jobs to run: orphaned running jobs first (their lease expired, or any running
        job when `take_running`, i.e. on SQLite where this is the only instance), then the
        oldest queued jobs of collections below their running-job cap.

        On PostgreSQL the cap holds across instances claiming at the same moment: the claim
        takes a per-collection advisory lock before counting, held until it commits, so a
        concurrent claim of the same collection counts after this one's jobs are running."""
        claimed: list[JobRecord] = []
        async with self.db.write() as conn:
            postgres = conn.dialect.name == "postgresql"
            now = _db_now(conn)
            running = sa.select(wip_jobs).where(
                wip_jobs.c.status == JobStatus.RUNNING.value,
                sa.or_(wip_jobs.c.owner.is_(None), wip_jobs.c.owner != owner),
            )
            if not take_running:
                running = running.where(
                    sa.or_(wip_jobs.c.lease_expires_at.is_(None), wip_jobs.c.lease_expires_at < now)
                )
            queued = sa.select(wip_jobs).where(wip_jobs.c.status == JobStatus.QUEUED.value)
            candidates = []
            for query in (running, queued):
                query = query.order_by(wip_jobs.c.created_at, wip_jobs.c.job_id).limit(limit * 4)
                if postgres:
                    query = query.with_for_update(skip_locked=True)
                candidates += [JobRecord.from_row(r) for r in (await conn.execute(query)).mappings()]
            if postgres:
                await _lock_collections(
                    conn, {c.collection_name for c in candidates if c.status is JobStatus.QUEUED}
                )
            live = await self._live_running_counts(conn, exclude=[c.job_id for c in candidates])
            for job in candidates:
                if len(claimed) >= limit:
                    break
                if job.status is JobStatus.QUEUED and live.get(job.collection_name, 0) >= per_collection:
                    continue
                await conn.execute(
                    wip_jobs.update()
                    .where(wip_jobs.c.job_id == job.job_id)
                    .values(
                        status=JobStatus.RUNNING.value,
                        owner=owner,
                        lease_expires_at=_lease_expiry(conn, lease_seconds),
                        claims=wip_jobs.c.claims + 1,
                    )
                )
                live[job.collection_name] = live.get(job.collection_name, 0) + 1
                claimed.append(job)
        return claimed

    async def _live_running_counts(self, conn: AsyncConnection, exclude: Sequence[str]) -> dict[str, int]:
        query = (
            sa.select(wip_jobs.c.collection_name, sa.func.count())
            .where(wip_jobs.c.status == JobStatus.RUNNING.value, wip_jobs.c.job_id.not_in(list(exclude)))
            .group_by(wip_jobs.c.collection_name)
        )
        counts: dict[str, int] = {}
        for name, count in await conn.execute(query):
            counts[name] = count
        return counts

    async def busy_owners(self) -> set[str]:
        """The instances running a job now (holding an unexpired lease)."""
        query = (
            sa.select(wip_jobs.c.owner)
            .where(
                wip_jobs.c.status == JobStatus.RUNNING.value,
                wip_jobs.c.owner.is_not(None),
            )
            .distinct()
        )
        async with self.db.read() as conn:
            query = query.where(wip_jobs.c.lease_expires_at > _db_now(conn))
            return {str(owner) for owner in (await conn.execute(query)).scalars()}

    async def renew_lease(self, lease: Lease, clock: Clock = time.monotonic) -> tuple[Lease, bool]:
        """Extend the lease in a transaction of its own, one statement long; returns the lease as
        the owner now knows it (certainly valid from the moment the renewal was sent) and whether
        cancellation was requested. Raises LeaseLost."""
        sent_at = clock()
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    _owned(lease.job_id, lease.owner)
                    .values(lease_expires_at=_lease_expiry(conn, lease.seconds))
                    .returning(wip_jobs.c.cancel_requested)
                )
            ).first()
        if row is None:
            raise LeaseLost(f"job {lease.job_id} is no longer owned by {lease.owner}")
        return lease.renewed(sent_at), bool(row[0])

    async def release(self, job_id: str, owner: str, *, error: str | None = None) -> None:
        """Give a job back so that the next claimer need not wait for the lease: on shutdown
        (the claim does not count towards the job's limit), or after its run stopped on
        ``error`` (kept as the job's last error)."""
        values: dict[str, Any] = {"owner": None, "lease_expires_at": None}
        if error is None:
            values["claims"] = sa.case((wip_jobs.c.claims > 0, wip_jobs.c.claims - 1), else_=0)
        else:
            values["last_error"] = clean_text(error)
        async with self.db.write() as conn:
            await conn.execute(
                wip_jobs.update()
                .where(wip_jobs.c.job_id == job_id, wip_jobs.c.owner == owner)
                .values(**values)
            )

    async def end_abandoned(self, max_claims: int) -> list[ProgressEvent]:
        """End the running jobs nobody holds (no owner, or an expired lease) that may not run
        again: cancelled ones, and those claimed ``max_claims`` times with no product finished
        in between, which fail with their last error. Returns the events to publish."""
        events: list[ProgressEvent] = []
        async with self.db.write() as conn:
            query = sa.select(wip_jobs.c.job_id, wip_jobs.c.cancel_requested, wip_jobs.c.claims).where(
                wip_jobs.c.status == JobStatus.RUNNING.value,
                sa.or_(wip_jobs.c.cancel_requested, wip_jobs.c.claims >= max_claims),
                sa.or_(
                    wip_jobs.c.owner.is_(None),
                    wip_jobs.c.lease_expires_at.is_(None),
                    wip_jobs.c.lease_expires_at < _db_now(conn),  # leases are set by that clock
                ),
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            for job_id, cancelled, claims in (await conn.execute(query)).all():
                if cancelled:
                    events.append(await _finish(conn, job_id, JobStatus.CANCELLED, None, eta=0.0))
                    continue
                last = (
                    await conn.execute(sa.select(wip_jobs.c.last_error).where(wip_jobs.c.job_id == job_id))
                ).scalar()
                error = f"gave up after {claims} runs with no product finished: {last or 'the run stopped'}"
                events.append(await _finish(conn, job_id, JobStatus.FAILED, error, eta=0.0))
        return events

    # -- progress of a running job ---------------------------------------------------------

    async def mark_started(self, job_id: str, owner: str, lease_seconds: float) -> ProgressEvent:
        """Record the first start (a `started` event); a job taken over says it `resumed`."""
        async with self.db.write() as conn:
            await _fence(conn, job_id, owner, lease_seconds)
            started = await conn.execute(
                wip_jobs.update()
                .where(wip_jobs.c.job_id == job_id, wip_jobs.c.started_at.is_(None))
                .values(started_at=utcnow())
            )
            if started.rowcount == 0:
                return await _append_event(
                    conn, job_id, EventStatus.PROCESSING, None, eta=None, phase=EventPhase.RESUMED
                )
            return await _append_event(conn, job_id, EventStatus.STARTED, None, eta=None)

    async def pause(self, job_id: str, owner: str) -> ProgressEvent:
        """Hand a running job back on shutdown, saying so: it stays `running`, with no owner and
        no ETA (nobody works on it), until an instance claims and resumes it. Raises LeaseLost
        if this owner no longer holds it (or it has ended)."""
        async with self.db.write() as conn:
            await _fence(conn, job_id, owner, lease_seconds=0)
            await conn.execute(
                wip_jobs.update().where(wip_jobs.c.job_id == job_id).values(owner=None, lease_expires_at=None)
            )
            return await _append_event(
                conn, job_id, EventStatus.PROCESSING, None, eta=None, phase=EventPhase.PAUSED
            )

    async def start_item(self, job_id: str, wip_id: int, owner: str, lease_seconds: float) -> ItemRecord:
        async with self.db.write() as conn:
            await _fence(conn, job_id, owner, lease_seconds)
            await conn.execute(
                _item(job_id, wip_id)
                .where(job_items.c.status.not_in(_TERMINAL_ITEMS))
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
        job_id: str,
        wip_id: int,
        owner: str,
        lease_seconds: float,
        *,
        step: str | None,
        checkpoint: dict[str, Any],
        row_num: int | None,
        wip_status: WipStatus,
        product_values: dict[str, Any],
    ) -> None:
        """Persist a step's outcome on the ledger and the WIP product together."""
        async with self.db.write() as conn:
            await _fence(conn, job_id, owner, lease_seconds)
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
        job_id: str,
        wip_id: int,
        owner: str,
        lease_seconds: float,
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
        success = error is None
        error = clean_text(error) if error is not None else None
        async with self.db.write() as conn:
            await _fence(conn, job_id, owner, lease_seconds)
            closed = await conn.execute(
                _item(job_id, wip_id)
                .where(job_items.c.status.not_in(_TERMINAL_ITEMS))
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
                    results=await _results_json(conn, job_id),
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
            return await _append_event(conn, job_id, EventStatus.PROCESSING, current, eta=eta)

    async def finish(
        self, job_id: str, owner: str, status: JobStatus, error: str | None = None
    ) -> ProgressEvent:
        """End a job: unfinished products are skipped and released, one final event."""
        async with self.db.write() as conn:
            await _fence(conn, job_id, owner, lease_seconds=0)
            return await _finish(conn, job_id, status, error, eta=0.0)


# -- shared pieces of the transactions above ------------------------------------------------


async def _add_token_usage(conn: AsyncConnection, job_id: str, usage: dict[str, int]) -> None:
    query = sa.select(wip_jobs.c.token_usage).where(wip_jobs.c.job_id == job_id)
    total = dict((await conn.execute(query)).scalar() or {})
    for key, value in usage.items():
        total[key] = total.get(key, 0) + value
    await conn.execute(wip_jobs.update().where(wip_jobs.c.job_id == job_id).values(token_usage=total))


async def _held(conn: AsyncConnection, job_id: str) -> bool:
    """Whether a live run holds the job: an owner whose lease has not run out by the database's
    clock, the one leases are set by (see `_db_now`)."""
    held = await conn.execute(
        sa.select(wip_jobs.c.job_id).where(
            wip_jobs.c.job_id == job_id,
            wip_jobs.c.owner.is_not(None),
            wip_jobs.c.lease_expires_at >= _db_now(conn),
        )
    )
    return held.first() is not None


def _item(job_id: str, wip_id: int) -> sa.Update:
    return job_items.update().where(job_items.c.job_id == job_id, job_items.c.wip_id == wip_id)


async def _get_job(conn: AsyncConnection, job_id: str, *, lock: bool = False) -> JobRecord | None:
    query = sa.select(wip_jobs).where(wip_jobs.c.job_id == job_id)
    if lock:  # PostgreSQL: hold the row against a concurrent claim (SQLite has one writer anyway)
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return JobRecord.from_row(row) if row else None


def _db_now(conn: AsyncConnection) -> Any:
    """Now by the database's clock on PostgreSQL, so that lease times never depend on the
    instances' wall clocks; SQLite serves one instance, whose clock is the only one."""
    return sa.func.now() if conn.dialect.name == "postgresql" else utcnow()


def _lease_expiry(conn: AsyncConnection, lease_seconds: float) -> Any:
    return _db_now(conn) + timedelta(seconds=lease_seconds)


async def _lock_collections(conn: AsyncConnection, names: set[str]) -> None:
    """Per-collection advisory locks until commit, taken in name order so that two claims
    never wait for each other in a cycle."""
    for name in sorted(names):
        await conn.execute(
            sa.select(sa.func.pg_advisory_xact_lock(_CLAIM_LOCK_NAMESPACE, sa.func.hashtext(name)))
        )


def _owned(job_id: str, owner: str) -> sa.Update:
    return wip_jobs.update().where(
        wip_jobs.c.job_id == job_id,
        wip_jobs.c.owner == owner,
        wip_jobs.c.status == JobStatus.RUNNING.value,
    )


async def _fence(conn: AsyncConnection, job_id: str, owner: str, lease_seconds: float) -> None:
    """Renew the lease as part of the write, or fail if this owner lost the job."""
    values: dict[str, Any] = {}
    if lease_seconds > 0:
        values["lease_expires_at"] = _lease_expiry(conn, lease_seconds)
    else:
        values["owner"] = wip_jobs.c.owner  # a no-op assignment that still locks the row
    result = await conn.execute(_owned(job_id, owner).values(**values))
    if result.rowcount == 0:
        raise LeaseLost(f"job {job_id} is no longer owned by {owner}")


async def _results_json(conn: AsyncConnection, job_id: str) -> str:
    query = (
        sa.select(job_items)
        .where(job_items.c.job_id == job_id, job_items.c.status.in_(_TERMINAL_ITEMS))
        .order_by(job_items.c.position)
    )
    rows = (await conn.execute(query)).mappings()
    return json.dumps([ItemRecord.from_row(row).result() for row in rows])


async def _finish(
    conn: AsyncConnection, job_id: str, status: JobStatus, error: str | None, *, eta: float | None
) -> ProgressEvent:
    now = utcnow()
    error = clean_text(error) if error is not None else None
    await conn.execute(
        job_items.update()
        .where(job_items.c.job_id == job_id, job_items.c.status.not_in(_TERMINAL_ITEMS))
        .values(status=ItemStatus.SKIPPED.value, finished_at=now)
    )
    # A product left mid-step by a cancelled or failed job goes back to pending.
    await conn.execute(
        wip_products.update()
        .where(
            wip_products.c.active_job_id == job_id,
            wip_products.c.status.not_in([WipStatus.READY.value, WipStatus.ERROR.value]),
        )
        .values(status=WipStatus.PENDING.value, updated_at=now)
    )
    await conn.execute(
        wip_products.update().where(wip_products.c.active_job_id == job_id).values(active_job_id=None)
    )
    await conn.execute(
        wip_jobs.update()
        .where(wip_jobs.c.job_id == job_id)
        .values(
            status=status.value,
            error=error,
            completed_at=now,
            owner=None,
            lease_expires_at=None,
            results=await _results_json(conn, job_id),
        )
    )
    await mark_for_rerun(conn, job_id)
    await enqueue_job_end(conn, job_id)
    return await _append_event(conn, job_id, EVENT_STATUS_FOR_TERMINAL[status], None, eta=eta)


async def _append_event(
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
                .returning(
                    wip_jobs.c.event_seq,
                    wip_jobs.c.collection_name,
                    wip_jobs.c.status,
                    wip_jobs.c.total_products,
                    wip_jobs.c.processed_products,
                    wip_jobs.c.successful_products,
                    wip_jobs.c.failed_products,
                )
            )
        )
        .mappings()
        .one()
    )
    payload = {
        "job_id": job_id,
        "status": status.value,
        "total": row["total_products"],
        "processed": row["processed_products"],
        "successful": row["successful_products"],
        "failed": row["failed_products"],
        "current_product": current_product,
        "collection_name": row["collection_name"],
        "seq": row["event_seq"],
        "eta_seconds": rounded_eta,
        "job_status": row["status"],
        "timestamp": now.isoformat().replace("+00:00", "Z"),
    }
    if phase is not None:
        payload["phase"] = phase.value
    await conn.execute(
        job_events.insert().values(job_id=job_id, seq=row["event_seq"], created_at=now, payload=payload)
    )
    return ProgressEvent(job_id, row["collection_name"], row["event_seq"], payload)
