"""Clocks a test moves by hand."""

from __future__ import annotations

import asyncio


class ManualClock:
    """A monotonic clock (a ``() -> float``) that stands still until the test sets ``now``."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class LoopClock:
    """Replaces the running loop's clock; ``advance`` moves it in small steps so timers fire in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.now = 1_000.0
        self._loop = loop
        loop.time = self.time  # type: ignore[method-assign]

    def time(self) -> float:
        return self.now

    async def settle(self) -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    async def advance(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = min(end, self.now + step)
            await self.settle()

    def restore(self) -> None:
        del self._loop.time
