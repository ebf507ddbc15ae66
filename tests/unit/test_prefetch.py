"""Pages read while a job's backends open: each served once, a failed read fetched again, the
unused ones dropped."""

from __future__ import annotations

import asyncio

import pytest

from wipsvc.adapters.base import FetchedPage, StepError
from wipsvc.pipeline.prefetch import PrefetchingFetcher


class CountingFetcher:
    def __init__(self, failing: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.failing = set(failing or ())
        self.held = asyncio.Event()  # fetches of "/slow" wait for it

    async def fetch(self, url: str) -> FetchedPage:
        self.calls.append(url)
        if url == "/slow":
            await self.held.wait()
        if url in self.failing:
            self.failing.discard(url)  # fails once
            raise StepError(f"could not fetch {url}", transient=True)
        return FetchedPage(url, 200, "text/html", f"<html>{url}</html>")

    async def aclose(self) -> None:
        pass


async def test_a_prefetched_page_is_served_once_then_fetched_anew() -> None:
    inner = CountingFetcher()
    fetcher = PrefetchingFetcher(inner)
    fetcher.prefetch(["/a", "/b"])
    page = await fetcher.fetch("/a")
    assert page.text == "<html>/a</html>"
    assert sorted(inner.calls) == ["/a", "/b"]
    await fetcher.fetch("/a")  # a second ask (a retried step) reads the page again
    assert inner.calls.count("/a") == 2
    await fetcher.cancel()


async def test_a_failed_prefetch_is_not_reported_the_step_fetches_itself() -> None:
    inner = CountingFetcher(failing={"/a"})
    fetcher = PrefetchingFetcher(inner)
    fetcher.prefetch(["/a"])
    page = await fetcher.fetch("/a")
    assert page.status_code == 200 and inner.calls == ["/a", "/a"]


async def test_pages_nobody_asked_for_are_dropped() -> None:
    inner = CountingFetcher()
    fetcher = PrefetchingFetcher(inner)
    fetcher.prefetch(["/slow"])
    await asyncio.sleep(0)
    await fetcher.cancel()
    inner.held.set()
    inner.failing.add("/slow")
    with pytest.raises(StepError):
        await fetcher.fetch("/slow")  # not served from the cancelled prefetch: fetched anew
    assert inner.calls == ["/slow", "/slow"]
