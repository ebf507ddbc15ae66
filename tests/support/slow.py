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
    """Holds every fetch until the test opens the gate, so a job stays running meanwhile."""

    def __init__(self, inner: PageFetcher) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.waiting = 0

    async def fetch(self, url: str) -> FetchedPage:
        self.waiting += 1
        await self.gate.wait()
        return await self.inner.fetch(url)

    async def aclose(self) -> None:
        """The inner fetcher belongs to the test's fixture."""
