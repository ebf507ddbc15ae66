"""The event bus: the only way progress leaves the core.

The store has already written each event when it reaches the bus; subscribers
(Socket.IO, the CLI, tests) only relay it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from wipsvc.store import ProgressEvent

log = logging.getLogger(__name__)

Handler = Callable[[ProgressEvent], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

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
