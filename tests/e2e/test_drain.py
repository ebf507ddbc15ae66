"""Draining an instance in-process: what happens when a step outlasts the grace period.

(The whole SIGTERM path, through a real server process, is in test_graceful_shutdown.py.)
"""

from __future__ import annotations

import asyncio
import csv
import io

from tests.support.live import LiveServer, make_settings, wait_for_job
from tests.support.slow import SlowFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import SampleShop
from wipsvc.jobs.models import ItemStatus, JobStatus


async def test_a_step_outlasting_the_grace_period_is_cut_off_and_the_job_still_handed_back(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    products = shop.products()[:4]
    settings = make_settings(sqlite_url, workers_per_job=2, shutdown_grace_seconds=0.3)
    async with (
        LiveServer(settings, fetcher=SlowFetcher(fetcher, 600)) as server,  # pages that never come
        server.client() as client,
    ):
        created = await client.post(
            "/api/sinks/wip", json={"products": [{"sku": s, "url": u} for s, u in products]}
        )
        started = await client.post("/api/sinks/wip/process", json={"wip_ids": created.json()["wip_ids"]})
        job_id = started.json()["job_id"]
        jobs = server.services.store.jobs
        async with asyncio.timeout(10):
            while [i.status for i in await jobs.items(job_id)].count(ItemStatus.RUNNING) < 2:
                await asyncio.sleep(0.02)
        assert (await client.get("/readyz")).status_code == 200

        async with server.services.bus.stream() as events:
            async with asyncio.timeout(10):  # the grace period, not the pages' ten minutes
                await server.services.drain()
            paused = events.get_nowait()
        assert events.empty()
        assert paused.job_id == job_id and paused.payload["phase"] == "paused"
        assert paused.payload["status"] == "processing" and paused.payload["eta_seconds"] is None

        # No longer ready, no longer claiming; the job is nobody's and waits, running.
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "shutting down" in ready.json()["error"]["message"]
        assert server.services.registry.running_job_ids == []
        job = await jobs.get(job_id)
        assert job is not None and job.status is JobStatus.RUNNING and job.owner is None
        view = (await client.get(f"/api/sinks/wip/jobs/{job_id}")).json()["job"]
        assert view["status"] == "running" and view["eta_seconds"] is None
        # The two products were cut off in their page fetch, after their sheet row was saved.
        items = await jobs.items(job_id)
        cut = [i for i in items if i.status is ItemStatus.RUNNING]
        assert len(cut) == 2 and all(i.row_num is not None for i in cut)
        assert [i.status for i in items].count(ItemStatus.PENDING) == 2

    # A new instance with pages that answer resumes the job and finishes it.
    async with LiveServer(settings, fetcher=fetcher) as second, second.client() as client:
        job_view = await wait_for_job(client, "sinks", job_id)
        assert job_view["status"] == "completed" and job_view["processed_products"] == len(products)
        sheet = (await client.get("/api/collections/sinks/sheet.csv")).text
        rows = list(csv.reader(io.StringIO(sheet)))[1:]
        assert sorted(row[0] for row in rows) == sorted(s for s, _ in products)  # one row each
