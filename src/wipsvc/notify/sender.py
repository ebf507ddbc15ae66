"""The sender: each instance claims due outbox rows and delivers them, with bounded retries and
backoff. A failed or slow receiver delays nothing but its own notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.config import Settings
from wipsvc.jobs.background import BackgroundLoop
from wipsvc.notify.delivery import DeliveryFailed, deliver
from wipsvc.store import Store
from wipsvc.store.outbox_repo import Delivery, Target
from wipsvc.store.records import ProgressEvent
from wipsvc.store.tables import utcnow
from wipsvc.text import one_line

log = logging.getLogger(__name__)

BATCH = 20
_ENDING_STATUSES = {"completed", "failed", "cancelled"}


class NotificationSender(BackgroundLoop):
    task_name = "wipsvc-notifications"

    def __init__(
        self, store: Store, settings: Settings, guard: SafeFetcher, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._store = store
        self._settings = settings
        self._guard = guard
        self._clock = clock
        self._wake = asyncio.Event()

    def retry_at(self, attempts_made: int) -> datetime | None:
        """When to try again after ``attempts_made`` failed attempts; None once they are used up."""
        if attempts_made >= self._settings.notify_max_attempts:
            return None
        delay = min(
            self._settings.notify_retry_base_seconds * 2 ** (attempts_made - 1),
            self._settings.notify_retry_max_seconds,
        )
        return self._clock() + timedelta(seconds=delay)

    def wake(self) -> None:
        self._wake.set()

    async def on_event(self, event: ProgressEvent) -> None:
        """Bus subscriber: a job's end (or a product failure) may have owed a notification."""
        product = event.payload.get("current_product") or {}
        if event.payload.get("status") in _ENDING_STATUSES or product.get("success") is False:
            self._wake.set()

    async def deliver_due(self) -> int:
        """One round: deliver what is due now; returns how many attempts were made."""
        # Every attempt ends within its time limit: a sender that dies mid-attempt leaves its
        # claim to run out soon after, and another sender (or this one restarted) takes it.
        hold = self._settings.notify_timeout_seconds * 2 + 1
        claimed = await self._store.outbox.claim_due(limit=BATCH, hold_seconds=hold)
        await asyncio.gather(*(self._attempt(delivery, target) for delivery, target in claimed))
        return len(claimed)

    async def _attempt(self, delivery: Delivery, target: Target | None) -> None:
        ok, retry_at = False, None
        if target is None:
            detail = "the notification target was removed"
        else:
            try:
                detail = await deliver(delivery, target, self._settings, self._guard)
                ok = True
            except DeliveryFailed as error:
                detail = one_line(str(error), 300)
                retry_at = self.retry_at(delivery.attempt_count + 1)
            except Exception as error:  # a bug fails this attempt, never the sender
                log.exception("delivery %s failed unexpectedly", delivery.message_id)
                detail = f"internal error: {type(error).__name__}"
                retry_at = self.retry_at(delivery.attempt_count + 1)
        log.info("delivery %s to target %s: %s", delivery.message_id, delivery.target_id, detail)
        await self._store.outbox.record_attempt(delivery.id, ok=ok, detail=detail, retry_at=retry_at)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                if await self.deliver_due() == BATCH:
                    continue  # more may be due at once
            except Exception:
                log.exception("delivering notifications failed this round; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.notify_poll_seconds)
