"""Pruning the history of jobs that ended long ago: their progress events and product ledger.

The job row and its `results` stay, so a finished job still shows what happened to each
product; only the step-by-step detail behind it goes. Runs on start and then every hour, a
bounded batch at a time so that no transaction holds the database for long.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from wipsvc.jobs.background import PeriodicLoop
from wipsvc.store import Store
from wipsvc.store.lifecycle_repo import Pruned
from wipsvc.store.tables import utcnow

log = logging.getLogger(__name__)

PRUNE_INTERVAL_SECONDS = 3600.0
BATCH_JOBS = 200
MAX_BATCHES_PER_ROUND = 50  # bounded work per round; what is left waits for the next one


class HistoryPruner(PeriodicLoop):
    task_name = "wipsvc-history-pruner"
    failure_message = "pruning job history failed; trying again in an hour"

    def __init__(self, store: Store, retention_days: float) -> None:
        self._store = store
        self._retention = timedelta(days=retention_days)

    async def prune_once(self, now: datetime) -> Pruned:
        """One round: prune jobs that ended more than the retention period before `now`."""
        cutoff = now - self._retention
        jobs = events = items = 0
        for _ in range(MAX_BATCHES_PER_ROUND):
            batch = await self._store.lifecycle.prune_history(cutoff, max_jobs=BATCH_JOBS)
            jobs, events, items = jobs + batch.jobs, events + batch.events, items + batch.items
            if batch.jobs < BATCH_JOBS:
                break
            await asyncio.sleep(0)  # let requests in between batches
        if jobs:
            log.info(
                "pruned the history of %d finished jobs (%d events, %d ledger rows)", jobs, events, items
            )
        return Pruned(jobs, events, items)

    async def _round(self) -> None:
        await self.prune_once(utcnow())

    def _pause_seconds(self) -> float:
        return PRUNE_INTERVAL_SECONDS
