"""The dashboard shows a job's priority and makes a queued job urgent, which then runs beside
its collection's normal job; driven in headless Chromium against a real server."""

from __future__ import annotations

from playwright.async_api import BrowserContext

from tests.support.browser import open_page
from tests.support.live import LiveServer, make_settings, until, wait_for_job
from tests.support.slow import GatedFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import SampleShop


async def test_the_job_page_shows_the_priority_and_makes_a_queued_job_urgent(
    sqlite_url: str,
    shop: SampleShop,
    fetcher: SafeFetcher,
    browser: BrowserContext,
) -> None:
    gated = GatedFetcher(fetcher)
    settings = make_settings(sqlite_url, jobs_per_collection=1)
    async with LiveServer(settings, fetcher=gated) as server, server.client() as client:
        (_, url), *_ = shop.products()
        body = {"products": [{"sku": "TAP-1", "url": url}, {"sku": "TAP-2", "url": url}]}
        first_id, second_id = (await client.post("/api/taps/wip", json=body)).json()["wip_ids"]
        first = (await client.post("/api/taps/wip/process", json={"wip_ids": [first_id]})).json()["job_id"]
        await until(lambda: gated.waiting >= 1)  # running, held at its page
        started = await client.post("/api/taps/wip/process", json={"wip_ids": [second_id], "priority": "low"})
        second = started.json()["job_id"]

        page, errors = await open_page(browser)
        await page.goto(f"{server.url}/#/c/taps/jobs/{second}")
        await page.locator('#job-priority[data-priority="low"]').wait_for()
        await page.click("#make-urgent")
        await page.locator('#job-priority[data-priority="urgent"]').wait_for()
        assert "Priority set to urgent" in await page.inner_text("#job-feedback")
        assert (await client.get(f"/api/taps/wip/jobs/{second}")).json()["job"]["priority"] == "urgent"
        # Urgent, it runs beside the normal job instead of waiting for it; the button goes.
        await until(lambda: gated.waiting >= 2)
        await page.locator('.badge[data-status="running"]').wait_for()
        assert await page.locator("#make-urgent").count() == 0

        # The collection's job list marks the urgent job.
        await page.goto(f"{server.url}/#/c/taps")
        row = page.locator(f'.jobs-table tr[data-job-id="{second}"]')
        await row.locator(".priority-urgent").wait_for()
        assert await page.locator(f'.jobs-table tr[data-job-id="{first}"] .priority').count() == 0
        gated.gate.set()
        for job_id in (first, second):
            assert (await wait_for_job(client, "taps", job_id))["status"] == "completed"
        assert errors == []
