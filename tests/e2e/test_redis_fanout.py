"""Two instances behind one Redis: a Socket.IO client of one receives the events of a job that the
other runs (python-socketio's AsyncRedisManager, the `redis` extra)."""

from __future__ import annotations

import uuid
from typing import Any

import socketio

from tests.support.live import LiveServer, make_settings, until, wait_for_job
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import DEMO_PAGES, SampleShop


async def test_a_client_of_one_instance_sees_a_job_run_by_another(
    redis_url: str, sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    # Other test runs may share this Redis: a collection and a job of our own tell our events apart.
    collection = f"fanout-{uuid.uuid4().hex[:8]}"
    runner = make_settings(sqlite_url, redis_url=redis_url, instance_id="runner")
    # The listener never claims a job by itself: its claim timer would first fire in an hour.
    listener = make_settings(
        sqlite_url, redis_url=redis_url, instance_id="listener", claim_interval_seconds=3600
    )
    received: list[dict[str, Any]] = []
    async with (
        LiveServer(runner, fetcher=fetcher) as running,
        LiveServer(listener) as listening,
        running.client() as client,
    ):
        sio = socketio.AsyncClient()
        sio.on("wip_job_progress", lambda data: received.append(data))
        await sio.connect(listening.url, transports=["websocket"])
        try:
            pages = [page for page in DEMO_PAGES if page.markup != "none"][:2]
            products = [{"sku": page.sku, "url": shop.url_for(page)} for page in pages]
            created = await client.post(f"/api/{collection}/wip", json={"products": products})
            assert created.status_code == 201, created.text
            started = await client.post(
                f"/api/{collection}/wip/process", json={"wip_ids": created.json()["wip_ids"]}
            )
            assert started.status_code == 202, started.text
            job_id = started.json()["job_id"]
            job = await wait_for_job(client, collection, job_id)
            assert job["status"] == "completed" and job["successful_products"] == 2

            def ours() -> list[dict[str, Any]]:
                return [event for event in received if event["job_id"] == job_id]

            await until(lambda: any(event["status"] == "completed" for event in ours()))
        finally:
            await sio.disconnect()
    statuses = [event["status"] for event in ours()]
    assert statuses[0] == "started" and statuses[-1] == "completed"
    assert [event["seq"] for event in ours()] == list(range(1, len(statuses) + 1))
