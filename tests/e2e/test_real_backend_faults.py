"""Faults of the real backends during a live job: Sheets quota, script and LLM errors, a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes import openai_api as behaviours
from tests.fakes.apps_script import ScriptFailure
from tests.support.cloud import (
    COLLECTION,
    COLUMNS,
    WORKSHEET,
    FakeCloud,
    configure,
    expected_cells,
    product_record,
)
from tests.support.live import LiveServer, start_job, wait_for_job
from tests.support.sleeps import RecordingSleep
from tests.support.slow import SlowFetcher
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.collection import column_index
from wipsvc.demo.shop import SampleShop
from wipsvc.domain.statuses import ItemStatus
from wipsvc.pipeline.retry import RetryPolicy
from wipsvc.store import Store

QUOTA_WINDOW = 0.5  # the fake's "minute"
WRITE_QUOTA = 4  # writes per window: far fewer than a job of 9 products needs (27)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[FakeCloud]:
    with FakeCloud(tmp_path, quota_window=QUOTA_WINDOW) as fakes:
        yield fakes


async def test_sheets_quota_429s_slow_the_job_down_and_nothing_is_lost(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher, cloud: FakeCloud
) -> None:
    products = shop.products()
    n = len(products)
    cloud.sheets.set_quota(write=WRITE_QUOTA)
    # The step's retry policy (no quota buckets, no coalescing: each 429 uses a try), on a scale
    # that suits the fake's short window, with as many tries as the job's writes may need.
    sleep = RecordingSleep(real=True)
    google_sheets = GoogleSheetsBackend(cloud.sheets.url)
    retry = RetryPolicy(max_attempts=30, base_delay=0.05, max_delay=0.4, sleep=sleep)
    settings = cloud.settings(sqlite_url)
    async with (
        LiveServer(settings, fetcher=fetcher, google_sheets=google_sheets, retry=retry) as server,
        server.client() as client,
    ):
        await configure(client, cloud)
        started = time.monotonic()
        job_id, ids = await start_job(client, COLLECTION, products)
        job = await wait_for_job(client, COLLECTION, job_id, timeout=60)
        elapsed = time.monotonic() - started
        records = [await product_record(client, wip_id) for wip_id in ids]

    assert job["status"] == "completed"
    assert job["successful_products"] == n, [r["error"] for r in job["results"]]
    assert [record["status"] for record in records] == ["ready"] * n
    # The quota answered 429s, the steps backed off, and so the job took at least as many
    # quota windows as its writes need: 3 per product at WRITE_QUOTA per window.
    sheets = cloud.sheets
    throttled = sheets.count(status=429)
    assert throttled > 0 and sleep.delays
    assert len(sleep.delays) <= throttled  # a backoff only ever follows a 429
    assert elapsed >= (3 * n // WRITE_QUOTA - 1) * QUOTA_WINDOW
    # Nothing lost, nothing doubled: each SKU on one row, every row complete, and no more
    # successful writes than the 3 per product a job needs.
    assert sheets.count(kind="write", status=200) <= 3 * n
    rows = cloud.sheet_rows()
    assert len(sheets.rows(cloud.spreadsheet_id, WORKSHEET)) == 1 + n
    assert sorted(rows) == sorted(sku for sku, _ in products)
    for record in records:
        assert rows[record["sku"]] == expected_cells(record)


async def test_script_and_llm_errors_fail_only_their_product_with_the_vendors_message(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher, cloud: FakeCloud
) -> None:
    products = shop.products()
    # The pages of BB-1007 and BB-1008 lack fields (GTIN, colour…), so their extraction asks the LLM.
    script_sku, refused_sku, invalid_sku = "BB-1001", "BB-1007", "BB-1008"
    assert {script_sku, refused_sku, invalid_sku} <= {sku for sku, _ in products}
    cloud.script.fail_sku(
        script_sku, ScriptFailure("Exception: price column is empty", function="cleanRow", line=12)
    )
    # Both LLM prompts (extraction, descriptions) carry "SKU: <sku>" followed by a line break.
    cloud.llm.when(
        lambda r: f"SKU: {refused_sku}\n" in r.user_text,
        behaviours.refusal("I'm sorry, I can't help with that product."),
    )
    cloud.llm.when(
        lambda r: r.schema_name == "ProductDescriptions" and f"SKU: {invalid_sku}\n" in r.user_text,
        behaviours.invalid_json("Sure! Here is the copy: {body_html: oops"),
    )
    settings = cloud.settings(sqlite_url)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        await configure(client, cloud)
        job_id, ids = await start_job(client, COLLECTION, products)
        job = await wait_for_job(client, COLLECTION, job_id, timeout=60)
        records = {r["sku"]: r for r in [await product_record(client, wip_id) for wip_id in ids]}

    assert job["status"] == "completed"
    results = {r["sku"]: r for r in job["results"]}
    failed = {sku for sku, r in results.items() if not r["success"]}
    assert failed == {script_sku, refused_sku, invalid_sku}
    assert job["successful_products"] == len(products) - 3

    script = results[script_sku]
    assert (script["error_step"], script["error"]) == (
        "clean",
        "Apps Script error: Exception: price column is empty (cleanRow:12)",
    )
    refused = results[refused_sku]
    assert (refused["error_step"], refused["error"]) == (
        "extract",
        "LLM refused: I'm sorry, I can't help with that product. (after 3 attempts)",
    )
    invalid = results[invalid_sku]
    assert invalid["error_step"] == "describe"
    assert invalid["error"].startswith("LLM output invalid: ") and invalid["error"].endswith(
        "(after 3 attempts)"
    )
    assert "Sure! Here is the copy" in invalid["error"]  # what the model said, in the message
    # The rejected answers were billed, and are counted against their product.
    assert refused["token_usage"]["calls"] == 3
    assert invalid["token_usage"]["calls"] == 1 + 3  # one extraction, three description tries
    for sku, record in records.items():
        assert record["status"] == ("error" if sku in failed else "ready")
        assert record["error"] == results[sku]["error"]

    # In the sheet: every SKU once; ready rows complete; failed rows never marked ready.
    rows = cloud.sheet_rows()
    assert sorted(rows) == sorted(sku for sku, _ in products)
    for sku, record in records.items():
        if sku not in failed:
            assert rows[sku] == expected_cells(record)
    assert {sku for sku, cells in rows.items() if cells["status"] != "ready"} == failed
    # The script failed after the row was written: its fields are there, only the status is not.
    assert rows[script_sku]["title"] == records[script_sku]["extracted"]["title"]
    assert rows[refused_sku]["title"] == "" and rows[refused_sku]["url"]


async def test_a_resumed_product_does_not_append_a_second_row(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher, cloud: FakeCloud
) -> None:
    products = shop.products()
    settings = cloud.settings(sqlite_url, workers_per_job=2)
    async with (
        LiveServer(settings, fetcher=SlowFetcher(fetcher, 0.3)) as first,
        first.client() as client,
    ):
        await configure(client, cloud)
        job_id, _ = await start_job(client, COLLECTION, products)
        await _until_extracting(client, job_id)
    # The first instance is gone; products it had started hold their row and wait in `extract`.
    store = await Store.open(sqlite_url)
    try:
        left = {i.sku: i for i in await store.jobs.items(job_id) if i.status is ItemStatus.RUNNING}
    finally:
        await store.close()
    in_flight = {sku: item.row_num for sku, item in left.items() if item.row_num and item.step != "complete"}
    assert in_flight, "some product should have been stopped after appending its row"
    rows_before = cloud.sheet_rows()
    assert set(in_flight) <= set(rows_before)

    async with LiveServer(settings, fetcher=fetcher) as second, second.client() as client:
        job = await wait_for_job(client, COLLECTION, job_id, timeout=60)
        records = {r["sku"]: r for r in [await product_record(client, i) for i in job["wip_ids"]]}

    assert job["status"] == "completed"
    assert job["successful_products"] == len(products)
    results = {r["sku"]: r for r in job["results"]}
    for sku, row_num in in_flight.items():
        assert results[sku]["attempts"] > 1 and results[sku]["row_num"] == row_num
    # Each SKU once in the sheet (sheet_rows() fails on a second row), complete; the resumed
    # products kept the rows the first instance had appended.
    rows = cloud.sheet_rows()
    assert sorted(rows) == sorted(sku for sku, _ in products)
    assert len(cloud.sheets.rows(cloud.spreadsheet_id, WORKSHEET)) == 1 + len(products)
    grid = cloud.sheets.rows(cloud.spreadsheet_id, WORKSHEET)
    for sku, row_num in in_flight.items():
        assert grid[row_num - 1][column_index(COLUMNS["sku"])] == sku
        assert rows[sku]["url"] == rows_before[sku]["url"]
    for sku, record in records.items():
        assert rows[sku] == expected_cells(record)
        assert rows[sku]["status"] == "ready" and set(COLUMNS) == set(rows[sku])


async def _until_extracting(client: httpx.AsyncClient, job_id: str) -> None:
    """Until a product of the job has its sheet row and is still being scraped (slowly)."""
    async with asyncio.timeout(20):
        while True:
            response = await client.get(f"/api/{COLLECTION}/wip", params={"status": "extracting"})
            if any(p["active_job_id"] == job_id and p["row_num"] for p in response.json()["products"]):
                return
            await asyncio.sleep(0.01)
