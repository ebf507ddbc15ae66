"""Job priority through the real HTTP API: an urgent job overtakes a running normal job's queue
and its quota (on SQLite and PostgreSQL), a queued job's priority changes with PATCH, and a low
job does not starve under a stream of urgent ones (shortened ageing)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import job_id_in, wipsvc
from tests.support.cloud import COLLECTION, FakeCloud, configure
from tests.support.live import LiveServer, make_settings, until, until_processed, wait_for_job
from tests.support.slow import GatedFetcher, SlowFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop

LLM_PER_PERIOD = 5  # LLM requests per quota period (0.5 s): the pace of both jobs
NORMAL_PRODUCTS = 30  # with as many workers: 30 calls wait at the LLM's bucket at a time
URGENT_PRODUCTS = 3


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[FakeCloud]:
    # Google's side far above the service's own limits: only the LLM's bucket sets the pace.
    fakes = FakeCloud(tmp_path, read_quota=1_000_000, write_quota=1_000_000)
    try:
        yield fakes
    finally:
        fakes.close()


def pages(shop: SampleShop) -> list[str]:
    return [url for sku, url in shop.products() if sku not in BROKEN_SKUS]


async def create(client: httpx.AsyncClient, collection: str, skus: list[str], urls: list[str]) -> list[int]:
    body = {"products": [{"sku": sku, "url": urls[n % len(urls)]} for n, sku in enumerate(skus)]}
    created = await client.post(f"/api/{collection}/wip", json=body)
    assert created.status_code == 201, created.text
    ids: list[int] = created.json()["wip_ids"]
    return ids


async def start(
    client: httpx.AsyncClient, collection: str, ids: list[int], priority: str | None = None
) -> str:
    body: dict[str, Any] = {"wip_ids": ids}
    if priority is not None:
        body["priority"] = priority
    started = await client.post(f"/api/{collection}/wip/process", json=body)
    assert started.status_code == 202, started.text
    return str(started.json()["job_id"])


async def job(client: httpx.AsyncClient, collection: str, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/{collection}/wip/jobs/{job_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["job"]
    return found


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_an_urgent_job_overtakes_a_running_normal_jobs_queue_and_quota(
    database_url: str, shop: SampleShop, fetcher: SafeFetcher, cloud: FakeCloud
) -> None:
    settings = cloud.settings(
        database_url,
        workers_per_job=NORMAL_PRODUCTS,
        jobs_per_collection=1,
        quota_period_seconds=0.5,
        llm_requests_per_minute=LLM_PER_PERIOD,
    )
    urls = pages(shop)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        await configure(client, cloud)
        normal_ids = await create(client, COLLECTION, [f"NORM-{n:02}" for n in range(NORMAL_PRODUCTS)], urls)
        later_ids = await create(client, COLLECTION, ["LATER-1"], urls)
        urgent_ids = await create(client, COLLECTION, [f"URG-{n}" for n in range(URGENT_PRODUCTS)], urls)
        normal = await start(client, COLLECTION, normal_ids)  # the seed's request: no priority
        await until_processed(client, COLLECTION, normal, 2)
        later = await start(client, COLLECTION, later_ids, "normal")  # queued: the cap is 1
        urgent = await start(client, COLLECTION, urgent_ids, "urgent")
        assert (await job(client, COLLECTION, normal))["priority"] == "normal"
        finished = {
            name: await wait_for_job(client, COLLECTION, job_id, timeout=90)
            for name, job_id in (("urgent", urgent), ("normal", normal), ("later", later))
        }

    assert all(j["status"] == "completed" and j["failed_products"] == 0 for j in finished.values())
    assert finished["urgent"]["priority"] == "urgent"
    # The queue: the urgent job ran beside the normal one (one beyond the cap of 1) and before
    # the normal job queued ahead of it, which waited for the cap as before.
    assert at(finished["urgent"]["started_at"]) < at(finished["normal"]["completed_at"])
    assert at(finished["urgent"]["completed_at"]) < at(finished["normal"]["completed_at"])
    assert at(finished["urgent"]["started_at"]) < at(finished["later"]["started_at"])
    assert at(finished["later"]["started_at"]) >= at(finished["normal"]["completed_at"])
    # The quota: once the urgent job's calls waited at the LLM's bucket, they took its next
    # tokens. In first-come order they would have queued behind the ~30 calls of the normal job
    # waiting there; by priority, only calls admitted before them or in a gap between them
    # (two periods' tokens at most) reach the LLM between the urgent job's first and last call.
    owners = [
        "urgent" if "SKU: URG-" in r.user_text else "normal"
        for r in cloud.llm.requests
        if "SKU: URG-" in r.user_text or "SKU: NORM-" in r.user_text
    ]
    first, last = owners.index("urgent"), len(owners) - 1 - owners[::-1].index("urgent")
    assert owners.count("urgent") >= URGENT_PRODUCTS
    assert owners[first : last + 1].count("normal") <= 2 * LLM_PER_PERIOD
    assert owners[last + 1 :].count("normal") >= 2 * LLM_PER_PERIOD  # it overtook, not trailed


async def test_a_queued_jobs_priority_changes_and_a_running_ones_does_not(
    database_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    gated = GatedFetcher(fetcher)
    settings = make_settings(database_url, jobs_per_collection=1)
    urls = pages(shop)
    async with LiveServer(settings, fetcher=gated) as server, server.client() as client:
        first_ids = await create(client, "taps", ["TAP-1"], urls)
        second_ids = await create(client, "taps", ["TAP-2"], urls)
        first = await start(client, "taps", first_ids)
        await until(lambda: gated.waiting >= 1)  # running, held at its page
        second = await start(client, "taps", second_ids, "low")
        await asyncio.sleep(3 * settings.claim_interval_seconds)
        assert (await job(client, "taps", second))["status"] == "queued"  # the cap holds it

        changed = await client.patch(f"/api/taps/wip/jobs/{second}", json={"priority": "urgent"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["job"]["priority"] == "urgent"
        # Urgent now, it runs beside the normal job (one beyond the cap) without waiting for it.
        await until(lambda: gated.waiting >= 2)
        assert (await job(client, "taps", second))["status"] == "running"

        refused = await client.patch(f"/api/taps/wip/jobs/{first}", json={"priority": "urgent"})
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "conflict"
        assert "only while queued" in refused.json()["error"]["message"]
        for body in ({"priority": "asap"}, {}, {"priority": "urgent", "status": "queued"}):
            invalid = await client.patch(f"/api/taps/wip/jobs/{second}", json=body)
            assert invalid.status_code == 422, invalid.text
        missing = await client.patch("/api/taps/wip/jobs/no-such-job", json={"priority": "low"})
        assert missing.status_code == 404, missing.text
        bad_start = await client.post("/api/taps/wip/process", json={"wip_ids": first_ids, "priority": 1})
        assert bad_start.status_code == 422, bad_start.text

        gated.gate.set()
        for job_id in (first, second):
            assert (await wait_for_job(client, "taps", job_id))["status"] == "completed"
        ended = await client.patch(f"/api/taps/wip/jobs/{second}", json={"priority": "low"})
        assert ended.status_code == 409, ended.text
        listed = (await client.get("/api/taps/wip/jobs")).json()["jobs"]
        assert {j["job_id"]: j["priority"] for j in listed} == {first: "normal", second: "urgent"}


@pytest.mark.slow
async def test_a_low_job_does_not_starve_under_a_stream_of_urgent_jobs(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    """Urgent jobs keep arriving, so that some are always queued; the low job, aged to urgent
    after 2 x 1 s, goes before the urgent jobs that came after it. Bounded: at most 40 jobs."""
    settings = make_settings(
        sqlite_url, jobs_per_collection=1, priority_ageing_seconds=1.0, job_starts_per_minute=1000
    )
    slow = SlowFetcher(fetcher, delay=0.3)
    urls = pages(shop)
    async with LiveServer(settings, fetcher=slow) as server, server.client() as client:
        ids = await create(client, "taps", [f"TAP-{n:02}" for n in range(41)], urls)
        urgent: list[str] = [await start(client, "taps", [ids[0]], "urgent")]
        low = await start(client, "taps", [ids[1]], "low")
        async with asyncio.timeout(60):
            for wip_id in ids[2:]:
                if (await job(client, "taps", low))["status"] != "queued":
                    break
                params: dict[str, str | int] = {"status": "queued", "limit": 100}
                while len((await client.get("/api/taps/wip/jobs", params=params)).json()["jobs"]) > 4:
                    await asyncio.sleep(0.05)  # keep a few urgent ones waiting, no more
                urgent.append(await start(client, "taps", [wip_id], "urgent"))
        low_job = await wait_for_job(client, "taps", low, timeout=60)
        urgent_jobs = [await wait_for_job(client, "taps", job_id, timeout=60) for job_id in urgent]

    assert low_job["status"] == "completed"
    low_started = at(low_job["started_at"])
    # It overtook urgent jobs: some that were queued before it started ran after it.
    overtaken = [j for j in urgent_jobs if at(j["created_at"]) < low_started < at(j["started_at"])]
    assert overtaken, "the low job only ran once the urgent stream had ended"
    assert len(urgent) < 40  # it started while the stream was still going


async def test_the_cli_starts_a_job_with_a_priority_and_changes_it(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    gated = GatedFetcher(fetcher)
    settings = make_settings(sqlite_url, jobs_per_collection=1)
    async with LiveServer(settings, fetcher=gated) as server, server.client() as client:
        first_ids = await create(client, "taps", ["TAP-1"], pages(shop))
        second_ids = await create(client, "taps", ["TAP-2"], pages(shop))
        first = await start(client, "taps", first_ids)
        await until(lambda: gated.waiting >= 1)

        run = await wipsvc("jobs", "start", "taps", str(second_ids[0]), "--priority", "low", url=server.url)
        assert run.code == 0, run.err
        second = job_id_in(run.out)
        assert (await job(client, "taps", second))["priority"] == "low"
        run = await wipsvc("jobs", "start", "taps", str(second_ids[0]), "--priority", "soon", url=server.url)
        assert run.code == 2 and "soon" in run.err

        run = await wipsvc("jobs", "priority", "taps", second, "urgent", url=server.url)
        assert run.code == 0 and f"Job {second} is queued, priority urgent." in run.out, run.out + run.err
        await until(lambda: gated.waiting >= 2)  # urgent: it runs beside the normal job
        run = await wipsvc("jobs", "show", "taps", second, url=server.url)
        assert run.code == 0 and "priority urgent" in run.out
        run = await wipsvc("jobs", "priority", "taps", first, "urgent", "--json", url=server.url)
        assert run.code == 3 and json.loads(run.out)["error"]["code"] == "conflict"
        gated.gate.set()
        for job_id in (first, second):
            assert (await wait_for_job(client, "taps", job_id))["status"] == "completed"
