"""The dashboard, driven like a person would in headless Chromium, against a real server.

Needs Debian's `chromium` (/usr/bin/chromium) and the `playwright` Python package (which
drives that browser; Playwright's own browser downloads are never used). Without them the
browser tests skip; the page-serving tests still run.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.support.browser import open_page
from tests.support.live import LiveServer, make_settings
from tests.support.paced_shop import PacedShop
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.auth import create_key
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    configured = os.environ.get("WIPSVC_SCREENSHOT_DIR")
    directory = Path(configured) if configured else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def lines(products: list[tuple[str, str]]) -> str:
    return "\n".join(f"{sku},{url}" for sku, url in products)


async def add_products(page: Page, text: str) -> None:
    await page.fill("#add-lines", text)
    await page.click("#add-submit")
    await page.wait_for_selector("#add-result .notice")


async def job_id_from(page: Page) -> str:
    await page.wait_for_url(re.compile(r".*#/c/[^/]+/jobs/[0-9a-f-]+$"))
    return page.url.rsplit("/", 1)[-1]


async def wait_status(page: Page, status: str) -> None:
    await page.wait_for_selector(f'h1 .badge[data-status="{status}"]')


@pytest.fixture
def slow_shop() -> Iterator[PacedShop]:
    with PacedShop(latency=(1.0, 1.0)) as running:
        yield running


async def test_add_products_run_a_job_and_cancel_another(
    sqlite_url: str,
    shop: SampleShop,
    slow_shop: PacedShop,
    fetcher: SafeFetcher,
    browser: BrowserContext,
    screenshot_dir: Path,
) -> None:
    settings = make_settings(sqlite_url, product_delay_seconds=0.5, workers_per_job=1)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        page, errors = await open_page(browser)
        products = shop.products()

        # A collection that does not exist yet: the page offers the form to create it.
        await page.goto(f"{server.url}/#/c/sinks")
        await page.get_by_text("has no products yet").wait_for()
        await add_products(page, lines(products))
        assert f"Added {len(products)} products" in await page.inner_text("#add-result")
        await page.locator("#selected-count", has_text=f"{len(products)} products selected").wait_for()
        await page.locator("#products tbody tr input:checked").nth(len(products) - 1).wait_for()
        assert await page.locator("#products tbody tr").count() == len(products)

        # Start a job with the selection; the job page follows it live to the end.
        await page.click("#start-job")
        first_job = await job_id_from(page)
        bar = page.locator('#job-summary [role="progressbar"]')
        await page.wait_for_function(
            "() => document.querySelector('#job-summary [role=progressbar]')"
            "?.getAttribute('aria-valuenow') === '100'"
        )
        await wait_status(page, "completed")
        assert (
            await bar.get_attribute("aria-valuetext")
            == f"100% — {len(products)} of {len(products)} processed"
        )
        # Every product has its row; durations and fields come from REST once it catches up.
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#job-results tbody td[data-label=Duration]')]"
            ".every((td) => td.textContent.trim() !== '…' && td.textContent.trim() !== '—')"
        )
        rows = page.locator("#job-results tbody tr")
        assert await rows.count() == len(products)
        for sku, _ in products:
            row = page.locator("#job-results tbody tr", has=page.get_by_text(sku, exact=True))
            outcome = await row.get_attribute("data-outcome")
            sheet_row = await row.locator('td[data-label="Sheet row"]').inner_text()
            assert sheet_row.isdigit() and int(sheet_row) >= 2
            if sku in BROKEN_SKUS:
                assert outcome == "failed"
                assert "Extract:" in await row.locator('td[data-label="Error"]').inner_text()
                assert (
                    await row.locator('.steps li[data-state="failed"]').get_attribute("data-step")
                    == "extract"
                )
            else:
                assert outcome == "succeeded"
                assert "title" in await row.locator('td[data-label="Extracted fields"]').inner_text()
                assert await row.locator('.steps li[data-state="done"]').count() == 5
        # Every event once, in order: started, one per product, completed.
        seqs = await page.locator("#job-log li").evaluate_all(
            "(items) => items.map((li) => Number(li.dataset.seq))"
        )
        assert sorted(seqs) == list(range(1, len(products) + 3))
        assert await page.inner_text("#retry-job") == f"Retry {len(BROKEN_SKUS)} failed product"
        await page.screenshot(path=str(screenshot_dir / "job-completed.png"), full_page=True)

        # A second job of pages that take a second each, slow enough to cancel from its page.
        await page.goto(f"{server.url}/#/c/sinks")
        await page.wait_for_selector("#products tbody tr")
        slow = slow_shop.products("SLOW", 9)
        await add_products(page, lines(slow))
        await page.click("#start-job")
        second_job = await job_id_from(page)
        assert second_job != first_job
        # Cancelled once running: the job ends when its product in flight (most likely, a page
        # still loading) finishes; until then the page says "cancelling", never `cancelled`
        # ahead of the job and its API.
        await wait_status(page, "running")
        await page.click("#cancel-job")
        await page.wait_for_selector("#job-feedback .notice")
        assert "Cancellation requested" in await page.inner_text("#job-feedback")
        await wait_status(page, "cancelled")
        job = (await client.get(f"/api/sinks/wip/jobs/{second_job}")).json()["job"]
        assert job["status"] == "cancelled" and job["processed_products"] < len(slow)
        await page.wait_for_selector('#job-results tbody tr[data-outcome="skipped"]')
        await page.screenshot(path=str(screenshot_dir / "job-cancelled.png"), full_page=True)

        # The overview: the collection's counts, both jobs, the health panel.
        await page.click("text=Overview")
        card = page.locator('.collection-card[data-collection="sinks"]')
        await card.wait_for()
        assert f"{len(products) + len(slow)} products" in await card.inner_text()
        await page.wait_for_selector(f'.jobs-table tr[data-job-id="{second_job}"]')
        first_row = page.locator(f'.jobs-table tr[data-job-id="{first_job}"]')
        assert await first_row.get_attribute("data-status") == "completed"
        await page.wait_for_function(
            "() => Number(document.querySelector('#stat-finished')?.textContent) >= 9"
        )
        # One compact row per external service, a bar for its bucket.
        await page.wait_for_selector('#quota-table tr[data-service="sheets_write"] .meter')
        await page.screenshot(path=str(screenshot_dir / "overview.png"), full_page=True)

        await page.set_viewport_size({"width": 390, "height": 844})
        await page.goto(f"{server.url}/#/c/sinks/jobs/{first_job}")
        await page.wait_for_selector("#job-results tbody tr")
        await page.screenshot(path=str(screenshot_dir / "job-phone.png"), full_page=True)
        assert errors == []


async def test_live_updates_catch_up_after_a_reconnect(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher, browser: BrowserContext
) -> None:
    # Replays of one event a page: catching up takes the page several subscribes.
    settings = make_settings(sqlite_url, product_delay_seconds=0.3, workers_per_job=1, socket_replay_page=1)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        products = shop.products()
        created = await client.post(
            "/api/sinks/wip", json={"products": [{"sku": s, "url": u} for s, u in products]}
        )
        ids = created.json()["wip_ids"]
        page, errors = await open_page(browser)
        await page.goto(f"{server.url}/")
        await page.wait_for_selector("#live-status[data-state='connected']")
        job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()["job_id"]
        await page.goto(f"{server.url}/#/c/sinks/jobs/{job_id}")
        await page.wait_for_selector("#job-log li")

        # Drop the socket while the job runs; events go on without us.
        await page.evaluate("() => window.wipsvc.live.socket.disconnect()")
        await page.wait_for_selector("#live-status[data-state='reconnecting']")
        seen = await page.locator("#job-log li").count()
        await _until_processed(client, job_id, at_least=seen + 2)
        await page.evaluate("() => window.wipsvc.live.socket.connect()")

        # On reconnect the page subscribes from the last seq it saw and is replayed the rest,
        # page by page; the count covers every page.
        await page.wait_for_selector("#job-catchup:has-text('Caught up after reconnecting')")
        caught_up = await page.inner_text("#job-catchup")
        replayed = re.search(r"(\d+) missed events? replayed", caught_up)
        assert replayed and int(replayed.group(1)) >= 2, caught_up
        await wait_status(page, "completed")
        await page.wait_for_function(
            f"() => document.querySelectorAll('#job-log li').length === {len(ids) + 2}"
        )
        seqs = await page.locator("#job-log li").evaluate_all(
            "(items) => items.map((li) => Number(li.dataset.seq))"
        )
        assert seqs == list(range(len(ids) + 2, 0, -1))  # newest first, none twice, none missing
        assert errors == []


async def _until_processed(client: Any, job_id: str, *, at_least: int) -> None:
    async with asyncio.timeout(30):
        while True:
            job = (await client.get(f"/api/sinks/wip/jobs/{job_id}")).json()["job"]
            if job["processed_products"] >= at_least or job["status"] == "completed":
                return
            await asyncio.sleep(0.05)


async def test_error_messages_and_input_checks(sqlite_url: str, browser: BrowserContext) -> None:
    """409 and 404 show the service's own message; lines the API would refuse are caught first."""
    async with LiveServer(make_settings(sqlite_url)) as server:
        page, errors = await open_page(browser)
        await page.goto(f"{server.url}/#/c/sinks")
        await add_products(page, "A-1,http://127.0.0.1:9/a")
        await add_products(page, "A-1,http://127.0.0.1:9/a")
        conflict = "Conflict: SKUs already exist in collection 'sinks': A-1"
        assert conflict in await page.inner_text("#add-result")
        await add_products(page, "no url here\nB-1,ftp://example/b")
        result = await page.inner_text("#add-result")
        assert "line 1" in result and "line 2" in result and "Nothing was added" in result

        await page.goto(f"{server.url}/#/c/sinks/jobs/nope")
        await page.get_by_text("Not found: job nope not found in collection 'sinks'").wait_for()

        # The parser itself: quoted cells, a header naming the columns, tabs, duplicates.
        parsed = await page.evaluate(
            """async () => {
                const { parseProducts } = await import('./static/js/csv.js');
                return [
                  parseProducts('\\uFEFFname,url,SKU\\n"Sink, big",https://s.example/a?x=1,A-1\\n'),
                  parseProducts('A-1\\thttps://s.example/a\\n\\n# note\\nA-1\\thttps://s.example/b'),
                ];
            }"""
        )
        assert parsed[0] == {"products": [{"sku": "A-1", "url": "https://s.example/a?x=1"}], "errors": []}
        assert parsed[1]["products"] == [{"sku": "A-1", "url": "https://s.example/a"}]
        assert parsed[1]["errors"] == ["line 4: SKU A-1 already on line 1"]
        assert errors == []


async def test_the_page_and_its_assets_are_served(sqlite_url: str) -> None:
    """No browser needed: the page, its modules and the vendored Socket.IO client are served,
    with a strict Content-Security-Policy, and none of it is in the OpenAPI schema."""
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for asset in re.findall(r'(?:src|href)="(static/[^"]+)"', page.text):
            response = await client.get(f"/{asset}")
            assert response.status_code == 200, asset
            assert response.headers["cache-control"] == "no-cache"
        module = await client.get("/static/js/app.js")
        assert module.headers["content-type"].startswith(("text/javascript", "application/javascript"))
        vendored = await client.get("/static/vendor/socket.io.min.js")
        assert "Socket.IO v4" in vendored.text[:200]
        assert (await client.get("/static/nope.js")).status_code == 404
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert "/" not in paths and not any(p.startswith("/static") for p in paths)
        assert (await client.get("/docs")).status_code == 200


async def test_a_real_api_key_unlocks_rest_and_live_updates(sqlite_url: str, browser: BrowserContext) -> None:
    """With keys issued, the page asks for one, then uses it for REST and Socket.IO alike."""
    auth = pytest.importorskip("wipsvc.auth", reason="API keys are not part of this build")
    async with LiveServer(make_settings(sqlite_url)) as server:
        issued = await auth.create_key(server.services.store.keys, None, label="dashboard test")
        page, errors = await open_page(browser)
        await page.goto(f"{server.url}/")
        await page.locator("#api-key-dialog").wait_for(state="visible")
        assert "API key required" in await page.inner_text("#api-key-reason")
        await page.fill("#api-key-input", "wip_00000000_not-a-real-key-at-all-000000")
        await page.press("#api-key-input", "Enter")
        await page.locator("#api-key-reason", has_text="refused the stored key").wait_for()
        assert await page.is_visible("#api-key-dialog")
        await page.fill("#api-key-input", issued.key)
        await page.press("#api-key-input", "Enter")
        await page.get_by_text("No collections yet").wait_for()
        assert await page.evaluate("() => localStorage.getItem('wipsvc.apiKey')") == issued.key
        await page.wait_for_selector("#live-status[data-state='connected']")
        await page.wait_for_selector("#stat-running")
        assert await page.is_hidden("#banner")
        assert errors == []


async def test_jobs_page_deletion_and_messages_that_clear(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher, browser: BrowserContext
) -> None:
    async with LiveServer(make_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        jobs: dict[str, str] = {}
        for collection, (sku, url) in zip(("sinks", "taps"), shop.products()[:2], strict=True):
            (wip_id,) = (
                await client.post(f"/api/{collection}/wip", json={"products": [{"sku": sku, "url": url}]})
            ).json()["wip_ids"]
            jobs[collection] = (
                await client.post(f"/api/{collection}/wip/process", json={"wip_ids": [wip_id]})
            ).json()["job_id"]
        page, errors = await open_page(browser)
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))

        # The Jobs page reads every collection's jobs in one request.
        await page.goto(f"{server.url}/#/jobs")
        for job_id in jobs.values():
            await page.wait_for_selector(f'.jobs-table tr[data-job-id="{job_id}"][data-status="completed"]')
        listed = [url for url in requests if "/api/" in url and "/jobs" in url]
        assert listed and all(re.search(r"/api/jobs\?", url) for url in listed), listed

        # A load error on the job page goes once the service answers again (after a restart,
        # say): here the API is cut off while the page opens, then the live connection returns.
        await page.wait_for_selector("#live-status[data-state='connected']")
        await page.route("**/api/**", lambda route: route.abort())
        await page.evaluate(f"() => {{ location.hash = '#/c/sinks/jobs/{jobs['sinks']}'; }}")
        problem = page.locator("#job-load-problem").get_by_text(
            "Could not load the job — Cannot reach the service"
        )
        await problem.wait_for()
        await page.unroute("**/api/**")
        await page.evaluate("() => window.wipsvc.live.socket.disconnect()")
        await page.evaluate("() => window.wipsvc.live.socket.connect()")
        await wait_status(page, "completed")
        await problem.wait_for(state="detached")

        # Deleting a finished job, then a collection, from their pages.
        await page.click("#delete-job")
        await page.wait_for_url(re.compile(r".*#/c/sinks$"))
        assert (await client.get(f"/api/sinks/wip/jobs/{jobs['sinks']}")).status_code == 404
        await page.wait_for_selector("#products tbody tr")
        await page.click("#delete-collection")
        await page.wait_for_url(re.compile(r".*#/$"))
        assert (await client.get("/api/collections/sinks")).status_code == 404
        await page.wait_for_selector('.collection-card[data-collection="taps"]')
        assert await page.locator('.collection-card[data-collection="sinks"]').count() == 0
        assert errors == []


async def test_a_401_is_told_once_and_the_dialog_closes_when_requests_succeed(
    sqlite_url: str, browser: BrowserContext
) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server:
        issued = await create_key(server.services.store.keys, None)
        page, errors = await open_page(browser)
        await page.goto(f"{server.url}/")
        await page.locator("#api-key-dialog").wait_for(state="visible")
        await page.wait_for_selector("#health [data-load-error='401']")
        await page.wait_for_selector("#collections [data-load-error='401']")
        # The dialog says it; the page behind it does not repeat it.
        message = "API key required"
        assert await page.is_hidden("#banner")
        assert (await page.inner_text("main")).count(message) == 0
        # Dismissed, it is said once, by the banner.
        await page.click("#api-key-cancel")
        await page.locator("#banner").wait_for(state="visible")
        assert message in await page.inner_text("#banner")
        assert (await page.inner_text("body")).count(message) == 1

        # The key arrives another way (another tab stored it): the next answers clear the message.
        await page.evaluate("(key) => localStorage.setItem('wipsvc.apiKey', key)", issued.key)
        await page.evaluate("() => { location.hash = '#/jobs'; }")
        await page.locator("#banner").wait_for(state="hidden")
        await page.get_by_text("No jobs yet.").wait_for()

        # Asked again after a refusal, the dialog closes by itself once requests succeed.
        await page.evaluate(
            "() => localStorage.setItem('wipsvc.apiKey', 'wip_00000000_not-a-real-key-000000000000')"
        )
        await page.evaluate("() => { location.hash = '#/'; }")
        await page.locator("#api-key-dialog").wait_for(state="visible")
        await page.evaluate("(key) => localStorage.setItem('wipsvc.apiKey', key)", issued.key)
        await page.evaluate("() => { location.hash = '#/jobs'; }")
        await page.locator("#api-key-dialog").wait_for(state="hidden")
        assert errors == []


async def _offline(browser: BrowserContext) -> list[str]:
    """Make the browser fail every request beyond loopback, as if offline; returns those it tried."""
    attempted: list[str] = []

    async def route(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host == "127.0.0.1":
            await route.continue_()
        else:
            attempted.append(route.request.url)
            await route.abort("internetdisconnected")

    await browser.route("**/*", route)
    return attempted


async def test_the_api_docs_render_offline(sqlite_url: str, browser: BrowserContext) -> None:
    """/docs (Swagger UI) and /redoc (ReDoc) show every operation from vendored files alone."""
    attempted = await _offline(browser)
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        operations = [
            (method.upper(), path, operation["summary"])
            for path, item in (await client.get("/openapi.json")).json()["paths"].items()
            for method, operation in item.items()
        ]
        assert len(operations) >= 15
        page, errors = await open_page(browser)

        await page.goto(f"{server.url}/docs")
        await page.locator(".opblock").nth(len(operations) - 1).wait_for()
        assert await page.locator(".opblock").count() == len(operations)
        shown = await page.locator(".opblock .opblock-summary-path").all_inner_texts()
        paths = sorted(path for _, path, _ in operations)
        assert sorted(text.replace("\u200b", "") for text in shown) == paths
        await page.get_by_text("wipsvc", exact=False).first.wait_for()

        await page.goto(f"{server.url}/redoc")
        sections = page.locator("[data-section-id^='operation/']")
        await sections.nth(len(operations) - 1).wait_for(state="attached")
        headings = {text.strip() for text in await page.locator("h2").all_text_contents()}
        assert {summary for _, _, summary in operations} <= headings
        assert errors == []
    assert attempted == []
