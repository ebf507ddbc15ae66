"""Several instances on one PostgreSQL: each runs its own jobs, and together they keep to the quotas."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.live import LiveServer, make_settings, start_job, until, wait_for_job
from tests.support.slow import SlowFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.config import Settings
from wipsvc.demo.shop import SampleShop

pytestmark = pytest.mark.postgres


async def test_instances_running_jobs_share_the_quotas(
    postgres_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    def settings(instance: str) -> Settings:
        # One job per instance, so that the second job goes to the other instance.
        return make_settings(
            postgres_url,
            instance_id=instance,
            max_running_jobs=1,
            workers_per_job=1,
            sheets_write_per_minute=60,
        )

    slow = SlowFetcher(fetcher, 0.3)  # a job of 9 products lasts about 3 s
    async with (
        LiveServer(settings("a"), fetcher=slow) as a,
        LiveServer(settings("b"), fetcher=slow) as b,
        a.client() as client,
    ):
        writes = [server.services.backends.limits.sheets_write for server in (a, b)]
        assert [bucket.limit for bucket in writes] == [60, 60]
        first = (await start_job(client, "sinks", shop.products())).job_id
        await until(lambda: any(server.services.registry.running_job_ids for server in (a, b)))
        # One instance busy: it keeps the whole quota.
        await asyncio.sleep(0.5)
        assert [bucket.limit for bucket in writes] == [60, 60]
        second = (await start_job(client, "taps", shop.products())).job_id
        # Both busy: each gets half, and never more than the whole between them.
        await until(lambda: all(bucket.parts == 2 for bucket in writes))
        assert [bucket.limit for bucket in writes] == [30, 30]
        assert {tuple(server.services.registry.running_job_ids) for server in (a, b)} == {(first,), (second,)}
        for collection, job_id in (("sinks", first), ("taps", second)):
            assert (await wait_for_job(client, collection, job_id))["status"] == "completed"
        # Idle again: each would have the whole quota for its next job.
        await until(lambda: all(bucket.parts == 1 for bucket in writes))
        assert [bucket.limit for bucket in writes] == [60, 60]


async def test_a_stopped_instance_gives_its_jobs_back_at_once(
    postgres_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    """Shut down mid-job, an instance releases the job: another takes it over without waiting
    for the lease to run out (here far longer than the test may take)."""
    settings = make_settings(postgres_url, workers_per_job=1, lease_seconds=300)
    async with LiveServer(settings, fetcher=SlowFetcher(fetcher, 0.3)) as first, first.client() as client:
        job_id = (await start_job(client, "sinks", shop.products())).job_id
        await until(lambda: bool(first.services.registry.running_job_ids))
        await asyncio.sleep(0.5)
    async with LiveServer(settings, fetcher=fetcher) as second, second.client() as client:
        job = await wait_for_job(client, "sinks", job_id, timeout=30)
        assert job["status"] == "completed" and job["processed_products"] == len(shop.products())
