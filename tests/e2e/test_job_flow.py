"""A whole job through the real HTTP and Socket.IO interfaces: the seed's contract, field by field."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import datetime
from typing import Any

import socketio

from tests.support.live import LiveServer, make_settings, until, wait_for_job
from tests.support.slow import SlowFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop

SEED_JOB_FIELDS = {
    "job_id",
    "collection_name",
    "status",
    "total_products",
    "processed_products",
    "successful_products",
    "failed_products",
    "results",
    "error",
    "created_at",
    "started_at",
    "completed_at",
}
SEED_RESULT_FIELDS = {"wip_id", "sku", "row_num", "success", "extracted_fields", "duration"}
SEED_EVENT_FIELDS = {"job_id", "status", "total", "processed", "successful", "failed", "current_product"}


async def _create_products(client: Any, collection: str, products: list[tuple[str, str]]) -> list[int]:
    response = await client.post(
        f"/api/{collection}/wip", json={"products": [{"sku": s, "url": u} for s, u in products]}
    )
    assert response.status_code == 201, response.text
    ids: list[int] = response.json()["wip_ids"]
    return ids


async def test_job_end_to_end_matches_the_seed_contract(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    received: list[dict[str, Any]] = []
    async with LiveServer(make_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        sio = socketio.AsyncClient()
        sio.on("wip_job_progress", lambda data: received.append(data))
        await sio.connect(server.url, transports=["websocket"])
        try:
            products = shop.products()
            ids = await _create_products(client, "sinks", products)

            response = await client.post("/api/sinks/wip/process", json={"wip_ids": ids})
            assert response.status_code == 202
            body = response.json()
            assert set(body) == {"success", "job_id", "total_products", "message", "status_url"}
            assert body["success"] is True
            uuid.UUID(body["job_id"])
            assert body["total_products"] == len(ids)
            assert body["message"] == (
                f"Background processing started for {len(ids)} products. Use the job_id to track progress."
            )
            assert body["status_url"] == f"/api/sinks/wip/jobs/{body['job_id']}"

            job = await wait_for_job(client, "sinks", body["job_id"])
            status = (await client.get(body["status_url"])).json()
            assert status["success"] is True and status["job"] == job | {"eta_seconds": job["eta_seconds"]}
            assert set(job) >= SEED_JOB_FIELDS
            assert job["job_id"] == body["job_id"] and job["collection_name"] == "sinks"
            assert job["status"] == "completed" and job["error"] is None
            assert job["total_products"] == job["processed_products"] == len(ids)
            assert job["failed_products"] == len(BROKEN_SKUS)
            assert job["successful_products"] == len(ids) - len(BROKEN_SKUS)
            created, started, completed = (
                datetime.fromisoformat(job[k]) for k in ("created_at", "started_at", "completed_at")
            )
            assert created <= started <= completed and created.tzinfo is not None

            assert sorted(r["wip_id"] for r in job["results"]) == sorted(ids)
            for result in job["results"]:
                assert set(result) >= SEED_RESULT_FIELDS
                broken = result["sku"] in BROKEN_SKUS
                assert result["success"] is (not broken)
                assert isinstance(result["row_num"], int) and result["row_num"] >= 2
                assert isinstance(result["duration"], float) and result["duration"] >= 0
                if broken:
                    assert result["status"] == "failed" and result["error_step"] == "extract"
                    assert "no product data" in result["error"]
                else:
                    assert result["status"] == "succeeded" and result["error"] is None
                    assert {"title", "price"} <= set(result["extracted_fields"])
                    assert result["generator"] == "template"

            listing = (await client.get("/api/sinks/wip/jobs", params={"limit": 5})).json()
            assert listing["success"] is True and [j["job_id"] for j in listing["jobs"]] == [body["job_id"]]

            # Every product's own record, and the local sheet, reflect the outcome.
            for wip_id, (sku, _) in zip(ids, products, strict=True):
                product = (await client.get(f"/api/sinks/wip/{wip_id}")).json()["product"]
                assert product["status"] == ("error" if sku in BROKEN_SKUS else "ready")
                if sku not in BROKEN_SKUS:
                    assert product["extracted"]["title"] and product["descriptions"]["body_html"]
                    assert product["row_num"] >= 2
            csv_text = (await client.get("/api/collections/sinks/sheet.csv")).text
            header, *rows = list(csv.reader(io.StringIO(csv_text)))
            assert header[:3] == ["sku", "url", "title"] and header[-1] == "status"
            assert sorted(row[0] for row in rows) == sorted(s for s, _ in products)
            for row in rows:
                assert row[-1] == ("" if row[0] in BROKEN_SKUS else "ready")

            # Events: started, one processing per product, completed; in seq order, gapless.
            await until(lambda: any(e["status"] == "completed" for e in received))
            mine = [e for e in received if e["job_id"] == body["job_id"]]
            assert [e["seq"] for e in mine] == list(range(1, len(ids) + 3))
            assert [e["status"] for e in mine] == ["started"] + ["processing"] * len(ids) + ["completed"]
            for event in mine:
                assert set(event) >= SEED_EVENT_FIELDS
                assert event["collection_name"] == "sinks" and event["total"] == len(ids)
                assert "eta_seconds" in event
            processing = [e for e in mine if e["status"] == "processing"]
            assert [e["processed"] for e in processing] == list(range(1, len(ids) + 1))
            for event in processing:
                product = event["current_product"]
                assert set(product) >= {"wip_id", "sku", "success", "row_num"}
                assert product["success"] is (product["sku"] not in BROKEN_SKUS)
                if not product["success"]:  # the step it failed at, as the job's results say
                    assert product["error_step"] == "extract" and "no product data" in product["error"]
                assert event["eta_seconds"] is not None
            assert mine[0]["current_product"] is None and mine[0]["eta_seconds"] is None
            final = mine[-1]
            assert (final["processed"], final["successful"], final["failed"]) == (
                len(ids),
                len(ids) - len(BROKEN_SKUS),
                len(BROKEN_SKUS),
            )

            # A late subscriber catches up from any point, in order.
            late: list[dict[str, Any]] = []
            other = socketio.AsyncClient()
            other.on("wip_job_progress", lambda data: late.append(data))
            await other.connect(server.url, transports=["websocket"])
            try:
                ack = await other.call("subscribe", {"job_id": body["job_id"], "after_seq": 3})
                assert ack == {"ok": True, "replayed": len(mine) - 3, "last_seq": len(mine), "more": False}
                await until(lambda: len(late) == len(mine) - 3)
                assert late == mine[3:]
            finally:
                await other.disconnect()
        finally:
            await sio.disconnect()


async def test_job_status_reports_an_eta_that_falls_as_products_finish(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    products = [(sku, url) for sku, url in shop.products() if sku not in BROKEN_SKUS]
    settings = make_settings(sqlite_url, workers_per_job=1)
    async with (
        LiveServer(settings, fetcher=SlowFetcher(fetcher, 0.2)) as server,
        server.client() as client,
    ):
        ids = await _create_products(client, "sinks", products)
        job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()["job_id"]
        seen: list[tuple[int, float | None]] = []  # (processed, eta_seconds) per poll
        async with asyncio.timeout(30):
            while True:
                job = (await client.get(f"/api/sinks/wip/jobs/{job_id}")).json()["job"]
                if job["status"] == "completed":
                    break
                seen.append((job["processed_products"], job["eta_seconds"]))
                await asyncio.sleep(0.05)
    assert all(eta is None for processed, eta in seen if processed == 0)
    estimates = {processed: eta for processed, eta in seen if processed > 0}
    assert len(estimates) >= 3 and all(eta is not None for eta in estimates.values())
    # One product at a time at a steady pace: what remains shrinks with every product done.
    first, last = min(estimates), max(estimates)
    assert estimates[last] < estimates[first]  # type: ignore[operator]
    assert job["eta_seconds"] == 0.0
