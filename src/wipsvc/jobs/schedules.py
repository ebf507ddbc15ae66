"""The schedule service: create, list, pause, resume and delete a collection's recurring
schedules, and read their fires log. The rules (a valid cron, a known time zone, a selector of
WIP statuses) live here; the routes and the CLI's server side only translate.

Errors: the job service's ``InvalidJobRequest`` (422 on the API) and the store's ``NotFound``.
"""

from __future__ import annotations

from collections.abc import Sequence

from wipsvc.config import Settings
from wipsvc.domain.schedules import check_cron, next_due, parse_zone
from wipsvc.domain.statuses import WipStatus
from wipsvc.jobs.scheduler import Scheduler
from wipsvc.jobs.service import InvalidJobRequest
from wipsvc.store import Store
from wipsvc.store.schedules_repo import FireRecord, ScheduleRecord


class ScheduleService:
    def __init__(self, store: Store, settings: Settings, scheduler: Scheduler) -> None:
        self._store, self._settings, self._scheduler = store, settings, scheduler

    async def create(
        self, collection: str, cron: str, timezone: str, statuses: Sequence[WipStatus]
    ) -> ScheduleRecord:
        try:
            zone = parse_zone(timezone)
        except ValueError as error:
            raise InvalidJobRequest("invalid_timezone", str(error), {"field": "timezone"}) from None
        try:
            check_cron(cron, zone, min_interval=self._settings.schedule_min_interval_seconds)
        except ValueError as error:
            raise InvalidJobRequest("invalid_cron", str(error), {"field": "cron"}) from None
        first = next_due(cron, zone, self._scheduler.now())
        return await self._store.schedules.create(
            collection, cron, timezone, [status.value for status in statuses], next_fire_at=first
        )

    async def of_collection(self, collection: str) -> list[ScheduleRecord]:
        return await self._store.schedules.of_collection(collection)

    async def get(self, collection: str, schedule_id: int) -> ScheduleRecord:
        return await self._store.schedules.get(collection, schedule_id)

    async def pause(self, collection: str, schedule_id: int) -> ScheduleRecord:
        return await self._store.schedules.set_paused(collection, schedule_id, True)

    async def resume(self, collection: str, schedule_id: int) -> ScheduleRecord:
        """Fire again from the next due time after now: the times passed while paused are not made up."""
        schedule = await self._store.schedules.get(collection, schedule_id)
        following = next_due(schedule.cron, parse_zone(schedule.timezone), self._scheduler.now())
        return await self._store.schedules.set_paused(collection, schedule_id, False, next_fire_at=following)

    async def delete(self, collection: str, schedule_id: int) -> None:
        await self._store.schedules.delete(collection, schedule_id)

    async def fires(self, collection: str, schedule_id: int, *, limit: int) -> list[FireRecord]:
        await self._store.schedules.get(collection, schedule_id)  # another collection's: NotFound
        return await self._store.schedules.fires(schedule_id, limit=limit)
