"""A recurring schedule on three `wipsvc serve` processes sharing one PostgreSQL: every instance
polls for due schedules several times per due time, yet each due time is recorded once, makes
one set of jobs, and every product it takes is processed once.

Bounded: a due time every 3 s (a seconds field in the cron), polls every 0.05 s, three rounds of
three products (two jobs each, at most two products per job).
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import Cluster, ClusterDatabase
from tests.support.cluster_checks import check_ledger_and_events, ended_job, instance_client, wait_until
from tests.support.paced_shop import PacedShop
from tests.support.server_process import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180)]

COLLECTION = "sinks"
INTERVAL = 3  # seconds between two due times
ROUNDS = 3
PRODUCTS_PER_ROUND = 3
MAX_BATCH = 2
JOBS_PER_FIRE = -(-PRODUCTS_PER_ROUND // MAX_BATCH)


@pytest.fixture
def paced_shop() -> Iterator[PacedShop]:
    with PacedShop(latency=(0.05, 0.2), seed=13) as running:
        yield running


async def test_three_instances_fire_each_due_time_once(
    tmp_path: Path, postgres_url: str, paced_shop: PacedShop
) -> None:
    env = server_env(
        database_url=postgres_url,
        scrape_allowed_hosts="127.0.0.1",
        max_batch=MAX_BATCH,
        workers_per_job=2,
        schedule_min_interval_seconds=1,
        # Each instance looks 60 times per due time: all three race for every one of them.
        schedule_poll_seconds=0.05,
        claim_interval_seconds=0.3,
        log_level="info",
    )
    cluster = Cluster(["a", "b", "c"], env, tmp_path)
    try:
        with cluster:
            async with ClusterDatabase(postgres_url) as db:
                await _fire_rounds_and_check(cluster, db, paced_shop)
    except BaseException:
        print(cluster.log_tails(60))
        raise


async def _fire_rounds_and_check(cluster: Cluster, db: ClusterDatabase, shop: PacedShop) -> None:
    names = list(cluster.servers)
    config = {"sheet": {"backend": "local"}, "cleaning": {"backend": "python"}, "llm": {"enabled": False}}
    async with instance_client(cluster["a"]) as client:
        (await client.put(f"/api/collections/{COLLECTION}", json=config)).raise_for_status()
        created = await client.post(f"/api/{COLLECTION}/schedules", json={"cron": f"* * * * * */{INTERVAL}"})
        assert created.status_code == 201, created.text
        schedule_id = int(created.json()["schedule"]["id"])
        fires_url = f"/api/{COLLECTION}/schedules/{schedule_id}/fires"

        async def fired_log() -> list[dict[str, Any]]:
            response = await client.get(fires_url, params={"limit": 500})
            assert response.status_code == 200, response.text
            return [fire for fire in response.json()["fires"] if fire["outcome"] == "fired"]

        taken: dict[int, list[int]] = {}  # round -> its products
        for round_ in range(ROUNDS):
            # Each round's products go in through another instance, in one request: the next due
            # time takes all of them (due times in between have nothing to take: `skipped`).
            async with instance_client(cluster[names[round_ % len(names)]]) as other:
                batch = shop.products(f"R{round_}", PRODUCTS_PER_ROUND)
                added = await other.post(
                    f"/api/{COLLECTION}/wip", json={"products": [{"sku": s, "url": u} for s, u in batch]}
                )
                assert added.status_code == 201, added.text
                taken[round_] = added.json()["wip_ids"]

            async def fired(count: int = round_ + 1) -> list[dict[str, Any]] | None:
                log = await fired_log()
                return log if len(log) >= count else None

            log = await wait_until(fired, where=f"round {round_} never fired", timeout=INTERVAL * 5)
            assert len(log) == round_ + 1, log
            newest = log[0]
            assert newest["products"] == PRODUCTS_PER_ROUND and len(newest["job_ids"]) == JOBS_PER_FIRE, (
                newest
            )
            made = [await _job(client, job_id) for job_id in newest["job_ids"]]
            assert sorted(i for job in made for i in job["wip_ids"]) == sorted(taken[round_]), made
            assert {job["schedule_id"] for job in made} == {schedule_id}

        fires = (await client.get(fires_url, params={"limit": 500})).json()["fires"]
        stored = await _schedule_jobs(db, schedule_id)
        jobs_of_fires = [job_id for fire in fires for job_id in fire["job_ids"]]
        for job_id, wip_ids in stored.items():
            job = await wait_until(
                functools.partial(ended_job, client, COLLECTION, job_id),
                where=f"job {job_id} never ended",
                timeout=60,
            )
            assert job["status"] == "completed", (job_id, job["status"], job["error"])
            await check_ledger_and_events(db, job_id, wip_ids, where=f"(job {job_id})")

    # Each due time is recorded once, on the cron's grid; what fired made one set of jobs, and
    # these are all the jobs that name the schedule.
    due_times = [datetime.fromisoformat(fire["due_at"]) for fire in fires]
    assert len(set(due_times)) == len(due_times), f"a due time fired twice: {sorted(due_times)}"
    assert all(due.second % INTERVAL == 0 and due.microsecond == 0 for due in due_times), due_times
    assert sorted(jobs_of_fires) == sorted(stored), (fires, stored)
    assert len(stored) == ROUNDS * JOBS_PER_FIRE
    every_product = [wip_id for wip_ids in stored.values() for wip_id in wip_ids]
    assert sorted(every_product) == sorted(i for ids in taken.values() for i in ids), "a product in two jobs"
    # Each product page fetched once: no job processed a product another job had.
    assert shop.hits == Counter(
        sku for round_ in range(ROUNDS) for sku, _ in shop.products(f"R{round_}", PRODUCTS_PER_ROUND)
    )
    # Each fire was made by one instance: their logs name each due time once between them.
    logged = {name: _logged_fires(cluster, name, schedule_id) for name in names}
    assert Counter(due for dues in logged.values() for due in dues) == Counter(due_times), logged
    # And none of them had a round fail (a duplicate due time refused by the database, say).
    failed = {name: cluster.log_count(name, "firing schedules failed") for name in names}
    assert not any(failed.values()), failed
    print("fires per instance:", {name: len(dues) for name, dues in logged.items()})


async def _job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/{COLLECTION}/wip/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()["job"]
    return job


async def _schedule_jobs(db: ClusterDatabase, schedule_id: int) -> dict[str, list[int]]:
    """Every job in the database that the schedule made, with its products."""
    rows = await db.query("SELECT job_id, wip_ids FROM wip_jobs WHERE schedule_id = $1", schedule_id)
    return {str(row["job_id"]): [int(i) for i in json.loads(row["wip_ids"])] for row in rows}


def _logged_fires(cluster: Cluster, name: str, schedule_id: int) -> list[datetime]:
    """The due times instance ``name`` logged a fire (or skip) of the schedule for."""
    text = cluster[name].log_path.read_text(encoding="utf-8", errors="replace")
    pattern = rf"schedule {schedule_id} \({COLLECTION}\) \w+ for (\S+):"
    return [datetime.fromisoformat(found) for found in re.findall(pattern, text)]
