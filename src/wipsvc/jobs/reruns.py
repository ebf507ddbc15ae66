"""Automatic re-runs: a job's products that failed on a transient cause after all their
attempts (an outage longer than the retries) are re-run once, a delay after the job ended,
as a new job linked to the first by `retry_of`. Products that failed for good (a missing
page, a refused request) are not; nor are those of a re-run, nor those of a collection that
turned `auto_rerun` off.

The new job's id is derived from the first job's, so that two instances, or one that dies
between creating the re-run and settling the first job, never create it twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from wipsvc.jobs.background import PeriodicLoop
from wipsvc.store import Conflict, Store
from wipsvc.store.tables import utcnow

log = logging.getLogger(__name__)

_RERUN_NAMESPACE = uuid.UUID("7d1c52f4-8f3e-4b8e-9a3c-2f0f6a1d5e21")


def rerun_job_id(job_id: str) -> str:
    return str(uuid.uuid5(_RERUN_NAMESPACE, job_id))


class RerunScheduler(PeriodicLoop):
    task_name = "wipsvc-reruns"
    failure_message = "automatic re-runs failed this round; trying again"

    def __init__(
        self,
        store: Store,
        delay_seconds: float,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_created: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._delay = timedelta(seconds=delay_seconds)
        self._clock = clock
        self._on_created = on_created
        self._poll = min(5.0, max(0.1, delay_seconds / 2))

    async def run_due(self, now: datetime | None = None) -> list[str]:
        """Create the re-runs due at ``now`` (default: the clock's now); returns the new jobs' ids."""
        created: list[str] = []
        for job_id, collection_name in await self._store.reruns.due((now or self._clock()) - self._delay):
            collection = await self._store.collections.get(collection_name)
            wip_ids = await self._store.reruns.transient_failures(job_id)
            if collection is not None and collection.config.auto_rerun and wip_ids:
                new_id = rerun_job_id(job_id)
                if await self._store.jobs.get(new_id) is None:
                    try:
                        await self._store.jobs.create(new_id, collection_name, wip_ids, retry_of=job_id)
                    except Conflict:
                        continue  # taken by a job meanwhile (or another instance's re-run): next round
                    created.append(new_id)
                    log.info("job %s: re-running %d products as job %s", job_id, len(wip_ids), new_id)
            await self._store.reruns.settle(job_id)
        if created:
            self._on_created()
        return created

    async def _round(self) -> None:
        await self.run_due()

    def _pause_seconds(self) -> float:
        return self._poll
