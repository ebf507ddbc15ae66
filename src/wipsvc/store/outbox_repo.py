"""SQL for notification targets and the notification outbox.

`enqueue_job_end` and `enqueue_product_failure` run inside the transaction that ends the job
or the product, so a notification is owed exactly when the ending is stored. Senders claim
due rows (SKIP LOCKED on PostgreSQL), deliver, and record each attempt on the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.times import iso_utc
from wipsvc.store.database import Database
from wipsvc.store.records import NotFound
from wipsvc.store.tables import job_items, notification_outbox, notification_targets, utcnow, wip_jobs

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
# Event names, as sent in the webhook's `type` and chosen per target: `job.<final status>` for a
# job's end, and this one for each failed product.
PRODUCT_FAILED = "product.failed"
_MAX_FAILURES_LISTED = 100


@dataclass(frozen=True, slots=True)
class Target:
    id: int
    collection_name: str
    kind: str  # email | webhook
    address: str
    secret: str | None
    events: list[str]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    message_id: str
    collection_name: str
    target_id: int
    job_id: str
    event: str
    payload: dict[str, Any]
    status: str
    attempt_count: int
    attempts: list[dict[str, Any]]
    next_attempt_at: datetime
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        return cls(**{name: row[name] for name in cls.__slots__})


def _target(row: Any) -> Target:
    return Target(
        row["id"], row["collection_name"], row["kind"], row["address"], row["secret"], list(row["events"])
    )


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- targets ----------------------------------------------------------------------------

    async def targets(self, collection: str) -> list[Target]:
        query = (
            sa.select(notification_targets)
            .where(notification_targets.c.collection_name == collection)
            .order_by(notification_targets.c.id)
        )
        async with self.db.read() as conn:
            return [_target(row) for row in (await conn.execute(query)).mappings()]

    async def replace_targets(self, collection: str, targets: list[dict[str, Any]]) -> list[Target]:
        """Replace the collection's targets. Deliveries already owed to a removed target fail
        at their next attempt (the target is gone)."""
        now = utcnow()
        async with self.db.write() as conn:
            await conn.execute(
                notification_targets.delete().where(notification_targets.c.collection_name == collection)
            )
            for target in targets:
                await conn.execute(
                    notification_targets.insert().values(collection_name=collection, created_at=now, **target)
                )
        return await self.targets(collection)

    # -- deliveries -------------------------------------------------------------------------

    async def deliveries(
        self, collection: str, *, limit: int, job_id: str | None = None, status: str | None = None
    ) -> list[Delivery]:
        query = sa.select(notification_outbox).where(notification_outbox.c.collection_name == collection)
        if job_id is not None:
            query = query.where(notification_outbox.c.job_id == job_id)
        if status is not None:
            query = query.where(notification_outbox.c.status == status)
        query = query.order_by(notification_outbox.c.id.desc()).limit(limit)
        async with self.db.read() as conn:
            return [Delivery.from_row(row) for row in (await conn.execute(query)).mappings()]

    async def send_again(self, collection: str, delivery_id: int) -> Delivery:
        """Owe a delivery again, now, with a fresh allowance of attempts; its log is kept."""
        async with self.db.write() as conn:
            updated = await conn.execute(
                notification_outbox.update()
                .where(
                    notification_outbox.c.id == delivery_id,
                    notification_outbox.c.collection_name == collection,
                )
                .values(status=PENDING, attempt_count=0, next_attempt_at=utcnow(), claimed_until=None)
            )
            if updated.rowcount == 0:
                raise NotFound(f"delivery {delivery_id} not found in collection '{collection}'")
            row = (
                (
                    await conn.execute(
                        notification_outbox.select().where(notification_outbox.c.id == delivery_id)
                    )
                )
                .mappings()
                .one()
            )
        return Delivery.from_row(row)

    async def claim_due(self, *, limit: int, hold_seconds: float) -> list[tuple[Delivery, Target | None]]:
        """Take up to ``limit`` due deliveries for ``hold_seconds``: another sender skips them
        meanwhile, and takes them again if this one dies before recording the attempt."""
        now = utcnow()
        query = (
            sa.select(notification_outbox)
            .where(
                notification_outbox.c.status == PENDING,
                notification_outbox.c.next_attempt_at <= now,
                sa.or_(
                    notification_outbox.c.claimed_until.is_(None), notification_outbox.c.claimed_until < now
                ),
            )
            .order_by(notification_outbox.c.next_attempt_at, notification_outbox.c.id)
            .limit(limit)
        )
        async with self.db.write() as conn:
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = [Delivery.from_row(row) for row in (await conn.execute(query)).mappings()]
            if not rows:
                return []
            await conn.execute(
                notification_outbox.update()
                .where(notification_outbox.c.id.in_([row.id for row in rows]))
                .values(claimed_until=now + timedelta(seconds=hold_seconds))
            )
            target_rows = await conn.execute(
                sa.select(notification_targets).where(
                    notification_targets.c.id.in_({row.target_id for row in rows})
                )
            )
            by_id = {target.id: target for target in map(_target, target_rows.mappings())}
        return [(row, by_id.get(row.target_id)) for row in rows]

    async def record_attempt(
        self, delivery_id: int, *, ok: bool, detail: str, retry_at: datetime | None
    ) -> None:
        """Log one attempt: delivered if ``ok``, else due again at ``retry_at`` or, without
        one (the attempts are used up), failed."""
        now = utcnow()
        async with self.db.write() as conn:
            query = sa.select(notification_outbox.c.attempts).where(notification_outbox.c.id == delivery_id)
            attempts = list((await conn.execute(query)).scalar() or [])
            attempts.append({"at": iso_utc(now), "ok": ok, "detail": detail[:500]})
            status = DELIVERED if ok else (PENDING if retry_at is not None else FAILED)
            await conn.execute(
                notification_outbox.update()
                .where(notification_outbox.c.id == delivery_id)
                .values(
                    status=status,
                    attempts=attempts,
                    attempt_count=notification_outbox.c.attempt_count + 1,
                    next_attempt_at=retry_at or now,
                    claimed_until=None,
                )
            )


# -- written inside the transactions that end jobs and products ------------------------------


async def enqueue_job_end(conn: AsyncConnection, job_id: str) -> None:
    """Owe each target of the job's collection that asked for this ending a notification."""
    job = (await conn.execute(sa.select(wip_jobs).where(wip_jobs.c.job_id == job_id))).mappings().one()
    event = f"job.{job['status']}"
    targets = await _targets_for(conn, job["collection_name"], event)
    if not targets:
        return
    failures = (
        await conn.execute(
            sa.select(job_items.c.wip_id, job_items.c.sku, job_items.c.error, job_items.c.error_step)
            .where(job_items.c.job_id == job_id, job_items.c.status == "failed")
            .order_by(job_items.c.position)
            .limit(_MAX_FAILURES_LISTED)
        )
    ).mappings()
    started, ended = job["started_at"], job["completed_at"]
    data = {
        "job_id": job_id,
        "collection_name": job["collection_name"],
        "status": job["status"],
        "total": job["total_products"],
        "processed": job["processed_products"],
        "successful": job["successful_products"],
        "failed": job["failed_products"],
        "failures": [dict(row) for row in failures],
        "error": job["error"],
        "retry_of": job["retry_of"],
        "created_at": _iso(job["created_at"]),
        "started_at": _iso(started),
        "completed_at": _iso(ended),
        "duration_seconds": round((ended - started).total_seconds(), 1) if started and ended else None,
    }
    await _insert(conn, targets, job_id, event, f"{job_id}.end", data)


async def enqueue_product_failure(conn: AsyncConnection, job_id: str, item: dict[str, Any]) -> None:
    collection = (
        await conn.execute(sa.select(wip_jobs.c.collection_name).where(wip_jobs.c.job_id == job_id))
    ).scalar_one()
    targets = await _targets_for(conn, collection, PRODUCT_FAILED)
    if targets:
        data = {"job_id": job_id, "collection_name": collection, **item}
        await _insert(conn, targets, job_id, PRODUCT_FAILED, f"{job_id}.{item['wip_id']}", data)


async def _targets_for(conn: AsyncConnection, collection: str, event: str) -> list[Target]:
    query = sa.select(notification_targets).where(notification_targets.c.collection_name == collection)
    return [t for t in map(_target, (await conn.execute(query)).mappings()) if event in t.events]


async def _insert(
    conn: AsyncConnection, targets: list[Target], job_id: str, event: str, key: str, data: dict[str, Any]
) -> None:
    now = utcnow()
    await conn.execute(
        notification_outbox.insert(),
        [
            {
                # Stable for the life of the delivery: receivers drop repeats by it.
                "message_id": f"msg_{key}.{target.id}",
                "collection_name": target.collection_name,
                "target_id": target.id,
                "job_id": job_id,
                "event": event,
                "payload": {"type": event, "timestamp": _iso(now), "data": data},
                "status": PENDING,
                "attempts": [],
                "next_attempt_at": now,
                "created_at": now,
            }
            for target in targets
        ],
    )


def _iso(value: datetime | None) -> str | None:
    return iso_utc(value) if value is not None else None
