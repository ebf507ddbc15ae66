"""Group commit of a running job's product writes, on SQLite and on PostgreSQL: many products in
one transaction, gapless events published in order once stored, a refused write failing only its
own product, a lost lease failing the batch and writing nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy import event

from tests.support.leases import lease_of
from wipsvc.domain.statuses import ItemStatus, WipStatus
from wipsvc.jobs.events import EventBus
from wipsvc.jobs.ledger_writer import MAX_BATCH, LedgerWriter
from wipsvc.store import LeaseLost, ProgressEvent, Store
from wipsvc.store.lease import Lease
from wipsvc.store.ledger_batch import Committed, ItemCheckpoint, ItemFinish, ItemStart, LedgerWrite
from wipsvc.store.tables import wip_jobs


async def _running_job(store: Store, count: int) -> tuple[str, list[int]]:
    await store.collections.ensure("sinks")
    prefix = uuid.uuid4().hex[:6]
    ids = await store.collections.create_products(
        "sinks", [(f"{prefix}-{i}", f"https://shop.example/{i}") for i in range(count)]
    )
    job = await store.jobs.create(str(uuid.uuid4()), "sinks", ids)
    await store.jobs.claim("me", lease_seconds=30, per_collection=1, limit=1, take_running=False)
    await store.jobs.mark_started(lease_of(job.job_id, "me"))
    return job.job_id, ids


def _checkpoint(wip_id: int, step: str, status: WipStatus, **values: Any) -> ItemCheckpoint:
    return ItemCheckpoint(wip_id, step, {"attempts": {step: 1}}, 7, status, {"row_num": 7, **values})


def _finish(wip_id: int, *, error: str | None = None, **extra: Any) -> ItemFinish:
    return ItemFinish(wip_id, f"SKU-{wip_id}", error, "extract" if error else None, 0.1, 1.0, **extra)


async def test_products_finishing_together_share_transactions_and_events_stay_in_order(
    store: Store,
) -> None:
    job_id, ids = await _running_job(store, 20)
    published: list[ProgressEvent] = []
    bus = EventBus()

    async def collect(event: ProgressEvent) -> None:
        published.append(event)

    bus.subscribe(collect)
    commits = 0

    def count_commit(*_: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(store.engine.sync_engine, "commit", count_commit)
    writer = LedgerWriter(store.jobs.write_batch, bus, lambda: lease_of(job_id, "me"))

    async def product(wip_id: int) -> ProgressEvent | None:
        await writer.write(ItemStart(wip_id))
        await writer.write(_checkpoint(wip_id, "extract", WipStatus.GENERATING, extracted={"title": "T"}))
        last = _checkpoint(wip_id, "complete", WipStatus.CLEANING)
        failed = wip_id == ids[3]
        return await writer.write(_finish(wip_id, error="boom" if failed else None, last=last))

    returned = await asyncio.gather(*(product(wip_id) for wip_id in ids))
    await writer.aclose()

    assert writer.batches == commits == 3  # a start, a checkpoint and a finish for all twenty
    assert [e.seq for e in published] == list(range(2, 22))  # 1 is the job's start
    assert [e.payload["processed"] for e in published] == list(range(1, 21))
    assert [e.payload["failed"] for e in published][-1] == 1
    assert {e.payload["current_product"]["wip_id"]: e for e in published} == {
        e.payload["current_product"]["wip_id"]: e for e in returned if e is not None
    }
    stored = await store.jobs.events_after(job_id, 1)
    assert [e.payload for e in stored] == [e.payload for e in published]
    job = await store.jobs.get(job_id)
    assert job is not None and (job.processed_products, job.failed_products) == (20, 1)
    items = {item.wip_id: item for item in await store.jobs.items(job_id)}
    assert items[ids[0]].status is ItemStatus.SUCCEEDED and items[ids[0]].attempts == 1
    assert items[ids[0]].step == "complete" and items[ids[0]].row_num == 7
    assert items[ids[3]].status is ItemStatus.FAILED and items[ids[3]].error == "boom"
    products = await store.collections.get_products("sinks", ids)
    assert products[ids[0]].status is WipStatus.READY and products[ids[0]].extracted == {"title": "T"}
    assert products[ids[3]].status is WipStatus.ERROR


async def test_a_products_later_checkpoint_in_the_same_batch_wins(store: Store) -> None:
    job_id, [wip_id] = await _running_job(store, 1)
    lease = lease_of(job_id, "me")
    await store.jobs.write_batch(
        lease,
        [
            ItemStart(wip_id),
            _checkpoint(wip_id, "sheet_row", WipStatus.EXTRACTING),
            _checkpoint(wip_id, "describe", WipStatus.CLEANING, descriptions={"body_html": "b"}),
        ],
    )
    [item] = await store.jobs.items(job_id)
    assert (item.status, item.step, item.attempts) == (ItemStatus.RUNNING, "describe", 1)
    product = (await store.collections.get_products("sinks", [wip_id]))[wip_id]
    assert product.status is WipStatus.CLEANING and product.descriptions == {"body_html": "b"}


async def test_a_write_the_store_refuses_fails_only_its_product(store: Store) -> None:
    job_id, ids = await _running_job(store, 4)
    refused = ids[2]

    async def refusing(lease: Lease, writes: Sequence[LedgerWrite]) -> Committed:
        if any(isinstance(w, ItemCheckpoint) and w.wip_id == refused for w in writes):
            raise sqlalchemy.exc.DataError("UPDATE wip_products …", {}, ValueError("invalid byte sequence"))
        return await store.jobs.write_batch(lease, writes)

    writer = LedgerWriter(refusing, EventBus(), lambda: lease_of(job_id, "me"))
    outcomes = await asyncio.gather(
        *(writer.write(_checkpoint(wip_id, "sheet_row", WipStatus.EXTRACTING)) for wip_id in ids),
        return_exceptions=True,
    )
    assert [isinstance(o, sqlalchemy.exc.DataError) for o in outcomes] == [False, False, True, False]
    items = {item.wip_id: item for item in await store.jobs.items(job_id)}
    assert [items[wip_id].step for wip_id in ids] == ["sheet_row", "sheet_row", None, "sheet_row"]


async def test_a_lost_lease_fails_the_whole_batch_and_writes_nothing(store: Store) -> None:
    job_id, ids = await _running_job(store, 3)
    async with store.db.write() as conn:  # another instance took the job over
        await conn.execute(wip_jobs.update().where(wip_jobs.c.job_id == job_id).values(owner="other"))
    writer = LedgerWriter(store.jobs.write_batch, EventBus(), lambda: lease_of(job_id, "me"))
    outcomes = await asyncio.gather(
        *(writer.write(_finish(wip_id)) for wip_id in ids), return_exceptions=True
    )
    assert all(isinstance(o, LeaseLost) for o in outcomes)
    job = await store.jobs.get(job_id)
    assert job is not None and (job.processed_products, job.event_seq) == (0, 1)
    async with store.db.read() as conn:
        statuses = (await conn.execute(sa.text("SELECT status FROM job_items"))).scalars().all()
    assert set(statuses) == {ItemStatus.PENDING.value}


async def test_a_transaction_holds_at_most_max_batch_writes(store: Store) -> None:
    job_id, ids = await _running_job(store, MAX_BATCH + 50)
    writer = LedgerWriter(store.jobs.write_batch, EventBus(), lambda: lease_of(job_id, "me"))
    await asyncio.gather(*(writer.write(ItemStart(wip_id)) for wip_id in ids))
    assert writer.batches == 2
    items = await store.jobs.items(job_id)
    assert {item.status for item in items} == {ItemStatus.RUNNING}
