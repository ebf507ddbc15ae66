"""The dashboard's delivery log: a job page lists the notifications its end owed, with their
attempts, and sends one again; driven in headless Chromium against a real server."""

from __future__ import annotations

import asyncio

from playwright.async_api import BrowserContext

from tests.support.browser import open_page
from tests.support.live import LiveServer, make_settings, until, wait_for_job
from tests.support.receivers import WebhookReceiver
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import SampleShop


async def test_the_job_page_shows_the_delivery_log_and_sends_again(
    sqlite_url: str,
    shop: SampleShop,
    fetcher: SafeFetcher,
    browser: BrowserContext,
) -> None:
    settings = make_settings(sqlite_url, notify_max_attempts=1, notify_poll_seconds=0.1)
    async with (
        WebhookReceiver(script=[500]) as hooks,
        LiveServer(settings, fetcher=fetcher) as server,
        server.client() as client,
    ):
        products = [{"sku": sku, "url": url} for sku, url in shop.products()]
        ids = (await client.post("/api/sinks/wip", json={"products": products})).json()["wip_ids"]
        targets = [{"kind": "webhook", "url": hooks.url}]
        assert (
            await client.put("/api/collections/sinks/notifications", json={"targets": targets})
        ).is_success
        job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()["job_id"]
        await wait_for_job(client, "sinks", job_id)
        await until(lambda: len(hooks.received) == 1)

        page, errors = await open_page(browser)
        await page.goto(f"{server.url}/#/c/sinks/jobs/{job_id}")
        row = page.locator("#job-deliveries tbody tr")
        await row.locator('.badge[data-status="failed"]').wait_for()
        assert "job.completed" in await row.inner_text()
        assert "HTTP 500" in await row.inner_text()
        await row.get_by_role("button", name="Send again").click()
        await page.wait_for_selector("#deliveries-feedback .notice")
        await until(lambda: len(hooks.received) == 2)
        while (await client.get("/api/collections/sinks/deliveries")).json()["deliveries"][0][
            "status"
        ] != "delivered":
            await asyncio.sleep(0.05)
        await page.reload()
        await page.locator('#job-deliveries .badge[data-status="delivered"]').wait_for()
        assert errors == []
