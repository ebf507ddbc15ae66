"""A cancel sent to one instance stops a job running on another at once, with Redis (pub/sub) and
without (PostgreSQL `LISTEN`/`NOTIFY`): the lease is renewed only every 30 s here, so only the
signal can explain a stop within a third of that. The same signal wakes the other instance's
claim loop (claiming on its own only every 30 s too) when a job is queued at a busy instance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import REDIS_URL, Cluster, ClusterDatabase
from tests.support.cluster_checks import ended_job, instance_client, submit_job, wait_until
from tests.support.paced_shop import PacedShop
from tests.support.server_process import server_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

# A renewal every third of the lease, and claim rounds as seldom.
SLOW_LEASE = 90.0
RENEWAL = SLOW_LEASE / 3


@pytest.fixture
def paced_shop() -> Iterator[PacedShop]:
    with PacedShop(latency=(0.05, 0.1), seed=14) as running:
        yield running


@pytest.mark.parametrize("signal", [pytest.param("redis", marks=pytest.mark.redis), "postgres"])
async def test_a_cancel_sent_to_one_instance_stops_a_job_running_on_another(
    tmp_path: Path, postgres_url: str, paced_shop: PacedShop, signal: str
) -> None:
    settings: dict[str, object] = {"redis_url": REDIS_URL} if signal == "redis" else {}
    env = server_env(
        database_url=postgres_url,
        scrape_allowed_hosts="127.0.0.1",
        workers_per_job=1,
        max_running_jobs=1,
        # A worker waits a minute between products: a job of three lasts two, unless cancelled.
        product_delay_seconds=60,
        lease_seconds=SLOW_LEASE,
        claim_interval_seconds=RENEWAL,
        log_level="info",
        **settings,
    )
    cluster = Cluster(["a", "b"], env, tmp_path)
    try:
        with cluster:
            async with ClusterDatabase(postgres_url) as db, instance_client(cluster["a"]) as client:
                await _cancel_across(cluster, db, client, paced_shop)
    except BaseException:
        print(cluster.log_tails(60))
        raise


async def _cancel_across(
    cluster: Cluster, db: ClusterDatabase, client: httpx.AsyncClient, shop: PacedShop
) -> None:
    config = {"sheet": {"backend": "local"}, "cleaning": {"backend": "python"}, "llm": {"enabled": False}}
    for collection in ("left", "right"):
        (await client.put(f"/api/collections/{collection}", json=config)).raise_for_status()
    first, _ = await submit_job(client, "left", shop.products("L", 3))
    first_owner = await wait_until(
        lambda: db.owner(first), where="the first job never started", timeout=RENEWAL / 3
    )
    # The second job, submitted to "a" too: whichever instance is free starts it at once, though
    # neither claims on its own for another 30 s.
    submitted = time.monotonic()
    second, _ = await submit_job(client, "right", shop.products("R", 3))
    second_owner = await wait_until(
        lambda: db.owner(second), where="the second job waited for a claim round", timeout=RENEWAL / 3
    )
    assert {first_owner, second_owner} == {"a", "b"}, (first_owner, second_owner)
    print(f"second job started after {time.monotonic() - submitted:.2f} s on the idle instance")

    # Cancel through "a" the job that "b" runs.
    job_id, collection = (first, "left") if first_owner == "b" else (second, "right")
    await wait_until(
        lambda: _processed(client, collection, job_id, 1), where="no product done", timeout=RENEWAL / 3
    )
    cancelled_at = time.monotonic()
    response = await client.post(f"/api/{collection}/wip/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    # Its next renewal is at least 20 s away, its lease 90 s: only the signal stops it this soon.
    job = await wait_until(
        lambda: ended_job(client, collection, job_id), where="not cancelled", timeout=RENEWAL / 3
    )
    latency = time.monotonic() - cancelled_at
    assert job["status"] == "cancelled", job
    assert cluster.log_count("b", f"job {job_id}: cancel requested through another instance") == 1
    # It was b's runner that stopped it (the job ends with the owner's own event), not a claim.
    assert await db.owner(job_id) in (None, "b")
    other = second if job_id == first else first
    assert await db.status(other) == "running"
    print(f"cancel through a of a job on b: cancelled after {latency:.2f} s (renewal every {RENEWAL:g} s)")


async def _processed(client: httpx.AsyncClient, collection: str, job_id: str, count: int) -> bool:
    job = (await client.get(f"/api/{collection}/wip/jobs/{job_id}")).json()["job"]
    return int(job["processed_products"]) >= count
