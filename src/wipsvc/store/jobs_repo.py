"""SQL for the job queue and its leases: create, claim, cancel, heartbeat, release, pause and end
a job. The product ledger is :mod:`wipsvc.store.ledger` (its methods are this repository's too),
the event log :mod:`wipsvc.store.event_log`, the lease fence :mod:`wipsvc.store.fencing`.
(About 440 lines: the claim, the cancel and a job's end share the one transaction that ends a
job, ``_finish``, and split further they would only call each other.)

Every state change and the event announcing it are written in one transaction, and
the event is returned for the caller to publish after the commit. Writes made on
behalf of a running job are fenced by its lease: if another instance has taken the
job over, they raise `LeaseLost` and change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.priority import Priority
from wipsvc.domain.statuses import (
    ACTIVE_JOB_STATUSES,
    EVENT_STATUS_FOR_TERMINAL,
    WAITING_JOB_STATUSES,
    EventPhase,
    EventStatus,
    ItemStatus,
    JobStatus,
    WipStatus,
)
from wipsvc.store import event_log, fencing, ledger, ledger_results
from wipsvc.store.database import Database
from wipsvc.store.job_create import insert_job, queue_due_scheduled
from wipsvc.store.lease import Clock, Lease, LeaseState
from wipsvc.store.ledger import JobLedger
from wipsvc.store.outbox_repo import enqueue_job_end
from wipsvc.store.priority_repo import claim_order, fits_cap
from wipsvc.store.records import Conflict, JobRecord, LeaseLost, NotFound, ProgressEvent
from wipsvc.store.rerun_repo import mark_for_rerun
from wipsvc.store.tables import job_items, utcnow, wip_jobs, wip_products
from wipsvc.text import clean_text

# Namespace of the per-collection advisory locks taken by claims (pg_advisory_xact_lock(int, int)).
_CLAIM_LOCK_NAMESPACE = 0x57495043


class JobsRepository(JobLedger):
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

    async def events_after(self, job_id: str, after_seq: int, limit: int = 10_000) -> list[ProgressEvent]:
        async with self.db.read() as conn:
            return await event_log.events_after(conn, job_id, after_seq, limit)

    # -- creating and cancelling -----------------------------------------------------------

    async def create(
        self,
        job_id: str,
        collection: str,
        wip_ids: Sequence[int],
        *,
        retry_of: str | None = None,
        priority: Priority = Priority.NORMAL,
        run_at: datetime | None = None,
    ) -> JobRecord:
        """Queue a job (or schedule it for ``run_at``), reserving its products; none may be
        unknown or in another active job."""
        async with self.db.write() as conn:
            return await insert_job(
                conn, job_id, collection, wip_ids, retry_of=retry_of, run_at=run_at, priority=priority
            )

    async def count_active(self, collection: str) -> int:
        """The collection's scheduled, queued and running jobs, counted by the database."""
        query = sa.select(sa.func.count()).where(
            wip_jobs.c.collection_name == collection,
            wip_jobs.c.status.in_([status.value for status in ACTIVE_JOB_STATUSES]),
        )
        async with self.db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def request_cancel(self, job_id: str) -> tuple[JobRecord, ProgressEvent | None]:
        """Cancel a queued job at once; flag a running one for its owner to stop."""
        async with self.db.write() as conn:
            job = await _get_job(conn, job_id, lock=True)
            if job is None:
                raise NotFound(f"job {job_id} not found")
            if job.status in WAITING_JOB_STATUSES:
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
        self,
        owner: str,
        *,
        lease_seconds: float,
        per_collection: int,
        limit: int,
        take_running: bool,
        ageing_seconds: float | None = None,
    ) -> list[JobRecord]:
        """Take jobs to run: orphaned running jobs first (their lease expired, or any running
        job when `take_running`, i.e. on SQLite where this is the only instance), then queued
        jobs of collections below their running-job cap, by priority (raised by ageing, see
        `priority_repo.claim_order`), then oldest first. An urgent job may run as one beyond
        the cap while a job of lower priority of its collection runs.

        On PostgreSQL the cap holds across instances claiming at the same moment: the claim
        takes a per-collection advisory lock before counting, held until it commits, so a
        concurrent claim of the same collection counts after this one's jobs are running."""
        claimed: list[JobRecord] = []
        async with self.db.write() as conn:
            postgres = conn.dialect.name == "postgresql"
            await queue_due_scheduled(conn)
            now = fencing.db_now(conn)
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
            oldest_first = [wip_jobs.c.created_at, wip_jobs.c.job_id]
            for query, order in ((running, oldest_first), (queued, claim_order(utcnow(), ageing_seconds))):
                query = query.order_by(*order).limit(limit * 4)
                if postgres:
                    query = query.with_for_update(skip_locked=True)
                candidates += [JobRecord.from_row(r) for r in (await conn.execute(query)).mappings()]
            if postgres:
                await _lock_collections(
                    conn, {c.collection_name for c in candidates if c.status is JobStatus.QUEUED}
                )
            excluded = [c.job_id for c in candidates]
            live = await self._live_running_counts(conn, exclude=excluded)
            urgent = await self._live_running_counts(conn, exclude=excluded, priority=Priority.URGENT)
            for job in candidates:
                if len(claimed) >= limit:
                    break
                if job.status is JobStatus.QUEUED and not fits_cap(job, live, urgent, per_collection):
                    continue
                await conn.execute(
                    wip_jobs.update()
                    .where(wip_jobs.c.job_id == job.job_id)
                    .values(
                        status=JobStatus.RUNNING.value,
                        owner=owner,
                        lease_expires_at=fencing.lease_expiry(conn, lease_seconds),
                        claims=wip_jobs.c.claims + 1,
                    )
                )
                live[job.collection_name] = live.get(job.collection_name, 0) + 1
                if job.priority is Priority.URGENT:
                    urgent[job.collection_name] = urgent.get(job.collection_name, 0) + 1
                claimed.append(job)
        return claimed

    async def _live_running_counts(
        self, conn: AsyncConnection, exclude: Sequence[str], priority: Priority | None = None
    ) -> dict[str, int]:
        query = (
            sa.select(wip_jobs.c.collection_name, sa.func.count())
            .where(wip_jobs.c.status == JobStatus.RUNNING.value, wip_jobs.c.job_id.not_in(list(exclude)))
            .group_by(wip_jobs.c.collection_name)
        )
        if priority is not None:
            query = query.where(wip_jobs.c.priority == priority.value)
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
            query = query.where(wip_jobs.c.lease_expires_at > fencing.db_now(conn))
            return {str(owner) for owner in (await conn.execute(query)).scalars()}

    async def heartbeat(self, lease: Lease, clock: Clock = time.monotonic) -> LeaseState:
        """Extend the lease in a transaction of its own, one statement long; returns its state:
        the lease as the owner now knows it (certainly valid from the moment the renewal was
        sent) and whether cancellation was requested. Raises LeaseLost."""
        sent_at = clock()
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    fencing.owned(lease.job_id, lease.owner)
                    .values(lease_expires_at=fencing.lease_expiry(conn, lease.seconds))
                    .returning(wip_jobs.c.cancel_requested)
                )
            ).first()
        if row is None:
            raise LeaseLost(f"job {lease.job_id} is no longer owned by {lease.owner}")
        return LeaseState(lease.renewed(sent_at), cancel_requested=bool(row[0]))

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
                    wip_jobs.c.lease_expires_at < fencing.db_now(conn),  # leases are set by that clock
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

    async def mark_started(self, lease: Lease) -> ProgressEvent:
        """Record the first start (a `started` event); a job taken over says it `resumed`."""
        job_id = lease.job_id
        async with self.db.write() as conn:
            await fencing.fence(conn, lease, renew=True)
            started = await conn.execute(
                wip_jobs.update()
                .where(wip_jobs.c.job_id == job_id, wip_jobs.c.started_at.is_(None))
                .values(started_at=utcnow())
            )
            if started.rowcount == 0:
                return await event_log.append_event(
                    conn, job_id, EventStatus.PROCESSING, None, eta=None, phase=EventPhase.RESUMED
                )
            return await event_log.append_event(conn, job_id, EventStatus.STARTED, None, eta=None)

    async def pause(self, lease: Lease) -> ProgressEvent:
        """Hand a running job back on shutdown, saying so: it stays `running`, with no owner and
        no ETA (nobody works on it), until an instance claims and resumes it. Raises LeaseLost
        if this owner no longer holds it (or it has ended)."""
        job_id = lease.job_id
        async with self.db.write() as conn:
            await fencing.fence(conn, lease, renew=False)
            await conn.execute(
                wip_jobs.update().where(wip_jobs.c.job_id == job_id).values(owner=None, lease_expires_at=None)
            )
            return await event_log.append_event(
                conn, job_id, EventStatus.PROCESSING, None, eta=None, phase=EventPhase.PAUSED
            )

    async def finish(self, lease: Lease, status: JobStatus, error: str | None = None) -> ProgressEvent:
        """End a job: unfinished products are skipped and released, one final event."""
        async with self.db.write() as conn:
            await fencing.fence(conn, lease, renew=False)
            return await _finish(conn, lease.job_id, status, error, eta=0.0)


# -- shared pieces of the transactions above ------------------------------------------------


async def _held(conn: AsyncConnection, job_id: str) -> bool:
    """Whether a live run holds the job: an owner whose lease has not run out by the database's
    clock, the one leases are set by (see `fencing.db_now`)."""
    held = await conn.execute(
        sa.select(wip_jobs.c.job_id).where(
            wip_jobs.c.job_id == job_id,
            wip_jobs.c.owner.is_not(None),
            wip_jobs.c.lease_expires_at >= fencing.db_now(conn),
        )
    )
    return held.first() is not None


async def _get_job(conn: AsyncConnection, job_id: str, *, lock: bool = False) -> JobRecord | None:
    query = sa.select(wip_jobs).where(wip_jobs.c.job_id == job_id)
    if lock:  # PostgreSQL: hold the row against a concurrent claim (SQLite has one writer anyway)
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return JobRecord.from_row(row) if row else None


async def _lock_collections(conn: AsyncConnection, names: set[str]) -> None:
    """Per-collection advisory locks until commit, taken in name order so that two claims
    never wait for each other in a cycle."""
    for name in sorted(names):
        await conn.execute(
            sa.select(sa.func.pg_advisory_xact_lock(_CLAIM_LOCK_NAMESPACE, sa.func.hashtext(name)))
        )


async def _finish(
    conn: AsyncConnection, job_id: str, status: JobStatus, error: str | None, *, eta: float | None
) -> ProgressEvent:
    now = utcnow()
    error = clean_text(error) if error is not None else None
    await conn.execute(
        job_items.update()
        .where(job_items.c.job_id == job_id, job_items.c.status.not_in(ledger.TERMINAL_ITEMS))
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
            results=await ledger_results.results_json_of(conn, job_id),  # written once, here
        )
    )
    await mark_for_rerun(conn, job_id)
    await enqueue_job_end(conn, job_id)
    return await event_log.append_event(conn, job_id, EVENT_STATUS_FOR_TERMINAL[status], None, eta=eta)
