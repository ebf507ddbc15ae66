"""The job service: start, retry, cancel and look at jobs, for the routes, the CLI's server side
and the dashboard alike. The rules live here (batch limit, products of the collection, which
products a retry takes, a job's view); the edges only translate.

Errors: ``InvalidJobRequest`` (the request cannot be a job: 422 on the API), the store's
``NotFound`` (404) and ``Conflict`` (409).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from wipsvc.config import Settings
from wipsvc.domain.priority import Priority
from wipsvc.domain.statuses import TERMINAL_JOB_STATUSES, WAITING_JOB_STATUSES, ItemStatus
from wipsvc.jobs.registry import JobRegistry
from wipsvc.store import Conflict, JobRecord, NotFound, Store

Admission = Callable[[], AbstractAsyncContextManager[None]]

# A `run_at` this far in the past is taken as "now" (clocks and requests take time); older: 422.
RUN_AT_PAST_TOLERANCE = timedelta(seconds=60)


class InvalidJobRequest(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


class JobService:
    def __init__(self, store: Store, registry: JobRegistry, settings: Settings) -> None:
        self._store, self._registry, self._settings = store, registry, settings

    async def start(
        self,
        collection: str,
        wip_ids: Sequence[int],
        *,
        run_at: datetime | None = None,
        admit: Admission = contextlib.nullcontext,
        priority: Priority = Priority.NORMAL,
    ) -> JobRecord:
        """Queue a job for ``wip_ids`` of ``collection`` (with ``run_at``: schedule it, to be
        queued then); ``admit`` is entered around the submit (the API's cap on active jobs),
        after the request has been checked."""
        if run_at is not None:
            self._check_run_at(run_at)
        max_batch = self._settings.max_batch
        if len(wip_ids) > max_batch:
            raise InvalidJobRequest(
                "batch_too_large", f"{len(wip_ids)} products given; at most {max_batch} per job"
            )
        found = await self._store.collections.get_products(collection, wip_ids)
        unknown = [wip_id for wip_id in wip_ids if wip_id not in found]
        if unknown:
            raise InvalidJobRequest(
                "unknown_wip_ids",
                f"unknown wip_ids in collection '{collection}': {', '.join(map(str, unknown))}",
                {"unknown_wip_ids": unknown},
            )
        async with admit():
            return await self._registry.submit(collection, wip_ids, priority=priority, run_at=run_at)

    def _check_run_at(self, run_at: datetime) -> None:
        if run_at.tzinfo is None or run_at.utcoffset() is None:
            raise InvalidJobRequest(
                "invalid_run_at", "run_at needs a UTC offset, e.g. 2026-12-01T09:00:00+01:00"
            )
        now = datetime.now(UTC)
        if run_at < now - RUN_AT_PAST_TOLERANCE:
            raise InvalidJobRequest(
                "invalid_run_at",
                f"run_at {run_at.isoformat()} has passed (now is {now.isoformat(timespec='seconds')})",
            )
        ahead = timedelta(days=self._settings.schedule_max_ahead_days)
        if run_at > now + ahead:
            raise InvalidJobRequest(
                "invalid_run_at",
                f"run_at is more than {self._settings.schedule_max_ahead_days:g} days ahead "
                "(WIPSVC_SCHEDULE_MAX_AHEAD_DAYS)",
            )

    async def active_jobs(self, collection: str) -> int:
        """The collection's scheduled, queued and running jobs: what the active-job cap counts."""
        return await self._store.jobs.count_active(collection)

    async def get(self, collection: str, job_id: str) -> JobRecord:
        job = await self._store.jobs.get(job_id)
        # Another collection's job answers exactly like a missing one.
        if job is None or job.collection_name != collection:
            raise NotFound(f"job {job_id} not found in collection '{collection}'")
        return job

    async def poll(self, collection: str, job_id: str) -> tuple[JobRecord, str]:
        """The job and its results as a JSON array, for the route clients poll: a job running
        here as its runner last committed it (no read: see `LiveStatus`), else as stored."""
        live = self._registry.live_status(job_id)
        if live is not None and live[0].collection_name == collection:
            return live
        job = await self.get(collection, job_id)
        return job, await self.results_json(job)

    async def change_priority(self, collection: str, job_id: str, priority: Priority) -> JobRecord:
        """A queued job's new priority; Conflict once it runs or has ended."""
        await self.get(collection, job_id)
        return await self._registry.change_priority(job_id, priority)

    async def cancel(self, collection: str, job_id: str) -> JobRecord:
        """A scheduled or queued job ends at once; a running one starts no new product."""
        await self.get(collection, job_id)
        return await self._registry.cancel(job_id)

    async def retry(
        self,
        collection: str,
        job_id: str,
        statuses: Collection[ItemStatus],
        *,
        label: str,
        admit: Admission = contextlib.nullcontext,
    ) -> JobRecord:
        """A new job, linked by ``retry_of``, for the products of an ended job that ended in
        one of ``statuses`` (``label`` names them in the error when there are none)."""
        job = await self.get(collection, job_id)
        if job.status not in TERMINAL_JOB_STATUSES:
            raise Conflict(f"job {job_id} is still {job.status.value}; retry it once it ends")
        # From `results`, which outlive the ledger once the job's history is pruned.
        wanted = {status.value for status in statuses}
        chosen = [int(result["wip_id"]) for result in job.results if result.get("status") in wanted]
        if not chosen:
            raise Conflict(f"job {job_id} has no {label} products")
        async with admit():
            return await self._registry.submit(collection, chosen, retry_of=job_id, priority=job.priority)

    async def results(self, job: JobRecord) -> list[dict[str, Any]]:
        return await self._store.jobs.results(job)

    async def results_json(self, job: JobRecord) -> str:
        return await self._store.jobs.results_json(job)

    async def eta_seconds(self, job: JobRecord) -> float | None:
        """The job's last estimate, decayed by the time since it was made; 0 once it ended, None
        while queued or before its first estimate."""
        if job.status in TERMINAL_JOB_STATUSES:
            return 0.0
        if job.status in WAITING_JOB_STATUSES or job.event_seq == 0:
            return None
        estimate, made_at = job.eta_seconds, job.eta_at
        if made_at is None:  # a job running since before migration 0003: its last event says
            last = await self._store.jobs.events_after(job.job_id, job.event_seq - 1, limit=1)
            if last and last[0].payload.get("eta_seconds") is not None:
                estimate = float(last[0].payload["eta_seconds"])
                made_at = datetime.fromisoformat(last[0].payload["timestamp"].replace("Z", "+00:00"))
        if estimate is None or made_at is None:
            return None
        elapsed = (datetime.now(UTC) - made_at).total_seconds()
        return round(max(0.0, estimate - elapsed), 1)
