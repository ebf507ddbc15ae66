"""Job priority in the store, on SQLite and on the machine's PostgreSQL: the claim order with
ageing, the urgent job's one place beyond the cap, and changing a queued job's priority."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.support.leases import lease_of
from tests.support.store_data import add_products, new_job_id
from wipsvc.domain.priority import Priority
from wipsvc.domain.statuses import JobStatus
from wipsvc.store import Conflict, NotFound, Store
from wipsvc.store.tables import utcnow, wip_jobs

URGENT, NORMAL, LOW = Priority.URGENT, Priority.NORMAL, Priority.LOW


async def _job(store: Store, priority: Priority, *, queued_ago: float = 0.0, collection: str = "") -> str:
    """A one-product job of its own collection (unless named), queued ``queued_ago`` seconds ago."""
    name = collection or f"c-{uuid.uuid4().hex[:8]}"
    job = await store.jobs.create(new_job_id(), name, await add_products(store, name, 1), priority=priority)
    if queued_ago:
        async with store.db.write() as conn:
            await conn.execute(
                wip_jobs.update()
                .where(wip_jobs.c.job_id == job.job_id)
                .values(created_at=utcnow() - timedelta(seconds=queued_ago))
            )
    return job.job_id


async def _claim_order(store: Store, ageing: float | None, owner: str = "a") -> list[str]:
    claimed = await store.jobs.claim(
        owner, lease_seconds=30, per_collection=1, limit=10, take_running=False, ageing_seconds=ageing
    )
    return [job.job_id for job in claimed]


async def test_queued_jobs_are_claimed_by_priority_then_oldest(store: Store) -> None:
    low = await _job(store, LOW, queued_ago=30)
    normal_old = await _job(store, NORMAL, queued_ago=20)
    urgent = await _job(store, URGENT, queued_ago=10)
    normal_new = await _job(store, NORMAL)
    assert await _claim_order(store, ageing=None) == [urgent, normal_old, normal_new, low]


async def test_ageing_raises_a_waiting_job_one_class_per_period(store: Store) -> None:
    low_aged_twice = await _job(store, LOW, queued_ago=130)  # ranks as urgent
    normal_aged = await _job(store, NORMAL, queued_ago=70)  # ranks as urgent
    low_aged_once = await _job(store, LOW, queued_ago=65)  # ranks as normal
    urgent = await _job(store, URGENT)
    normal = await _job(store, NORMAL, queued_ago=10)
    order = await _claim_order(store, ageing=60)
    assert order == [low_aged_twice, normal_aged, urgent, low_aged_once, normal]


async def test_an_urgent_job_runs_as_one_beyond_the_cap_while_a_normal_one_runs(store: Store) -> None:
    running = await _job(store, NORMAL, collection="sinks")
    assert await _claim_order(store, None) == [running]
    queued = await _job(store, NORMAL, collection="sinks")
    urgent = await _job(store, URGENT, collection="sinks")
    second_urgent = await _job(store, URGENT, collection="sinks")
    # One beyond the cap, and only one: the next urgent job and the normal one wait.
    assert await _claim_order(store, None, "b") == [urgent]
    assert await _claim_order(store, None, "c") == []
    # With the normal job ended, the cap is full of urgent work: nothing goes beyond it.
    await store.jobs.finish(lease_of(running, "a"), JobStatus.COMPLETED)
    assert await _claim_order(store, None, "c") == []
    await store.jobs.finish(lease_of(urgent, "b"), JobStatus.COMPLETED)
    assert await _claim_order(store, None, "c") == [second_urgent]
    assert (await store.jobs.get(queued)).status is JobStatus.QUEUED  # type: ignore[union-attr]


async def test_only_a_queued_jobs_priority_changes(store: Store) -> None:
    first = await _job(store, NORMAL, collection="sinks")
    second = await _job(store, LOW, collection="sinks")
    changed = await store.priority.change(second, URGENT)
    assert (changed.priority, changed.status) == (URGENT, JobStatus.QUEUED)
    assert (await store.jobs.get(second)).priority is URGENT  # type: ignore[union-attr]
    assert await _claim_order(store, None) == [second]  # urgent now: it goes first
    with pytest.raises(Conflict, match="only while queued"):
        await store.priority.change(second, LOW)
    assert (await store.jobs.get(second)).priority is URGENT  # type: ignore[union-attr]
    assert (await store.priority.change(first, LOW)).priority is LOW  # still queued
    with pytest.raises(NotFound):
        await store.priority.change(new_job_id(), LOW)


@pytest.mark.postgres
async def test_instances_take_queued_jobs_in_one_priority_order(postgres_url: str) -> None:
    stores = [await Store.open(postgres_url) for _ in range(3)]
    try:
        made = {
            priority: [await _job(stores[0], priority) for _ in range(2)]
            for priority in (LOW, NORMAL, URGENT)  # the most urgent last: newest
        }
        taken = []
        for turn in range(6):
            store = stores[turn % len(stores)]
            claimed = await store.jobs.claim(
                f"owner-{turn}", lease_seconds=30, per_collection=1, limit=1, take_running=False
            )
            taken += [job.job_id for job in claimed]
        assert taken == made[URGENT] + made[NORMAL] + made[LOW]
    finally:
        for s in stores:
            await s.close()
