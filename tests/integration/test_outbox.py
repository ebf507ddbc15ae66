"""The notification outbox and automatic re-run marks, on SQLite and PostgreSQL: written in the
transaction that ends the job, claimed by one sender at a time, each attempt logged."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from tests.support.leases import lease_of
from wipsvc.domain.statuses import JobStatus
from wipsvc.store import Store
from wipsvc.store.tables import utcnow


async def _ended_job(store: Store, *, fail: dict[int, bool]) -> tuple[str, list[int]]:
    """A job of two products run to its end; ``fail`` maps product index -> transient."""
    await store.collections.ensure("sinks")
    prefix = uuid.uuid4().hex[:6]
    ids = await store.collections.create_products(
        "sinks", [(f"{prefix}-{i}", f"https://s.example/{i}") for i in range(2)]
    )
    job_id = str(uuid.uuid4())
    await store.jobs.create(job_id, "sinks", ids)
    await store.jobs.claim("a", lease_seconds=30, per_collection=1, limit=1, take_running=False)
    lease = lease_of(job_id, "a")
    await store.jobs.mark_started(lease)
    for index, wip_id in enumerate(ids):
        await store.jobs.start_item(lease, wip_id)
        failed = index in fail
        await store.jobs.finish_item(
            lease,
            wip_id,
            error="HTTP 503" if failed else None,
            error_step="extract" if failed else None,
            duration=0.1,
            eta=None,
            transient=fail.get(index, False),
        )
    await store.jobs.finish(lease, JobStatus.COMPLETED)
    return job_id, ids


async def test_a_job_end_owes_one_notification_per_subscribed_target(store: Store) -> None:
    await store.collections.ensure("sinks")
    targets = await store.outbox.replace_targets(
        "sinks",
        [
            {
                "kind": "webhook",
                "address": "https://h.example/a",
                "secret": None,
                "events": ["job.completed"],
            },
            {"kind": "email", "address": "a@example.com", "secret": None, "events": ["job.failed"]},
            {
                "kind": "webhook",
                "address": "https://h.example/b",
                "secret": None,
                "events": ["product.failed"],
            },
        ],
    )
    job_id, ids = await _ended_job(store, fail={1: False})
    owed = await store.outbox.deliveries("sinks", limit=10, job_id=job_id)
    assert sorted((d.target_id, d.event) for d in owed) == [
        (targets[0].id, "job.completed"),
        (targets[2].id, "product.failed"),
    ]
    end = next(d for d in owed if d.event == "job.completed")
    assert end.payload["data"]["failed"] == 1
    assert [f["wip_id"] for f in end.payload["data"]["failures"]] == [ids[1]]


async def test_two_senders_never_claim_the_same_delivery(store: Store) -> None:
    await store.collections.ensure("sinks")
    await store.outbox.replace_targets(
        "sinks",
        [
            {
                "kind": "webhook",
                "address": f"https://h.example/{i}",
                "secret": None,
                "events": ["job.completed"],
            }
            for i in range(6)
        ],
    )
    await _ended_job(store, fail={})
    first, second = await asyncio.gather(
        store.outbox.claim_due(limit=4, hold_seconds=60), store.outbox.claim_due(limit=4, hold_seconds=60)
    )
    claimed = [d.id for d, _ in first] + [d.id for d, _ in second]
    assert len(claimed) == len(set(claimed)) == 6
    assert await store.outbox.claim_due(limit=10, hold_seconds=60) == []


async def test_attempts_are_logged_until_delivered_or_given_up(store: Store) -> None:
    await store.collections.ensure("sinks")
    await store.outbox.replace_targets(
        "sinks",
        [{"kind": "webhook", "address": "https://h.example/", "secret": None, "events": ["job.completed"]}],
    )
    await _ended_job(store, fail={})
    [(delivery, target)] = await store.outbox.claim_due(limit=10, hold_seconds=60)
    assert target is not None and target.address == "https://h.example/"
    later = utcnow() + timedelta(hours=1)
    await store.outbox.record_attempt(delivery.id, ok=False, detail="HTTP 500", retry_at=later)
    assert await store.outbox.claim_due(limit=10, hold_seconds=60) == []  # not due before `later`
    await store.outbox.record_attempt(delivery.id, ok=False, detail="HTTP 500", retry_at=None)
    [failed] = await store.outbox.deliveries("sinks", limit=10)
    assert failed.status == "failed" and [a["ok"] for a in failed.attempts] == [False, False]
    again = await store.outbox.send_again("sinks", delivery.id)
    assert again.status == "pending" and again.message_id == delivery.message_id
    [(retried, _)] = await store.outbox.claim_due(limit=10, hold_seconds=60)
    await store.outbox.record_attempt(retried.id, ok=True, detail="HTTP 204", retry_at=None)
    [done] = await store.outbox.deliveries("sinks", limit=10)
    assert done.status == "delivered" and len(done.attempts) == 3


async def test_only_transient_failures_mark_a_job_for_a_rerun(store: Store) -> None:
    transient, _ = await _ended_job(store, fail={0: True, 1: False})
    permanent, _ = await _ended_job(store, fail={0: False})
    clean, _ = await _ended_job(store, fail={})
    due = {job_id for job_id, _ in await store.reruns.due(utcnow() + timedelta(seconds=1))}
    assert transient in due and permanent not in due and clean not in due
    assert len(await store.reruns.transient_failures(transient)) == 1
    await store.reruns.settle(transient)
    assert transient not in {job_id for job_id, _ in await store.reruns.due(utcnow() + timedelta(seconds=1))}
