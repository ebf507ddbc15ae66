"""A whole job through the live server with every collection backend on its real client.

Google Sheets (gspread-asyncio + google-auth), the Apps Script API (httpx + a refresh token) and the
LLM (the openai SDK) all talk real HTTP to the protocol fakes on 127.0.0.1; only the page fetcher is
the test's (the real scraper, on the sample shop). :class:`FakeCloud` is in
``tests/support/cloud.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cloud import (
    COLLECTION,
    COLUMNS,
    SHEETS_REQUESTS_PER_JOB,
    SHEETS_REQUESTS_PER_PRODUCT,
    WORKSHEET,
    FakeCloud,
    cell_at,
    configure,
    expected_cells,
    product_record,
)
from tests.support.live import LiveServer, start_job, wait_for_job
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[FakeCloud]:
    with FakeCloud(tmp_path) as fakes:
        yield fakes


async def test_a_job_with_every_real_backend_fills_the_google_sheet(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher, cloud: FakeCloud
) -> None:
    # The whole shop, the discontinued page included: with an LLM configured it does not fail.
    # Its page has no structured data, only an HTML <title>, which counts as a weak title the LLM
    # may replace, and the (fake) model answers every missing field; so the extractor has a title
    # and the product goes through like the others. Without an LLM it fails ("no product data").
    products = shop.products()
    assert {sku for sku, _ in products} & BROKEN_SKUS
    settings = cloud.settings(sqlite_url)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        await configure(client, cloud)
        job_id, ids = await start_job(client, COLLECTION, products)
        job = await wait_for_job(client, COLLECTION, job_id, timeout=60)
        records = [await product_record(client, wip_id) for wip_id in ids]

    # Every product ends ready.
    assert job["status"] == "completed" and job["error"] is None
    assert job["successful_products"] == job["total_products"] == len(products)
    assert all(r["status"] == "succeeded" and r["error"] is None for r in job["results"])
    assert [record["status"] for record in records] == ["ready"] * len(products)
    assert all(r["generator"] == "llm" for r in job["results"])

    # The sheet holds each SKU once, every mapped field in its column, on the row the job reported.
    rows = cloud.sheet_rows()
    assert sorted(rows) == sorted(sku for sku, _ in products)
    row_of = {r["sku"]: r["row_num"] for r in job["results"]}
    grid = cloud.sheets.rows(cloud.spreadsheet_id, WORKSHEET)
    for record in records:
        cells = rows[record["sku"]]
        assert cells == expected_cells(record)
        assert all(cells[name] for name in COLUMNS), f"{record['sku']}: empty {cells}"
        assert cell_at(grid[row_of[record["sku"]] - 1], COLUMNS["sku"]) == record["sku"]

    # Sheets requests: a constant per job plus at most 3 per product. (Fewer when the backend
    # coalesces the writes of products that are ready together into one request.)
    n = len(products)
    sheets = cloud.sheets
    assert len(sheets.requests) <= SHEETS_REQUESTS_PER_PRODUCT * n + SHEETS_REQUESTS_PER_JOB
    assert (sheets.count("spreadsheets.get"), sheets.count("values.get")) == (2, 1)
    assert 1 <= sheets.count("values.append") <= n
    assert 1 <= sheets.count("values.batchUpdate") <= 2 * n
    assert sheets.count(status=200) == len(sheets.requests)

    # Apps Script cleaned every row: one call per product, with (sheet, row, SKU).
    calls = sorted((c.function, *c.parameters) for c in cloud.script.api_calls)
    assert calls == sorted(("cleanRow", WORKSHEET, row_of[sku], sku) for sku, _ in products)

    # The LLM was called (extraction and descriptions, for every product), with the collection's
    # model, and its token usage is recorded per product and summed in the job.
    llm = cloud.llm
    answered = llm.completed()
    assert {r.model for r in llm.requests} == {"fake-extractor"}
    assert sorted({r.schema_name for r in answered if r.schema_name}) == [
        "ExtractedFields",
        "ProductDescriptions",
    ]
    assert sum(r.schema_name == "ProductDescriptions" for r in answered) == n
    per_product = [r["token_usage"] for r in job["results"]]
    assert all(u is not None and u["calls"] >= 1 and u["total_tokens"] > 0 for u in per_product)
    summed = {key: sum(u[key] for u in per_product) for key in ("prompt_tokens", "total_tokens", "calls")}
    assert {key: job["token_usage"][key] for key in summed} == summed
    assert summed["total_tokens"] == llm.total_usage()["total_tokens"]
    assert summed["calls"] == len(answered) == len(llm.requests)
