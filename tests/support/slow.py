"""Page fetchers that take their time, so that tests can act while a job is in the middle."""

from __future__ import annotations

import asyncio

from wipsvc.adapters.base import FetchedPage, PageFetcher


class SlowFetcher:
    def __init__(self, inner: PageFetcher, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.fetches = 0

    async def fetch(self, url: str) -> FetchedPage:
        self.fetches += 1
        await asyncio.sleep(self.delay)
        return await self.inner.fetch(url)

    async def aclose(self) -> None:
        """The inner fetcher belongs to the test's fixture."""


class GatedFetcher:
    """Holds every fetch (or only those of ``held`` URLs) until the test opens the gate, so a job
    stays running meanwhile."""

    def __init__(self, inner: PageFetcher, held: set[str] | None = None) -> None:
        self.inner = inner
        self.held = held
        self.gate = asyncio.Event()
        self.waiting = 0

    async def fetch(self, url: str) -> FetchedPage:
        if self.held is None or url in self.held:
            self.waiting += 1
            await self.gate.wait()
        return await self.inner.fetch(url)

    async def aclose(self) -> None:
        """The inner fetcher belongs to the test's fixture."""
