"""Automatic re-runs through the real HTTP API: products that failed on a transient cause (a
shop outage longer than the step's retries) are re-run once as a new job linked by
`retry_of`; products that failed for good (a 404) are not; a collection may turn it off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.live import LiveServer, make_settings, start_job, wait_for_job
from tests.support.netguard import PRODUCT_HTML, LocalHttpServer, ReceivedRequest, Reply
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.jobs.reruns import rerun_job_id


class OutageShop(LocalHttpServer):
    """`/flaky` answers 503 while ``down``, then the product; `/gone` is a 404."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.routes["/flaky"] = self._flaky
        self.routes["/gone"] = lambda _: Reply(404, [], b"gone")

    def _flaky(self, _: ReceivedRequest) -> Reply:
        if self.down:
            return Reply(503, [], b"down for maintenance")
        return Reply(200, [("Content-Type", "text/html")], PRODUCT_HTML.encode())


async def _run_first_job(
    client: Any, shop: OutageShop, collection: str
) -> tuple[dict[str, Any], dict[str, int]]:
    products = [("FLAKY-1", shop.url("/flaky")), ("GONE-1", shop.url("/gone"))]
    started = await start_job(client, collection, products)
    ids = dict(zip(["FLAKY-1", "GONE-1"], started.wip_ids, strict=True))
    job = await wait_for_job(client, collection, started.job_id)
    return job, ids


async def test_a_transient_failure_is_rerun_once_and_a_404_is_not(
    database_url: str, fetcher: SafeFetcher
) -> None:
    # The re-run is made due by the test (an hour after the job ended), not by waiting.
    settings = make_settings(database_url, step_max_attempts=2, auto_rerun_delay_seconds=3600)
    with OutageShop() as shop:
        async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
            first, ids = await _run_first_job(client, shop, "outage")
            assert first["status"] == "completed" and first["failed_products"] == 2
            errors = {r["sku"]: r["error"] for r in first["results"]}
            assert "HTTP 503" in errors["FLAKY-1"] and "HTTP 404" in errors["GONE-1"]

            rerun_id = rerun_job_id(first["job_id"])
            reruns = server.services.reruns
            assert reruns is not None
            assert await reruns.run_due(datetime.now(UTC)) == []  # not due yet
            shop.down = False  # the outage ends
            assert await reruns.run_due(datetime.now(UTC) + timedelta(hours=2)) == [rerun_id]
            rerun = await wait_for_job(client, "outage", rerun_id)
            assert rerun["retry_of"] == first["job_id"]
            assert rerun["total_products"] == 1 and rerun["successful_products"] == 1
            assert [r["wip_id"] for r in rerun["results"]] == [ids["FLAKY-1"]]
            products = {p["sku"]: p for p in (await client.get("/api/outage/wip")).json()["products"]}
            assert products["FLAKY-1"]["status"] == "ready" and products["GONE-1"]["status"] == "error"
            # Once only: the re-run is not re-run, and the first job's marker is settled.
            assert await server.services.store.reruns.due(datetime.now(UTC) + timedelta(days=1)) == []
            assert await reruns.run_due(datetime.now(UTC) + timedelta(hours=4)) == []
            jobs = (await client.get("/api/outage/wip/jobs")).json()["jobs"]
            assert len(jobs) == 2


async def test_a_collection_may_turn_automatic_reruns_off(sqlite_url: str, fetcher: SafeFetcher) -> None:
    settings = make_settings(sqlite_url, step_max_attempts=2, auto_rerun_delay_seconds=3600)
    with OutageShop() as shop:
        async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
            put = await client.put("/api/collections/manual", json={"auto_rerun": False})
            assert put.status_code == 200, put.text
            first, _ = await _run_first_job(client, shop, "manual")
            assert first["failed_products"] == 2
            shop.down = False
            reruns = server.services.reruns
            assert reruns is not None
            assert await reruns.run_due(datetime.now(UTC) + timedelta(hours=2)) == []
            # Settled without a re-run: the decision is final.
            assert await server.services.store.reruns.due(datetime.now(UTC) + timedelta(days=1)) == []
            jobs = (await client.get("/api/manual/wip/jobs")).json()["jobs"]
            assert [job["job_id"] for job in jobs] == [first["job_id"]]
