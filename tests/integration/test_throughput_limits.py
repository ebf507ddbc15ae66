"""Quota buckets and write coalescing with the real clients, against the protocol fakes."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import openai
import pytest

from tests.fakes import openai_api as behaviours
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.sheets import FakeSheets
from tests.support.live import LiveServer, make_settings, wait_for_job
from wipsvc.adapters.base import FetchedPage
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.adapters.llm import LLMExtractor
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.collection import DEFAULT_COLUMNS, CollectionConfig, SheetConfig
from wipsvc.demo.shop import DEMO_PAGES, SampleShop
from wipsvc.limits import Limits, QuotaBucket
from wipsvc.pipeline.retry import RetryPolicy, with_retries

HEADER = sorted(DEFAULT_COLUMNS, key=lambda name: DEFAULT_COLUMNS[name])


async def test_a_job_stays_inside_a_small_quota_and_coalesces_its_writes(
    sqlite_url: str,
    shop: SampleShop,
    fetcher: SafeFetcher,
    oauth: FakeGoogleOAuth,
    credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # embedded extraction and descriptions
    good = [page for page in DEMO_PAGES if page.markup != "none"]
    products = [(f"SKU-{n:02}", shop.url_for(good[n % len(good)])) for n in range(24)]
    # Four writes and four reads a second: without pacing, 24 products would get 429s at once.
    with FakeSheets(oauth, write_quota=4, read_quota=4, quota_window=1.0) as sheets:
        sid = sheets.add_spreadsheet()
        sheets.set_rows(sid, "Sheet1", [HEADER])
        settings = make_settings(
            sqlite_url,
            sheets_api_url=sheets.url,
            google_credentials_file=str(credentials),
            sheets_write_per_minute=4,
            sheets_read_per_minute=4,
            quota_period_seconds=1.0,
            sheets_coalesce_window_ms=50,
            workers_per_job=8,
        )
        async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
            config = CollectionConfig(sheet=SheetConfig(backend="google", spreadsheet_id=sid))
            response = await client.put("/api/collections/paced", json=config.model_dump(mode="json"))
            assert response.status_code == 200, response.text
            response = await client.post(
                "/api/paced/wip", json={"products": [{"sku": s, "url": u} for s, u in products]}
            )
            ids = response.json()["wip_ids"]
            response = await client.post("/api/paced/wip/process", json={"wip_ids": ids})
            job = await wait_for_job(client, "paced", response.json()["job_id"], timeout=60)

        assert job["status"] == "completed" and job["successful_products"] == len(products)
        assert sheets.count(status=429) == 0  # the buckets paced every request
        writes = sheets.count(kind="write")
        assert writes / len(products) < 1.0  # three writes per product, coalesced
        assert sheets.count("values.append") < len(products)
        rows = sheets.rows(sid, "Sheet1")
        skus = [row[0] for row in rows[1:]]
        assert sorted(skus) == [sku for sku, _ in products]  # each exactly once
        for row in rows[1:]:
            assert row[HEADER.index("status")] == "ready" and row[HEADER.index("title")]
        for result in job["results"]:
            assert rows[result["row_num"] - 1][0] == result["sku"]


async def test_a_sheets_429_pauses_the_bucket_for_every_session(
    oauth: FakeGoogleOAuth, credentials: Path
) -> None:
    limits = Limits.unlimited()
    writes = limits.sheets_write
    writes.backoff, writes.max_backoff = 1.0, 1.0
    with FakeSheets(oauth) as sheets:
        sid = sheets.add_spreadsheet()
        sheets.set_rows(sid, "Sheet1", [HEADER])
        backend = GoogleSheetsBackend(sheets.url, str(credentials), limits=limits, coalesce_window=None)
        try:
            config = CollectionConfig(sheet=SheetConfig(backend="google", spreadsheet_id=sid))
            one, two = await backend.open(config), await backend.open(config)
            sheets.fail_next(1, 429, method="values.append")
            # The step's policy tries again after the 429: through the paused bucket, without a try used.
            first = asyncio.create_task(with_retries(lambda: one.append_row("A-1", "u1"), STEP, "append"))
            async with asyncio.timeout(10):
                while writes.throttles == 0:
                    await asyncio.sleep(0.01)
            # The other session was never refused, yet it waits for the pause like the first.
            second = asyncio.create_task(two.append_row("B-1", "u2"))
            await asyncio.sleep(0.05)
            paused = writes.snapshot()
            rows = await asyncio.gather(first, second)
        finally:
            await backend.aclose()
    assert paused["paused_for"] > 0 and paused["waiting"] == 2 and paused["in_flight"] == 0
    assert sorted(rows) == [2, 3]
    assert writes.snapshot()["throttled"] == 1
    assert [r.status for r in sheets.requests if r.method == "values.append"] == [429, 200, 200]


STEP = RetryPolicy(max_attempts=1)  # a throttled try uses none: one try is enough here

PAGE = FetchedPage(
    url="http://127.0.0.1/products/mug",
    status_code=200,
    content_type="text/html",
    text="<html><head><title>Mug</title></head><body><p>A stoneware mug by Acme.</p></body></html>",
)


async def test_an_llm_429_pauses_the_request_bucket_and_the_call_is_retried_through_it() -> None:
    limits = Limits(
        sheets_write=QuotaBucket("sheets_write", None),
        sheets_read=QuotaBucket("sheets_read", None),
        apps_script=QuotaBucket("apps_script", None),
        llm_requests=QuotaBucket("llm_requests", 100),
        llm_tokens=QuotaBucket("llm_tokens", 1_000_000),
    )
    with FakeOpenAI() as fake:
        fake.enqueue(behaviours.rate_limit(retry_after="0.2"))
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=2)
        try:
            extractor = LLMExtractor(client, model="gpt-test", limits=limits)
            products = await asyncio.gather(
                *(
                    with_retries(functools.partial(extractor.extract, PAGE, sku=f"S-{n}"), STEP, "x")
                    for n in range(2)
                )
            )
        finally:
            await client.close()
    assert all(product.fields.get("title") for product in products)
    assert [r.outcome for r in fake.requests] == ["rate_limit", "ok", "ok"]
    snapshot = limits.llm_requests.snapshot()
    assert snapshot["throttled"] == 1 and snapshot["admitted"] == 3
    assert limits.llm_tokens.snapshot()["admitted"] == 3  # each attempt took its tokens too
