"""The event bus: the only way progress leaves the core.

The store has already written each event when it reaches the bus; subscribers
(Socket.IO, the CLI, tests) only relay it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wipsvc.domain.events import SCHEDULED_EVENT_NAME, JobScheduled
from wipsvc.domain.times import iso_utc
from wipsvc.store import JobRecord, ProgressEvent

log = logging.getLogger(__name__)

Handler = Callable[[ProgressEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Notice:
    """A live announcement other than progress (e.g. `wip_job_scheduled`): not stored, not
    replayed; a client that missed it finds the same in the REST listings."""

    name: str
    collection_name: str
    payload: dict[str, Any] = field(hash=False)


NoticeHandler = Callable[[Notice], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._notice_handlers: list[NoticeHandler] = []

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler)

    async def publish(self, events: Iterable[ProgressEvent | None]) -> None:
        for event in events:
            if event is None:
                continue
            for handler in list(self._handlers):
                try:
                    await handler(event)
                except Exception:
                    # A subscriber's failure must not fail the job; clients re-sync by `seq`.
                    log.exception("event handler failed for job %s seq %s", event.job_id, event.seq)

    def subscribe_notices(self, handler: NoticeHandler) -> Callable[[], None]:
        self._notice_handlers.append(handler)
        return lambda: self._notice_handlers.remove(handler)

    async def announce(self, notice: Notice) -> None:
        for handler in list(self._notice_handlers):
            try:
                await handler(notice)
            except Exception:
                log.exception("notice handler failed for %s", notice.name)


def scheduled_notice(job: JobRecord) -> Notice:
    """The notice that a job was accepted to start later, at its ``run_at``."""
    assert job.run_at is not None
    event = JobScheduled(
        job_id=job.job_id,
        collection_name=job.collection_name,
        total=job.total_products,
        run_at=iso_utc(job.run_at),
        job_status=job.status,
        timestamp=iso_utc(datetime.now(UTC)),
    )
    return Notice(SCHEDULED_EVENT_NAME, job.collection_name, event.payload())
