"""Screenshots of the dashboard during a running job, for the README (docs/dashboard*.png).

    .venv/bin/python bench/screenshot.py            # writes docs/dashboard.png and friends
    .venv/bin/python bench/screenshot.py --serve    # leaves the demo running to explore by hand

Everything runs on 127.0.0.1: the sample shop, the service (SQLite in a temporary folder) and
headless Chromium (Debian's `chromium` package, driven by Playwright without its own browsers).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, ViewportSize, async_playwright

from wipsvc.app import create_app
from wipsvc.config import Settings
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop
from wipsvc.embedded import EmbeddedServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/screenshot.py` from the repo root: the helpers live in tests/

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

LAPTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


async def launch(playwright: Any, profile: Path) -> BrowserContext:
    """Chromium with a fresh profile folder (Playwright passes it as --user-data-dir)."""
    context: BrowserContext = await playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, viewport=LAPTOP
    )
    return context


async def create(client: httpx.AsyncClient, collection: str, products: list[tuple[str, str]]) -> list[int]:
    response = await client.post(
        f"/api/{collection}/wip", json={"products": [{"sku": s, "url": u} for s, u in products]}
    )
    response.raise_for_status()
    ids: list[int] = response.json()["wip_ids"]
    return ids


async def start(client: httpx.AsyncClient, collection: str, ids: list[int]) -> str:
    response = await client.post(f"/api/{collection}/wip/process", json={"wip_ids": ids})
    response.raise_for_status()
    job_id: str = response.json()["job_id"]
    return job_id


async def processed(client: httpx.AsyncClient, collection: str, job_id: str) -> tuple[int, str]:
    job = (await client.get(f"/api/{collection}/wip/jobs/{job_id}")).json()["job"]
    return int(job["processed_products"]), str(job["status"])


async def wait_processed(client: httpx.AsyncClient, collection: str, job_id: str, count: int) -> None:
    async with asyncio.timeout(120):
        while (await processed(client, collection, job_id))[0] < count:
            await asyncio.sleep(0.1)


async def shoot(page: Page, url: str, path: Path, *, ready: str) -> None:
    await page.goto(url)
    await page.wait_for_selector(ready)
    await page.wait_for_timeout(600)  # let live events and the bars' transitions settle
    await page.screenshot(path=str(path))
    print(f"wrote {path}")


async def main(out: Path, serve: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp, SampleShop() as shop:
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite+aiosqlite:///{tmp}/wipsvc.db",
            scrape_allowed_hosts=["127.0.0.1"],
            claim_interval_seconds=0.2,
            workers_per_job=1,
            product_delay_seconds=3.0,
            jobs_per_collection=2,
        )
        server = EmbeddedServer(create_app(settings))
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as client:
                products = shop.products()
                # History first: a finished job with one failure, in a second collection.
                taps = [p for p in products if p[0] in {"BB-1003", "BB-1005", *BROKEN_SKUS}]
                done_job = await start(client, "taps", await create(client, "taps", taps))
                await wait_processed(client, "taps", done_job, len(taps))
                job_id = await start(client, "sinks", await create(client, "sinks", products))
                print(f"dashboard: {server.url}/  job: {server.url}/#/c/sinks/jobs/{job_id}")
                if serve:
                    await asyncio.Event().wait()
                await wait_processed(client, "sinks", job_id, 4)
                out.mkdir(parents=True, exist_ok=True)
                async with async_playwright() as playwright:
                    browser = await launch(playwright, Path(tmp) / "chromium")
                    try:
                        job_url = f"{server.url}/#/c/sinks/jobs/{job_id}"
                        for name, viewport in (("", LAPTOP), ("-phone", PHONE)):
                            page = await browser.new_page()
                            await page.set_viewport_size(viewport)
                            await shoot(
                                page, job_url, out / f"dashboard{name}.png", ready="#job-results tbody tr"
                            )
                            await shoot(
                                page,
                                f"{server.url}/",
                                out / f"dashboard-overview{name}.png",
                                ready=".collection-card",
                            )
                            await shoot(
                                page,
                                f"{server.url}/#/c/sinks",
                                out / f"dashboard-collection{name}.png",
                                ready="#products tbody tr",
                            )
                            await page.close()
                    finally:
                        await browser.close()
        finally:
            await server.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNG files")
    parser.add_argument(
        "--serve", action="store_true", help="keep the demo running instead of taking pictures"
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.out, args.serve)))
