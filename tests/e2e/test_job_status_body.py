"""The job status route writes stored results out as they are when they have the response's exact
shape, and through the response model otherwise (a row an older version wrote)."""

from __future__ import annotations

import json

from tests.support.live import LiveServer, make_settings, wait_for_job
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.api.schemas import ProductResult
from wipsvc.demo.shop import SampleShop
from wipsvc.store.tables import wip_jobs


async def test_stored_results_come_out_as_the_response_model_would_write_them(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    async with LiveServer(make_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        products = [{"sku": sku, "url": url} for sku, url in shop.products()[:2]]
        ids = (await client.post("/api/sinks/wip", json={"products": products})).json()["wip_ids"]
        started = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()
        job = await wait_for_job(client, "sinks", started["job_id"])
        first, second = job["results"]
        assert first == ProductResult.model_validate(first).model_dump(mode="json")
        # An older row: a field since added is missing, one since dropped is still there.
        legacy = {key: value for key, value in second.items() if key != "step"} | {"old_field": 1}
        async with server.services.store.db.write() as conn:
            await conn.execute(
                wip_jobs.update()
                .where(wip_jobs.c.job_id == job["job_id"])
                .values(results=json.dumps([first, legacy]))
            )
        answer = await client.get(started["status_url"])
    assert answer.headers["content-type"] == "application/json"
    again = answer.json()["job"]["results"]
    assert again[0] == first
    assert again[1] == {**second, "step": None}
