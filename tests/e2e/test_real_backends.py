"""A whole job through the live server with every collection backend on its real client.

Google Sheets (gspread-asyncio + google-auth), the Apps Script API (httpx + a refresh token) and the
LLM (the openai SDK) all talk real HTTP to the protocol fakes on 127.0.0.1; only the page fetcher is
the test's (the real scraper, on the sample shop). :class:`FakeCloud` is shared with
``test_real_backend_faults.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.apps_script import FakeAppsScript
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.sheets import FakeSheets
from tests.support.live import LiveServer, make_settings, wait_for_job
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.collection import column_index
from wipsvc.config import Settings
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop

COLLECTION = "sinks"
WORKSHEET = "Products"
SA_EMAIL = "wipsvc-e2e@fake-project.iam.gserviceaccount.com"
# Not the default layout: fields in another order, colour and material added, column R left empty,
# so that a value landing in the wrong column cannot go unnoticed.
COLUMNS = {
    "title": "A",
    "sku": "B",
    "url": "C",
    "status": "D",
    "price": "E",
    "currency": "F",
    "brand": "G",
    "gtin": "H",
    "mpn": "I",
    "availability": "J",
    "category": "K",
    "image_url": "L",
    "color": "M",
    "material": "N",
    "description": "O",
    "body_html": "P",
    "features": "Q",
    "care_instructions": "S",
}
# Sheets requests of one job that do not depend on its size: open_by_key and worksheet() read the
# spreadsheet's metadata, then the SKU column is read once.
SHEETS_REQUESTS_PER_JOB = 3
# values.append (sheet_row), values.batchUpdate of the row (clean), of the status (complete).
SHEETS_REQUESTS_PER_PRODUCT = 3


class FakeCloud:
    """Google's token endpoint, Sheets and Apps Script, and an OpenAI-compatible API, all fakes."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        worksheet: str = WORKSHEET,
        service_account_email: str = SA_EMAIL,
        **sheets_options: Any,  # FakeSheets' quotas and quota window
    ) -> None:
        self._stack = ExitStack()
        self.worksheet = worksheet
        self.oauth = self._stack.enter_context(FakeGoogleOAuth())
        self.sheets = self._stack.enter_context(FakeSheets(self.oauth, **sheets_options))
        self.script = self._stack.enter_context(FakeAppsScript(token_validator=self.oauth.is_valid))
        self.llm = self._stack.enter_context(FakeOpenAI(api_key="sk-e2e-test"))
        # Collections name credential files relative to the operator's directory.
        self.credentials_dir = tmp_path / "credentials"
        self.credentials_dir.mkdir()
        self.service_account = self.oauth.write_service_account(
            self.credentials_dir / "service-account.json", client_email=service_account_email
        )
        self.authorized_user = self.oauth.write_authorized_user(self.credentials_dir / "authorized-user.json")
        self.spreadsheet_id = self.sheets.add_spreadsheet(
            title="Catalogue", worksheets=[worksheet], shared_with=[service_account_email]
        )

    def close(self) -> None:
        self._stack.close()

    def settings(self, database_url: str, **overrides: Any) -> Settings:
        return make_settings(
            database_url,
            sheets_api_url=self.sheets.url,
            apps_script_api_url=self.script.url,
            llm_base_url=self.llm.base_url,
            llm_api_key=self.llm.api_key,
            llm_model="fake-model",
            credentials_dir=str(self.credentials_dir),
            **overrides,
        )

    def collection_config(self) -> dict[str, Any]:
        """The body of ``PUT /api/collections/{name}``: every backend on its real client."""
        return {
            "sheet": {
                "backend": "google",
                "spreadsheet_id": self.spreadsheet_id,
                "worksheet": self.worksheet,
                "credentials_file": self.service_account.name,
            },
            "columns": COLUMNS,
            "cleaning": {
                "backend": "apps_script_api",
                "script_id": self.script.script_id,
                "function": "cleanRow",
                "oauth_credentials_file": self.authorized_user.name,
            },
            "llm": {"enabled": True, "model": "fake-extractor"},
        }

    def sheet_rows(self) -> dict[str, dict[str, str]]:
        """Data rows by SKU, each as field -> cell; fails if a SKU is on more than one row."""
        header, *rows = self.sheets.rows(self.spreadsheet_id, self.worksheet)
        assert [header[column_index(letter)] for letter in COLUMNS.values()] == list(COLUMNS)
        by_sku: dict[str, dict[str, str]] = {}
        for line in rows:
            cells = {name: _cell(line, letter) for name, letter in COLUMNS.items()}
            assert cells["sku"] not in by_sku, f"SKU {cells['sku']} is on two rows"
            by_sku[cells["sku"]] = cells
            unmapped = [cell for index, cell in enumerate(line) if index not in _MAPPED]
            assert set(unmapped) <= {""}, f"a value outside the mapping: {unmapped}"
        return by_sku


_MAPPED = {column_index(letter) for letter in COLUMNS.values()}


def _cell(line: list[str], letter: str) -> str:
    index = column_index(letter)
    return line[index] if index < len(line) else ""


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[FakeCloud]:
    fakes = FakeCloud(tmp_path)
    try:
        yield fakes
    finally:
        fakes.close()


async def configure(client: httpx.AsyncClient, cloud: FakeCloud) -> None:
    response = await client.put(f"/api/collections/{COLLECTION}", json=cloud.collection_config())
    assert response.status_code == 200, response.text
    stored = response.json()["collection"]["config"]
    assert (stored["sheet"]["backend"], stored["cleaning"]["backend"]) == ("google", "apps_script_api")


async def submit(client: httpx.AsyncClient, products: list[tuple[str, str]]) -> tuple[str, list[int]]:
    created = await client.post(
        f"/api/{COLLECTION}/wip", json={"products": [{"sku": s, "url": u} for s, u in products]}
    )
    assert created.status_code == 201, created.text
    ids: list[int] = created.json()["wip_ids"]
    started = await client.post(f"/api/{COLLECTION}/wip/process", json={"wip_ids": ids})
    assert started.status_code == 202, started.text
    return str(started.json()["job_id"]), ids


async def product_record(client: httpx.AsyncClient, wip_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/{COLLECTION}/wip/{wip_id}")
    assert response.status_code == 200, response.text
    product: dict[str, Any] = response.json()["product"]
    return product


def expected_cells(product: dict[str, Any]) -> dict[str, str]:
    """What the row of a finished product must hold, from the service's own record of it."""
    extracted: dict[str, Any] = product["extracted"]
    descriptions: dict[str, Any] = product["descriptions"]
    values = {
        name: ", ".join(value) if isinstance(value, list) else str(value)
        for name, value in extracted.items()
        if name in COLUMNS and name not in ("sku", "url")
    }
    values |= {
        "sku": product["sku"],
        "url": product["url"],
        "status": "ready",
        "body_html": descriptions["body_html"],
        "features": "\n".join(descriptions["features"]),
        "care_instructions": descriptions["care_instructions"],
    }
    return values


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
        job_id, ids = await submit(client, products)
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
        assert _cell(grid[row_of[record["sku"]] - 1], COLUMNS["sku"]) == record["sku"]

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
