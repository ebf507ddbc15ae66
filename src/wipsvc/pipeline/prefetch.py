"""Pages fetched while a job's backends open, so that opening the sheet (a token, then three
Sheets reads) is off the first products' critical path.

A page read is free and changes nothing, so fetching it before the job's sheet is known to open
costs nothing if the job then fails. Each prefetched page is handed out once; a prefetch that
failed is not reported: the extraction step fetches the page again itself, with its own retries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from wipsvc.adapters.base import FetchedPage, PageFetcher

__all__ = ["PageFetcher", "PrefetchingFetcher"]


class PrefetchingFetcher:
    """A :class:`PageFetcher` that first serves the pages ``prefetch`` started."""

    def __init__(self, fetcher: PageFetcher) -> None:
        self._fetcher = fetcher
        self._pages: dict[str, asyncio.Task[FetchedPage]] = {}

    def prefetch(self, urls: Iterable[str]) -> None:
        for url in urls:
            if url not in self._pages:
                self._pages[url] = asyncio.get_running_loop().create_task(self._fetcher.fetch(url))

    async def fetch(self, url: str) -> FetchedPage:
        task = self._pages.pop(url, None)
        if task is not None:
            with contextlib.suppress(Exception):
                return await task
        return await self._fetcher.fetch(url)

    async def cancel(self) -> None:
        """Drop the pages nobody asked for (the job ended, or could not start)."""
        tasks = list(self._pages.values())
        self._pages.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.cancel()  # the wrapped fetcher belongs to whoever made it
