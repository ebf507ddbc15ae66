"""A page fetcher that takes its time, so that tests can act while a job is in the middle."""

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
