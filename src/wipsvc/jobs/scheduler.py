"""The recurring schedules' firing loop: every few moments, each instance fires the schedules
whose due time has come. Each due time fires once however many instances look at it (the
store's compare-and-set on `next_fire_at`); see `wipsvc.domain.schedules` for what happens to
due times that passed while the service was down.

The clock is injectable, so that tests can move time instead of waiting for it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from wipsvc.config import Settings
from wipsvc.domain.schedules import parse_zone, plan_fire
from wipsvc.jobs.background import PeriodicLoop
from wipsvc.store import Conflict, Store
from wipsvc.store.schedules_repo import FireRecord
from wipsvc.store.tables import utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Scheduler(PeriodicLoop):
    task_name = "wipsvc-schedules"
    failure_message = "firing schedules failed this round; trying again"

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        on_created: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._on_created = on_created
        self._grace = timedelta(seconds=settings.schedule_missed_fire_grace_seconds)

    def now(self) -> datetime:
        return self._clock()

    async def run_due(self, now: datetime | None = None) -> list[FireRecord]:
        """Fire every schedule due at ``now`` (default: the clock's); returns the fires this
        instance made (a due time another instance fired first is not among them)."""
        now = now or self._clock()
        fired: list[FireRecord] = []
        for schedule in await self._store.schedules.due(now):
            try:
                plan = plan_fire(
                    schedule.cron, parse_zone(schedule.timezone), schedule.next_fire_at, now, self._grace
                )
            except ValueError:
                log.exception("schedule %s cannot be read; it stays as it is", schedule.id)
                continue
            if plan is None:
                continue
            try:
                fire = await self._store.schedules.fire(
                    schedule,
                    plan,
                    now=now,
                    max_batch=self._settings.max_batch,
                    new_job_id=lambda: str(uuid.uuid4()),
                )
            except Conflict:
                log.info(
                    "schedule %s: a product was taken by a job meanwhile; firing next round", schedule.id
                )
                continue
            if fire is None:
                continue
            log.info(
                "schedule %s (%s) %s for %s: %d job(s), %d product(s)",
                schedule.id,
                schedule.collection_name,
                fire.outcome.value,
                fire.due_at.isoformat(),
                len(fire.job_ids),
                fire.products,
            )
            fired.append(fire)
        if any(fire.job_ids for fire in fired):
            self._on_created()
        return fired

    async def _round(self) -> None:
        await self.run_due()

    def _pause_seconds(self) -> float:
        return self._settings.schedule_poll_seconds
