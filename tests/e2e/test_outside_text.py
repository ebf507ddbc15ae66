"""Text from outside, on SQLite and PostgreSQL, black-box over real HTTP: control characters are
refused in input and cleaned out of scraped values and vendor errors; CSV cells never run as
formulas; a job whose runs keep dying ends, and cancel always ends a job."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy.exc
from typer.testing import CliRunner

from tests.fakes.apps_script import ScriptFailure
from tests.support.cloud import FakeCloud
from tests.support.live import LiveServer, make_settings, start_job, wait_for_job
from tests.support.netguard import LocalHttpServer, Reply
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.cli import app as cli_app
from wipsvc.jobs.ledger_writer import WriteBatch
from wipsvc.store.lease import Lease
from wipsvc.store.ledger_batch import Committed, ItemCheckpoint, ItemFinish, LedgerWrite
from wipsvc.text import MAX_TEXT_CHARS

COLLECTION = "texts"
HTML = ("Content-Type", "text/html; charset=utf-8")


def product_page(**fields: str) -> bytes:
    data = {"@context": "https://schema.org", "@type": "Product", **fields}
    data.setdefault("offers", {"@type": "Offer", "price": "10.00", "priceCurrency": "EUR"})  # type: ignore[arg-type]
    script = json.dumps(data)  # control characters become \\u escapes: valid JSON, odd text
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>p</title>'
        f'<script type="application/ld+json">{script}</script></head><body><p>x</p></body></html>'
    ).encode()


@pytest.fixture
def pages() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as running:
        yield running


async def _run(client: httpx.AsyncClient, products: list[tuple[str, str]]) -> dict[str, Any]:
    return await wait_for_job(client, COLLECTION, (await start_job(client, COLLECTION, products)).job_id)


def _csv_rows(text: str) -> dict[str, list[str]]:
    return {row[0]: row for row in csv.reader(io.StringIO(text)) if row}


async def test_control_characters_in_input_are_refused(database_url: str, fetcher: SafeFetcher) -> None:
    async with LiveServer(make_settings(database_url), fetcher=fetcher) as server, server.client() as client:
        for bad in ("a\u0000b", "a\ud800b", "a\u0007b", "a\u001bb"):
            for body in (
                {"sheet": {"worksheet": bad}},
                {"columns": {"sku": "A", "url": "B", bad: "C"}},
                {"llm": {"model": bad}},
            ):
                # Sent as JSON text with \\u escapes, as a client would.
                response = await client.put(
                    f"/api/collections/{COLLECTION}",
                    content=json.dumps(body),
                    headers={"content-type": "application/json"},
                )
                assert response.status_code == 422, response.text
                assert "may not contain" in response.text or "contains" in response.text
            product = {"products": [{"sku": "S1", "url": f"https://shop.example/{bad}"}]}
            response = await client.post(
                f"/api/{COLLECTION}/wip",
                content=json.dumps(product),
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 422, response.text
        # Nothing was stored, and the collection still works.
        assert (await client.get(f"/api/collections/{COLLECTION}")).status_code == 404
        assert (
            await client.put(f"/api/collections/{COLLECTION}", json={"sheet": {"worksheet": "Tab\t1"}})
        ).status_code == 200
        assert (await client.get(f"/api/collections/{COLLECTION}/sheet.csv")).status_code == 200


async def test_scraped_text_is_cleaned_and_formula_cells_are_quoted(
    database_url: str, fetcher: SafeFetcher, pages: LocalHttpServer
) -> None:
    pages.routes["/nul"] = lambda _: Reply(
        200,
        [HTML],
        product_page(
            name="Sink\u0000 One\u0007", brand="Ac\ud800me", description="d" * (MAX_TEXT_CHARS + 500)
        ),
    )
    pages.routes["/formula"] = lambda _: Reply(
        200,
        [HTML],
        product_page(name='=HYPERLINK("http://evil.example","click")', brand="@SUM(1)", description="-2+3"),
    )
    async with LiveServer(make_settings(database_url), fetcher=fetcher) as server, server.client() as client:
        job = await _run(client, [("NUL-1", pages.url("/nul")), ("EQ-1", pages.url("/formula"))])
        assert job["status"] == "completed" and job["successful_products"] == 2, job
        product = (await client.get(f"/api/{COLLECTION}/wip/{job['results'][0]['wip_id']}")).json()
        text = json.dumps(product)
        assert "\\u0000" not in text and "\\u0007" not in text and "\\ud800" not in text
        exported = await client.get(f"/api/collections/{COLLECTION}/sheet.csv")
        assert exported.status_code == 200
        rows = _csv_rows(exported.text)
        header = rows["sku"]
        nul = dict(zip(header, rows["NUL-1"], strict=True))
        assert nul["title"] == "Sink One" and nul["brand"] == "Acme"
        assert len(nul["description"]) == MAX_TEXT_CHARS
        formula = dict(zip(header, rows["EQ-1"], strict=True))
        assert formula["title"] == '\'=HYPERLINK("http://evil.example","click")'
        assert formula["brand"] == "'@SUM(1)"
        assert formula["description"] == "'-2+3"
        assert formula["url"] == pages.url("/formula")

        # `wipsvc export` writes the same neutralised CSV.
        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli_app,
            ["export", COLLECTION, "--url", server.url],
            env={"WIPSVC_API_KEY": ""},
        )
        assert result.exit_code == 0, result.output
        assert _csv_rows(result.stdout)["EQ-1"] == rows["EQ-1"]


async def test_a_vendor_error_with_a_nul_fails_only_its_product(
    database_url: str, fetcher: SafeFetcher, tmp_path: Path, pages: LocalHttpServer
) -> None:
    pages.routes["/p1"] = lambda _: Reply(200, [HTML], product_page(name="One"))
    pages.routes["/p2"] = lambda _: Reply(200, [HTML], product_page(name="Two"))
    cloud = FakeCloud(tmp_path)
    try:
        cloud.script.fail_sku("BAD-1", ScriptFailure("row has a \u0000 in\nit"))
        settings = cloud.settings(database_url)
        config = {
            "cleaning": {
                "backend": "apps_script_api",
                "script_id": cloud.script.script_id,
                "oauth_credentials_file": cloud.authorized_user.name,
            },
            "llm": {"enabled": False},
        }
        async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
            assert (await client.put(f"/api/collections/{COLLECTION}", json=config)).status_code == 200
            job = await _run(client, [("OK-1", pages.url("/p1")), ("BAD-1", pages.url("/p2"))])
            calls = len(cloud.script.api_calls)
        results = {r["sku"]: r for r in job["results"]}
        assert job["status"] == "completed" and job["error"] is None, job
        assert results["OK-1"]["status"] == "succeeded"
        assert results["BAD-1"]["status"] == "failed" and results["BAD-1"]["error_step"] == "clean"
        assert results["BAD-1"]["error"].startswith("Apps Script error: row has a in it")
        assert calls == 2  # one call each: nothing was re-run by a job claimed again and again
    finally:
        cloud.close()


def _locked_at_every_finish(write_batch: WriteBatch) -> WriteBatch:
    """``write_batch``, failing every batch that would end a product as a locked SQLite does."""

    async def locked(lease: Lease, writes: Sequence[LedgerWrite]) -> Committed:
        if any(isinstance(write, ItemFinish) for write in writes):
            raise sqlalchemy.exc.OperationalError(
                "UPDATE job_items SET status=? WHERE job_items.job_id = ?",
                {},
                sqlite3.OperationalError("database is locked"),
            )
        return await write_batch(lease, writes)

    return locked


@asynccontextmanager
async def _runs_keep_dying(
    database_url: str, fetcher: SafeFetcher, pages: LocalHttpServer, *, job_max_claims: int
) -> AsyncIterator[tuple[LiveServer, httpx.AsyncClient]]:
    """A server on which every product's finish meets "database is locked", with one product page."""
    pages.routes["/p"] = lambda _: Reply(200, [HTML], product_page(name="One"))
    settings = make_settings(database_url, job_max_claims=job_max_claims, claim_interval_seconds=0.1)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        jobs = server.services.store.jobs
        jobs.write_batch = _locked_at_every_finish(jobs.write_batch)  # type: ignore[method-assign,assignment]
        yield server, client


async def test_a_job_whose_runs_keep_dying_ends_failed_without_sql(
    database_url: str, fetcher: SafeFetcher, pages: LocalHttpServer
) -> None:
    async with _runs_keep_dying(database_url, fetcher, pages, job_max_claims=3) as (_, client):
        job = await _run(client, [("P-1", pages.url("/p"))])
    assert job["status"] == "failed", job
    assert job["error"] == "gave up after 3 runs with no product finished: database error (OperationalError)"
    assert "UPDATE" not in json.dumps(job)


async def test_cancel_ends_a_job_whose_runs_keep_dying(
    database_url: str, fetcher: SafeFetcher, pages: LocalHttpServer
) -> None:
    async with _runs_keep_dying(database_url, fetcher, pages, job_max_claims=1000) as (server, client):
        jobs = server.services.store.jobs
        created = await client.post(
            f"/api/{COLLECTION}/wip", json={"products": [{"sku": "P-1", "url": pages.url("/p")}]}
        )
        started = await client.post(
            f"/api/{COLLECTION}/wip/process", json={"wip_ids": created.json()["wip_ids"]}
        )
        job_id = started.json()["job_id"]
        async with asyncio.timeout(20):
            while (stored := await jobs.get(job_id)) is None or stored.started_at is None:
                await asyncio.sleep(0.05)
        cancel = await client.post(f"/api/{COLLECTION}/wip/jobs/{job_id}/cancel")
        assert cancel.status_code == 200, cancel.text
        job = await wait_for_job(client, COLLECTION, job_id)
    assert job["status"] == "cancelled", job


async def test_a_product_whose_checkpoint_is_refused_fails_alone(
    database_url: str, fetcher: SafeFetcher, pages: LocalHttpServer
) -> None:
    pages.routes["/p"] = lambda _: Reply(200, [HTML], product_page(name="One"))
    async with LiveServer(make_settings(database_url), fetcher=fetcher) as server, server.client() as client:
        jobs = server.services.store.jobs
        write_batch = jobs.write_batch
        refused: list[int] = []

        async def refuse_one(lease: Lease, writes: Sequence[LedgerWrite]) -> Committed:
            # The batches of several products are refused whole, then written one by one.
            if any(isinstance(w, ItemCheckpoint) and w.wip_id == refused_id for w in writes):
                refused.append(refused_id)
                raise sqlalchemy.exc.DataError(
                    "UPDATE wip_products SET extracted=$1", {}, ValueError("invalid byte sequence")
                )
            return await write_batch(lease, writes)

        jobs.write_batch = refuse_one  # type: ignore[method-assign]
        body = {"products": [{"sku": f"P-{i}", "url": pages.url("/p")} for i in range(3)]}
        ids = (await client.post(f"/api/{COLLECTION}/wip", json=body)).json()["wip_ids"]
        refused_id = ids[1]
        started = await client.post(f"/api/{COLLECTION}/wip/process", json={"wip_ids": ids})
        job = await wait_for_job(client, COLLECTION, started.json()["job_id"])
    results = {r["wip_id"]: r for r in job["results"]}
    assert job["status"] == "completed" and job["successful_products"] == 2, job
    assert results[refused_id]["status"] == "failed"
    assert (
        results[refused_id]["error"] == "could not store the product's progress: database error (ValueError)"
    )
    assert "UPDATE" not in json.dumps(job)
