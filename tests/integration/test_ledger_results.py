"""Each finished product's result is kept as JSON on its ledger row, written with its end: a running
job's status joins them, byte for byte what rebuilding every result from its row gives."""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa
from pydantic_core import to_json

from tests.support.leases import lease_of
from wipsvc.domain.statuses import JobStatus, WipStatus
from wipsvc.store import Store
from wipsvc.store.ledger_batch import ItemCheckpoint, ItemFinish, ItemStart
from wipsvc.store.tables import job_items


async def test_a_running_jobs_results_are_the_kept_json_and_the_same_as_rebuilt(store: Store) -> None:
    await store.collections.ensure("sinks")
    prefix = uuid.uuid4().hex[:6]
    ids = await store.collections.create_products(
        "sinks", [(f"{prefix}-{i}", f"https://shop.example/{i}") for i in range(4)]
    )
    job = await store.jobs.create(str(uuid.uuid4()), "sinks", ids)
    await store.jobs.claim("me", lease_seconds=30, per_collection=1, limit=1, take_running=False)
    lease = lease_of(job.job_id, "me")
    await store.jobs.mark_started(lease)
    extracted = {"extracted": {"fields": {"title": "Tap é", "price": "", "brand": "Acme"}}}
    done = ItemCheckpoint(
        ids[0], "complete", {**extracted, "token_usage": {"total": 3}}, 5, WipStatus.CLEANING
    )
    await store.jobs.write_batch(lease, [ItemStart(wip_id) for wip_id in ids])
    await store.jobs.write_batch(
        lease,
        [
            ItemFinish(ids[0], "A", None, None, 0.12345, 1.0, last=done),
            ItemFinish(ids[2], "C", "no price", "extract", 0.5, 1.0, transient=True),
            ItemFinish(ids[1], "B", None, None, 0.25, None),
        ],
    )
    async with store.db.read() as conn:
        kept = dict((await conn.execute(sa.select(job_items.c.wip_id, job_items.c.result_json))).all())
    assert kept[ids[3]] is None  # still running: no result yet
    assert json.loads(kept[ids[0]])["extracted_fields"] == ["title", "brand"]
    # A row closed without one (by an older version, say) is built from its columns.
    async with store.db.write() as conn:
        await conn.execute(job_items.update().where(job_items.c.wip_id == ids[1]).values(result_json=None))

    running = await store.jobs.get(job.job_id)
    assert running is not None
    rebuilt = await store.jobs.results(running)
    assert [result["wip_id"] for result in rebuilt] == ids[:3]  # submission order, not finishing order
    assert [result["success"] for result in rebuilt] == [True, True, False]
    assert rebuilt[0]["token_usage"] == {"total": 3} and rebuilt[0]["duration"] == 0.123
    assert (await store.jobs.results_json(running)).encode() == to_json(rebuilt)

    await store.jobs.finish(lease, JobStatus.COMPLETED)
    ended = await store.jobs.get(job.job_id)
    assert ended is not None
    assert ended.results[:3] == rebuilt
    assert ended.results[3]["wip_id"] == ids[3] and ended.results[3]["status"] == "skipped"
    assert await store.jobs.results_json(ended) == ended.results_json
