"""A poll of a job running on this instance is answered from what its runner committed, without
reading the database, and says exactly what the database says."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.live import LiveServer, make_settings, start_job, until_processed, wait_for_job
from tests.support.slow import GatedFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop
from wipsvc.jobs.registry import JobRegistry
from wipsvc.services import Services


def _without_eta(body: dict[str, Any]) -> dict[str, Any]:
    # Decayed by the time of each answer: two answers a moment apart may differ by 0.1 s.
    return {**body, "job": {k: v for k, v in body["job"].items() if k != "eta_seconds"}}


async def _from_the_database(client: httpx.AsyncClient, services: Services, url: str) -> dict[str, Any]:
    """The same poll, with this instance's runners out of the picture."""
    registry = services.registry
    registry.live_status = lambda _: None  # type: ignore[method-assign,assignment]
    try:
        response = await client.get(url)
    finally:
        del registry.live_status  # the class's method again
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _polled_without_reading_the_job(services: Services, client: httpx.AsyncClient, url: str) -> Any:
    reads: list[str] = []
    jobs = services.store.jobs
    real_get, real_results = jobs.get, jobs.results_json

    async def get(job_id: str) -> Any:
        reads.append("job")
        return await real_get(job_id)

    async def results_json(job: Any) -> str:
        reads.append("results")
        return await real_results(job)

    jobs.get, jobs.results_json = get, results_json  # type: ignore[method-assign]
    try:
        response = await client.get(url)
    finally:
        del jobs.get, jobs.results_json
    assert response.status_code == 200, response.text
    assert reads == []
    return response.json()


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_a_running_jobs_poll_is_answered_from_its_runner_as_the_database_would(
    database_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    products = [p for p in shop.products() if p[0] not in BROKEN_SKUS][:6]
    held = {url for _, url in products[3:]}
    holding = GatedFetcher(fetcher, held)
    settings = make_settings(database_url, workers_per_job=None)
    async with LiveServer(settings, fetcher=holding) as server, server.client() as client:
        for collection in ("sinks", "taps"):
            (await client.put(f"/api/collections/{collection}", json={})).raise_for_status()
        job_id, ids = await start_job(client, "sinks", products)
        url = f"/api/sinks/wip/jobs/{job_id}"
        await until_processed(client, "sinks", job_id, 3)
        services = server.services
        assert isinstance(services.registry, JobRegistry) and job_id in services.registry.running_job_ids

        live = await _polled_without_reading_the_job(services, client, url)
        job = live["job"]
        assert (job["status"], job["processed_products"], job["cancel_requested"]) == ("running", 3, False)
        assert [r["wip_id"] for r in job["results"]] == ids[:3]  # in the job's order
        assert _without_eta(live) == _without_eta(await _from_the_database(client, services, url))

        # Another collection's job answers like a missing one, as from the database.
        assert (await client.get(f"/api/taps/wip/jobs/{job_id}")).status_code == 404

        # A cancel through this instance shows in the next poll, still from the runner.
        assert (await client.post(f"{url}/cancel")).status_code == 200
        cancelling = await _polled_without_reading_the_job(services, client, url)
        assert cancelling["job"]["cancel_requested"] is True
        assert _without_eta(cancelling) == _without_eta(await _from_the_database(client, services, url))

        holding.gate.set()
        ended = await wait_for_job(client, "sinks", job_id)
        assert ended["status"] == "cancelled" and ended["processed_products"] == 6
        assert job_id not in services.registry.running_job_ids
        final = (await client.get(url)).json()
        assert final == await _from_the_database(client, services, url)
        assert [r["wip_id"] for r in final["job"]["results"]] == ids
