"""Stopping the service mid-job and resuming it; cancelling queued and running jobs."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from tests.support.live import LiveServer, make_settings, start_job, until_processed, wait_for_job
from tests.support.slow import SlowFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop


async def _job(client: httpx.AsyncClient, collection: str, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/{collection}/wip/jobs/{job_id}")
    job: dict[str, Any] = response.json()["job"]
    return job


async def test_a_job_stopped_midway_resumes_on_a_new_instance(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    products = shop.products()
    settings = make_settings(sqlite_url, workers_per_job=2)
    async with LiveServer(settings, fetcher=SlowFetcher(fetcher, 0.25)) as first, first.client() as client:
        job_id = (await start_job(client, "sinks", products)).job_id
        await until_processed(client, "sinks", job_id, 2)
    # The first instance is gone, products in flight included.
    async with LiveServer(settings, fetcher=fetcher) as second, second.client() as client:
        job = await wait_for_job(client, "sinks", job_id)
        assert job["status"] == "completed"
        assert job["processed_products"] == job["total_products"] == len(products)
        assert job["failed_products"] == len(BROKEN_SKUS)
        assert job["successful_products"] == len(products) - len(BROKEN_SKUS)
        # Every product ended exactly once, in the ledger and in the results.
        assert sorted(r["sku"] for r in job["results"]) == sorted(s for s, _ in products)
        items = await second.services.store.jobs.items(job_id)
        assert [i.status.value for i in items].count("succeeded") == len(products) - len(BROKEN_SKUS)
        assert all(i.status.value in ("succeeded", "failed") for i in items)
        assert any(i.attempts > 1 for i in items), "some product should have been resumed"
        # The sheet holds each SKU once.
        rows = list(csv.reader(io.StringIO((await client.get("/api/collections/sinks/sheet.csv")).text)))[1:]
        assert sorted(row[0] for row in rows) == sorted(s for s, _ in products)
        # One gapless event stream across both instances: one start, one event per product, one end,
        # and the hand-over between them: the first instance paused the job, the second resumed it.
        events = await second.services.store.jobs.events_after(job_id, 0)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.payload["phase"] for e in events if "phase" in e.payload] == ["paused", "resumed"]
        statuses = [e.payload["status"] for e in events if "phase" not in e.payload]
        assert statuses == ["started"] + ["processing"] * len(products) + ["completed"]


async def test_cancel_a_queued_job_ends_it_at_once(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    products = shop.products()
    settings = make_settings(sqlite_url, workers_per_job=1)
    async with LiveServer(settings, fetcher=SlowFetcher(fetcher, 0.2)) as server, server.client() as client:
        running = (await start_job(client, "sinks", products[:3])).job_id
        queued = (await start_job(client, "sinks", products[3:6])).job_id
        assert (await _job(client, "sinks", queued))["status"] == "queued"  # one job per collection runs

        response = await client.post(f"/api/sinks/wip/jobs/{queued}/cancel")
        assert response.status_code == 200
        body = response.json()
        assert body["success"] is True and body["job"]["status"] == "cancelled"
        assert body["job"]["processed_products"] == 0
        assert [r["status"] for r in body["job"]["results"]] == ["skipped"] * 3
        assert all(r["success"] is False for r in body["job"]["results"])
        # Its products are free again, and the running job is untouched.
        assert (await client.post("/api/sinks/wip/process", json={"wip_ids": [4]})).status_code == 202
        assert (await wait_for_job(client, "sinks", running))["status"] == "completed"
        again = await client.post(f"/api/sinks/wip/jobs/{queued}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


async def test_cancel_a_running_job_lets_products_in_flight_finish(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    products = shop.products()
    settings = make_settings(sqlite_url, workers_per_job=2)
    slow = SlowFetcher(fetcher, 0.3)
    async with LiveServer(settings, fetcher=slow) as server, server.client() as client:
        job_id = (await start_job(client, "sinks", products)).job_id
        await until_processed(client, "sinks", job_id, 1)
        response = await client.post(f"/api/sinks/wip/jobs/{job_id}/cancel")
        assert response.status_code == 200
        assert response.json()["job"]["cancel_requested"] is True
        job = await wait_for_job(client, "sinks", job_id)

        assert job["status"] == "cancelled"
        processed = [r for r in job["results"] if r["status"] in ("succeeded", "failed")]
        skipped = [r for r in job["results"] if r["status"] == "skipped"]
        assert len(processed) == job["processed_products"] and 1 <= len(processed) < len(products)
        assert len(processed) + len(skipped) == len(products)
        assert slow.fetches == len(processed), "no product was started after the cancel, none left unfinished"
        # Skipped products are back to pending and may be submitted again.
        for result in skipped:
            product = (await client.get(f"/api/sinks/wip/{result['wip_id']}")).json()["product"]
            assert product["status"] == "pending" and product["active_job_id"] is None
        events = await server.services.store.jobs.events_after(job_id, 0)
        assert events[-1].payload["status"] == "cancelled"
