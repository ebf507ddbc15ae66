"""The store on SQLite and on the machine's PostgreSQL: reservations, claims, leases, events."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from tests.support.leases import lease_of
from tests.support.store_data import add_products, new_job_id
from wipsvc.domain.statuses import ItemStatus, JobStatus, WipStatus
from wipsvc.store import Conflict, LeaseLost, Store
from wipsvc.store.tables import wip_jobs


async def test_schema_upgrade_is_idempotent(database_url: str) -> None:
    for _ in range(2):
        store = await Store.open(database_url)
        await store.ping()
        await store.close()


async def test_concurrent_jobs_cannot_share_a_product(store: Store) -> None:
    ids = await add_products(store, "sinks", 4)
    results = await asyncio.gather(
        store.jobs.create(new_job_id(), "sinks", ids[:3]),
        store.jobs.create(new_job_id(), "sinks", ids[2:]),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Conflict) for r in results) == 1
    winner = next(r for r in results if not isinstance(r, BaseException))
    products = await store.collections.get_products("sinks", ids)
    reserved = {wip_id for wip_id, p in products.items() if p.active_job_id == winner.job_id}
    assert reserved == set(winner.wip_ids)
    assert all(p.active_job_id is None for wip_id, p in products.items() if wip_id not in reserved)


async def test_claims_respect_the_per_collection_cap_and_order(store: Store) -> None:
    ids = await add_products(store, "sinks", 3)
    other = await add_products(store, "taps", 1)
    first = await store.jobs.create(new_job_id(), "sinks", ids[:1])
    second = await store.jobs.create(new_job_id(), "sinks", ids[1:2])
    taps = await store.jobs.create(new_job_id(), "taps", other)
    claimed = await store.jobs.claim("a", lease_seconds=30, per_collection=1, limit=10, take_running=False)
    assert [job.job_id for job in claimed] == [first.job_id, taps.job_id]
    assert await store.jobs.claim("b", lease_seconds=30, per_collection=1, limit=10, take_running=False) == []
    # With the first job done, the second of its collection may start.
    await store.jobs.finish(lease_of(first.job_id, "a"), JobStatus.COMPLETED)
    claimed = await store.jobs.claim("b", lease_seconds=30, per_collection=1, limit=10, take_running=False)
    assert [job.job_id for job in claimed] == [second.job_id]


async def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off(store: Store) -> None:
    ids = await add_products(store, "sinks", 2)
    job = await store.jobs.create(new_job_id(), "sinks", ids)
    [claimed] = await store.jobs.claim("a", lease_seconds=30, per_collection=1, limit=1, take_running=False)
    await store.jobs.mark_started(lease_of(job.job_id, "a"))
    await store.jobs.start_item(lease_of(job.job_id, "a"), ids[0])
    # Nobody else may take a job with a live lease.
    assert await store.jobs.claim("b", lease_seconds=30, per_collection=1, limit=1, take_running=False) == []
    async with store.db.write() as conn:  # the owner dies: its lease runs out
        await conn.execute(
            wip_jobs.update()
            .where(wip_jobs.c.job_id == job.job_id)
            .values(lease_expires_at=claimed.created_at)
        )
    [taken] = await store.jobs.claim("b", lease_seconds=30, per_collection=1, limit=1, take_running=False)
    assert taken.job_id == job.job_id
    with pytest.raises(LeaseLost):
        await store.jobs.finish_item(
            lease_of(job.job_id, "a"), ids[0], error=None, error_step=None, duration=1.0, eta=None
        )
    event = await store.jobs.finish_item(
        lease_of(job.job_id, "b"), ids[0], error=None, error_step=None, duration=1.0, eta=None
    )
    assert event is not None and event.payload["processed"] == 1


async def test_a_product_is_counted_once_and_events_are_gapless(store: Store) -> None:
    ids = await add_products(store, "sinks", 3)
    job = await store.jobs.create(new_job_id(), "sinks", ids)
    await store.jobs.claim("a", lease_seconds=30, per_collection=1, limit=1, take_running=False)
    await store.jobs.mark_started(lease_of(job.job_id, "a"))
    resumed = await store.jobs.mark_started(lease_of(job.job_id, "a"))  # taken over: not started again
    assert (resumed.payload["status"], resumed.payload["phase"]) == ("processing", "resumed")

    async def finish(wip_id: int, error: str | None) -> None:
        await store.jobs.start_item(lease_of(job.job_id, "a"), wip_id)
        await store.jobs.finish_item(
            lease_of(job.job_id, "a"),
            wip_id,
            error=error,
            error_step="extract" if error else None,
            duration=0.5,
            eta=1,
        )

    await asyncio.gather(finish(ids[0], None), finish(ids[1], "boom"))
    again = await store.jobs.finish_item(
        lease_of(job.job_id, "a"), ids[0], error=None, error_step=None, duration=0.5, eta=1
    )
    assert again is None
    await store.jobs.finish(lease_of(job.job_id, "a"), JobStatus.CANCELLED)

    final = await store.jobs.get(job.job_id)
    assert final is not None and final.status is JobStatus.CANCELLED
    assert (final.processed_products, final.successful_products, final.failed_products) == (2, 1, 1)
    assert [r["status"] for r in final.results] == ["succeeded", "failed", "skipped"]
    items = {item.wip_id: item for item in await store.jobs.items(job.job_id)}
    assert items[ids[2]].status is ItemStatus.SKIPPED
    products = await store.collections.get_products("sinks", ids)
    assert [products[i].status for i in ids] == [WipStatus.READY, WipStatus.ERROR, WipStatus.PENDING]
    assert all(p.active_job_id is None for p in products.values())
    events = await store.jobs.events_after(job.job_id, 0)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.payload["status"] for e in events] == [
        "started",
        "processing",
        "processing",
        "processing",
        "cancelled",
    ]
    assert [e.seq for e in await store.jobs.events_after(job.job_id, 3)] == [4, 5]


async def test_a_paused_job_is_handed_back_without_an_eta_and_says_so(store: Store) -> None:
    ids = await add_products(store, "sinks", 2)
    job = await store.jobs.create(new_job_id(), "sinks", ids)
    await store.jobs.claim("a", lease_seconds=30, per_collection=1, limit=1, take_running=False)
    await store.jobs.mark_started(lease_of(job.job_id, "a"))
    await store.jobs.start_item(lease_of(job.job_id, "a"), ids[0])
    await store.jobs.finish_item(
        lease_of(job.job_id, "a"), ids[0], error=None, error_step=None, duration=0.5, eta=7.5
    )
    assert (await store.jobs.get(job.job_id)).eta_seconds == 7.5  # type: ignore[union-attr]

    paused = await store.jobs.pause(lease_of(job.job_id, "a"))
    assert paused.payload["status"] == "processing" and paused.payload["phase"] == "paused"
    assert paused.payload["current_product"] is None and paused.payload["eta_seconds"] is None
    assert paused.payload["job_status"] == "running" and paused.payload["processed"] == 1
    row = await store.jobs.get(job.job_id)
    assert row is not None and row.status is JobStatus.RUNNING
    assert (row.owner, row.lease_expires_at, row.eta_seconds) == (None, None, None)
    with pytest.raises(LeaseLost):  # handed back: its old owner can no longer write
        await store.jobs.pause(lease_of(job.job_id, "a"))

    # Any instance may take it at once, without waiting for a lease to expire.
    claimed = await store.jobs.claim("b", lease_seconds=30, per_collection=1, limit=1, take_running=False)
    assert [j.job_id for j in claimed] == [job.job_id]
    resumed = await store.jobs.mark_started(lease_of(job.job_id, "b"))
    assert (resumed.payload["status"], resumed.payload["phase"]) == ("processing", "resumed")
    assert resumed.seq == paused.seq + 1


async def test_two_instances_never_claim_the_same_job(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite serves a single instance")
    stores = [await Store.open(database_url) for _ in range(2)]
    try:
        for n in range(6):
            ids = await add_products(stores[0], f"c{n}", 1)
            await stores[0].jobs.create(new_job_id(), f"c{n}", ids)
        claims = await asyncio.gather(
            *(
                s.jobs.claim(f"owner-{i}", lease_seconds=30, per_collection=1, limit=6, take_running=False)
                for i, s in enumerate(stores)
            )
        )
        claimed = [job.job_id for batch in claims for job in batch]
        assert len(claimed) == len(set(claimed)) == 6
        async with stores[0].db.read() as conn:
            owners = (await conn.execute(sa.select(wip_jobs.c.owner))).scalars().all()
        assert sorted(set(owners)) == sorted({f"owner-{i}" for i, batch in enumerate(claims) if batch})
    finally:
        for s in stores:
            await s.close()


async def test_a_renewal_extends_the_lease_and_tells_the_owner_until_when_it_is_certain(store: Store) -> None:
    ids = await add_products(store, "sinks", 1)
    job = await store.jobs.create(new_job_id(), "sinks", ids)
    await store.jobs.claim("a", lease_seconds=30, per_collection=1, limit=1, take_running=False)
    state = await store.jobs.heartbeat(lease_of(job.job_id, "a"), clock=lambda: 100.0)
    assert (state.lease.certain_until, state.cancel_requested) == (125.0, False)
    await store.jobs.request_cancel(job.job_id)
    assert (await store.jobs.heartbeat(state.lease)).cancel_requested is True
    with pytest.raises(LeaseLost):
        await store.jobs.heartbeat(lease_of(job.job_id, "b"))


@pytest.mark.postgres
async def test_instances_claiming_at_once_keep_the_per_collection_cap(postgres_url: str) -> None:
    """Each instance's claim counts a collection's running jobs under that collection's advisory
    lock: without it, instances claiming at the same moment (each skipping the jobs the others
    hold locked) each see none running and all start one."""
    stores = [await Store.open(postgres_url) for _ in range(4)]
    try:
        for _ in range(16):
            await stores[0].jobs.create(new_job_id(), "cap", await add_products(stores[0], "cap", 1))
        for _ in range(3):
            await asyncio.gather(
                *(
                    s.jobs.claim(
                        f"owner-{i}", lease_seconds=30, per_collection=1, limit=1, take_running=False
                    )
                    for i, s in enumerate(stores)
                )
            )
            async with stores[0].db.read() as conn:
                running = await conn.scalar(
                    sa.select(sa.func.count()).where(wip_jobs.c.status == JobStatus.RUNNING.value)
                )
            assert running == 1
    finally:
        for s in stores:
            await s.close()


@pytest.mark.postgres
async def test_a_paused_owners_open_transaction_cannot_hold_its_job(postgres_url: str) -> None:
    """An owner frozen between its lease renewal and the commit holds the job row's lock; the
    idle-in-transaction timeout ends its session, so that another instance can take the job over."""
    owner = await Store.open(postgres_url, idle_in_transaction_timeout=0.5, statement_timeout=2.0)
    other = await Store.open(postgres_url)
    try:
        ids = await add_products(other, "sinks", 1)
        job = await other.jobs.create(new_job_id(), "sinks", ids)
        await owner.jobs.claim("a", lease_seconds=0.1, per_collection=1, limit=1, take_running=False)
        async with owner.engine.connect() as frozen:
            await frozen.begin()
            await frozen.execute(  # the renewal's UPDATE, never committed: the process froze here
                wip_jobs.update().where(wip_jobs.c.job_id == job.job_id).values(owner="a")
            )
            taken: list[str] = []
            async with asyncio.timeout(20):
                while not taken:
                    claimed = await other.jobs.claim(
                        "b", lease_seconds=30, per_collection=1, limit=1, take_running=False
                    )
                    taken = [c.job_id for c in claimed]
                    await asyncio.sleep(0.05)
            assert taken == [job.job_id]
            with pytest.raises(sa.exc.DBAPIError):  # its session is gone
                await frozen.execute(sa.text("SELECT 1"))
    finally:
        await owner.close()
        await other.close()
