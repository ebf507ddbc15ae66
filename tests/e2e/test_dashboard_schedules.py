"""The dashboard shows scheduled jobs with their time, and a collection's schedules, which it
pauses and resumes; driven in headless Chromium against a real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.async_api import BrowserContext

from tests.support.browser import open_page
from tests.support.live import LiveServer, make_settings
from wipsvc.demo.shop import SampleShop


async def test_scheduled_jobs_and_schedules_are_shown_and_paused(
    sqlite_url: str,
    shop: SampleShop,
    browser: BrowserContext,
) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        products = [{"sku": sku, "url": url} for sku, url in shop.products()[:1]]
        ids = (await client.post("/api/sinks/wip", json={"products": products})).json()["wip_ids"]
        run_at = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
        started = await client.post("/api/sinks/wip/process", json={"wip_ids": ids, "run_at": run_at})
        job_id = started.json()["job_id"]
        created = await client.post(
            "/api/sinks/schedules", json={"cron": "30 5 * * *", "timezone": "Asia/Tokyo"}
        )
        schedule_id = created.json()["schedule"]["id"]

        page, errors = await open_page(browser)
        await page.goto(f"{server.url}/#/c/sinks")
        job_row = page.locator(f'tr[data-job-id="{job_id}"]')
        await job_row.locator('.badge[data-status="scheduled"]').wait_for()
        assert "runs at" in await job_row.locator(".timing").inner_text()

        schedule_row = page.locator(f'#schedules tr[data-schedule-id="{schedule_id}"]')
        await schedule_row.wait_for()
        text = await schedule_row.inner_text()
        assert "30 5 * * *" in text and "Asia/Tokyo" in text and "pending" in text
        await schedule_row.get_by_role("button", name="Pause").click()
        await schedule_row.locator('.badge[data-status="paused"]').wait_for()
        assert (await client.get(f"/api/sinks/schedules/{schedule_id}")).json()["schedule"]["paused"] is True
        await schedule_row.get_by_role("button", name="Resume").click()
        await schedule_row.get_by_role("button", name="Pause").wait_for()
        assert (await client.get(f"/api/sinks/schedules/{schedule_id}")).json()["schedule"]["paused"] is False

        await page.goto(f"{server.url}/#/c/sinks/jobs/{job_id}")
        await page.locator("#job-run-at").wait_for()
        await page.get_by_role("button", name="Cancel job").click()
        await page.locator('.badge[data-status="cancelled"]').first.wait_for()
        assert (await client.get(f"/api/sinks/wip/jobs/{job_id}")).json()["job"]["status"] == "cancelled"
        assert errors == []
