"""Stand-ins for ``asyncio.sleep`` given to a retry policy or a quota bucket: each records the
delays asked for, and the test chooses what a delay does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class RecordingSleep:
    """Records each delay. By default it does not wait (it only yields to the loop, as a sleep
    would); ``real`` sleeps for the delay; ``on_sleep`` runs at each delay (e.g. to let the fake's
    quota minute pass)."""

    def __init__(self, *, real: bool = False, on_sleep: Callable[[], object] | None = None) -> None:
        self.delays: list[float] = []
        self._real = real
        self._on_sleep = on_sleep

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self._on_sleep is not None:
            self._on_sleep()
        await asyncio.sleep(delay if self._real else 0)


class HeldSleep(RecordingSleep):
    """A sleep that never ends by itself: it records the delay and blocks until the test (having
    advanced its clock) lets every sleeper go with :meth:`release_all`."""

    def __init__(self) -> None:
        super().__init__()
        self._go = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await self._go.wait()

    def release_all(self) -> None:
        self._go.set()
        self._go = asyncio.Event()
