"""A loop an object runs in the background for the service's lifetime, owned like every task:
kept by reference, cancelled and awaited on stop (no task outlives the service)."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundLoop:
    """Subclasses set `task_name` and write `_loop`; `start()` and `stop()` are shared."""

    task_name = "wipsvc-background"
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _loop(self) -> None:
        raise NotImplementedError
