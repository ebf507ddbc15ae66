"""`GET /api/stats`: throughput per minute, running and queued jobs, quotas."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.live import LiveServer, make_settings, wait_for_job
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.client.api import ApiClient
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop
from wipsvc.store import Store
from wipsvc.store.stats_repo import StatsRepository

WINDOW = 15


async def _stats(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/stats")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_empty_service_reports_zeroes(sqlite_url: str) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        stats = await _stats(client)
    assert stats["products_finished_last_15m"] == [0] * WINDOW
    assert stats["products_failed_last_15m"] == [0] * WINDOW
    assert (stats["running_jobs"], stats["queued_jobs"]) == (0, 0)
    quotas = stats["quotas"]
    assert {"sheets_write", "sheets_read", "apps_script", "llm_requests"} <= set(quotas)
    assert quotas["sheets_write"]["limit"] == 60 and quotas["sheets_write"]["throttled"] == 0
    generated = datetime.fromisoformat(stats["generated_at"])
    start = datetime.fromisoformat(stats["window_start"])
    assert start.second == 0 and timedelta(minutes=14) <= generated - start < timedelta(minutes=15)


async def test_finished_products_land_in_the_current_minute(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    async with LiveServer(make_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        ids = await ApiClient.over(client).create_products("sinks", shop.products())
        job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()["job_id"]
        await wait_for_job(client, "sinks", job_id)
        stats = await _stats(client)
    finished, failed = stats["products_finished_last_15m"], stats["products_failed_last_15m"]
    assert sum(finished) == len(ids) and sum(failed) == len(BROKEN_SKUS)
    # The job ran just now: in this minute, or the one before if a minute boundary fell in between.
    assert finished[-1] + finished[-2] == len(ids) and finished[:-2] == [0] * (WINDOW - 2)
    assert (stats["running_jobs"], stats["queued_jobs"]) == (0, 0)


async def test_running_and_queued_jobs_are_counted(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    # One job per collection at a time, and slow products: the second job waits in the queue.
    settings = make_settings(sqlite_url, product_delay_seconds=0.5, workers_per_job=1, jobs_per_collection=1)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        products = shop.products()
        first = await ApiClient.over(client).create_products("sinks", products[:4])
        second = await ApiClient.over(client).create_products("sinks", products[4:6])
        running = (await client.post("/api/sinks/wip/process", json={"wip_ids": first})).json()["job_id"]
        queued = (await client.post("/api/sinks/wip/process", json={"wip_ids": second})).json()["job_id"]
        async with asyncio.timeout(10):
            while (stats := await _stats(client))["running_jobs"] != 1:
                await asyncio.sleep(0.05)
        assert stats["queued_jobs"] == 1
        await client.post(f"/api/sinks/wip/jobs/{queued}/cancel")
        await client.post(f"/api/sinks/wip/jobs/{running}/cancel")
        await wait_for_job(client, "sinks", running)
        stats = await _stats(client)
        assert (stats["running_jobs"], stats["queued_jobs"]) == (0, 0)


async def test_minutes_are_bucketed_oldest_first(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    """Read through the repository with a clock moved forward: past products shift left,
    and products older than the window drop out."""
    async with LiveServer(make_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        ids = await ApiClient.over(client).create_products("sinks", shop.products()[:3])
        job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()["job_id"]
        await wait_for_job(client, "sinks", job_id)
    store = await Store.open(sqlite_url)
    try:
        repo = StatsRepository(store.db)
        now = datetime.now(UTC)
        current = await repo.throughput(WINDOW, now=now)
        later = await repo.throughput(WINDOW, now=now + timedelta(minutes=5))
        much_later = await repo.throughput(WINDOW, now=now + timedelta(minutes=WINDOW))
        earlier = await repo.throughput(WINDOW, now=now - timedelta(minutes=30))
    finally:
        await store.close()
    assert sum(current.finished) == 3
    assert later.finished[:-5] == current.finished[5:] and later.finished[-5:] == [0] * 5
    assert much_later.finished == [0] * WINDOW
    assert earlier.finished == [0] * WINDOW  # products finished after `now` are not counted


async def test_stats_is_documented_with_an_example(sqlite_url: str) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/api/stats"]["get"]
    assert operation["tags"] == ["health"]
    model = schema["components"]["schemas"]["StatsResponse"]
    example = model["examples"][0]
    assert len(example["products_finished_last_15m"]) == WINDOW
    assert {"products_finished_last_15m", "running_jobs", "queued_jobs"} <= set(model["required"])
    assert model["properties"]["quotas"]["type"] == "object"
