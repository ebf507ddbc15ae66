"""A loop an object runs in the background for the service's lifetime, owned like every task:
kept by reference, cancelled and awaited on stop (no task outlives the service)."""

from __future__ import annotations

import asyncio
import logging

from wipsvc.tasks import cancel_and_wait


class BackgroundLoop:
    """Subclasses set `task_name` and write `_loop`; `start()` and `stop()` are shared."""

    task_name = "wipsvc-background"
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        raise NotImplementedError


class PeriodicLoop(BackgroundLoop):
    """A round, then a pause of `_pause_seconds()`, for ever. A round that fails is logged (under
    the subclass's module) with `failure_message`, and the next round tries again: one bad round
    never stops the loop."""

    failure_message = "a background round failed; trying again"

    async def _round(self) -> None:
        raise NotImplementedError

    def _pause_seconds(self) -> float:
        raise NotImplementedError

    async def _loop(self) -> None:
        log = logging.getLogger(type(self).__module__)
        while True:
            try:
                await self._round()
            except Exception:
                log.exception(self.failure_message)
            await asyncio.sleep(self._pause_seconds())
