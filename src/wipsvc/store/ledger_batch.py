"""The writes of a running job's products, many products in one transaction.

A batch holds products starting, products' checkpoints and products finishing, in the order they
were made. It is written in one transaction whose first write to the job's row is the fence: an
``UPDATE wip_jobs … WHERE job_id AND owner AND status = 'running'`` that renews the lease and, when
products finish, also bumps the job's counters and its event sequence, returning what the events
need. No row count, no row: the lease is lost and nothing is written. Every other statement is one
``executemany`` per kind of write, and nothing just written is read back for the caller: it knows
it. The one read-back is the finished products' results, kept as JSON on their rows (see
:func:`wipsvc.store.ledger_results.keep_results`). The fence returns the job's row as the batch
leaves it, so the owner knows its job as committed without reading it (see `Committed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.events import CurrentProduct, JobProgress
from wipsvc.domain.statuses import EventStatus, ItemStatus, JobStatus, WipStatus
from wipsvc.domain.times import iso_utc
from wipsvc.store import fencing, ledger_results
from wipsvc.store.lease import Lease
from wipsvc.store.outbox_repo import enqueue_product_failure
from wipsvc.store.records import JobRecord, LeaseLost, ProgressEvent
from wipsvc.store.tables import job_events, job_items, utcnow, wip_jobs, wip_products
from wipsvc.text import clean_json, clean_text

OPEN_ITEMS = (ItemStatus.PENDING.value, ItemStatus.RUNNING.value)
# The job's row as the fence returns it: all but the results, which are written at the end only.
_JOB_COLUMNS = tuple(column for column in wip_jobs.c if column.name != "results")


@dataclass(frozen=True, slots=True)
class ItemStart:
    """A product starts (again): it is `running` and one attempt more."""

    wip_id: int


@dataclass(frozen=True, slots=True)
class ItemCheckpoint:
    """A step's outcome, on the ledger and on the WIP product."""

    wip_id: int
    step: str | None
    checkpoint: dict[str, Any]
    row_num: int | None
    wip_status: WipStatus
    product_values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ItemFinish:
    """A product ends. ``last`` is its final checkpoint, written with its end (the step it reached,
    what it spent): a product's last step needs no checkpoint of its own."""

    wip_id: int
    sku: str
    error: str | None
    error_step: str | None
    duration: float
    eta: float | None
    row_num: int | None = None
    last: ItemCheckpoint | None = None
    token_usage: dict[str, int] | None = None
    transient: bool = False


LedgerWrite = ItemStart | ItemCheckpoint | ItemFinish


@dataclass(frozen=True, slots=True)
class Committed:
    """What a batch wrote, as its writer knows it once the batch commits: the finished products'
    events in `seq` order, the job's row as the batch left it (its ``results_json`` is empty:
    the results are the ledger's until the job ends) and each finished product's result (JSON,
    by wip id)."""

    events: list[ProgressEvent]
    job: JobRecord
    results: dict[int, str]


async def write_batch(conn: AsyncConnection, lease: Lease, writes: Sequence[LedgerWrite]) -> Committed:
    """Write ``writes`` (see the module). A product already closed is not closed again, nor
    counted. Raises LeaseLost."""
    now = utcnow()
    finishes = [w for w in writes if isinstance(w, ItemFinish)]
    if finishes:
        # Before the fence, without a lock: an item closes only through this owner's writes
        # (one batch at a time) or through the job's end, which the fence then refuses.
        still_open = set(
            (
                await conn.execute(
                    sa.select(job_items.c.wip_id).where(
                        job_items.c.job_id == lease.job_id,
                        job_items.c.wip_id.in_(sorted({f.wip_id for f in finishes})),
                        job_items.c.status.in_(OPEN_ITEMS),
                    )
                )
            ).scalars()
        )
        closing: dict[int, ItemFinish] = {}
        for finish in finishes:
            if finish.wip_id in still_open:
                closing.setdefault(finish.wip_id, finish)
        finishes = list(closing.values())
    job = await _fence(conn, lease, finishes, now)
    starts = [w.wip_id for w in writes if isinstance(w, ItemStart)]
    if starts:
        await conn.execute(
            _item_update(lease.job_id).values(
                status=ItemStatus.RUNNING.value,
                attempts=job_items.c.attempts + 1,
                started_at=sa.func.coalesce(job_items.c.started_at, now),
            ),
            [{"b_wip_id": wip_id} for wip_id in starts],
        )
    latest: dict[int, ItemCheckpoint] = {}
    for write in writes:  # a product's later checkpoint carries everything of its earlier ones
        if isinstance(write, ItemCheckpoint):
            latest.pop(write.wip_id, None)
            latest[write.wip_id] = write
    await _checkpoints(conn, lease.job_id, list(latest.values()), now)
    if not finishes:
        return Committed([], _record(job), {})
    await _close(conn, lease.job_id, finishes, now)
    results = await ledger_results.keep_results(conn, lease.job_id, [f.wip_id for f in finishes])
    usage = await _add_token_usage(conn, lease.job_id, job["token_usage"], finishes)
    events = await _events(conn, lease.job_id, job, finishes, now)
    return Committed(events, _record(job, token_usage=usage), results)


def _record(job: sa.RowMapping, **changed: Any) -> JobRecord:
    return JobRecord.from_row({**job, "results": None, **changed})  # type: ignore[arg-type]


async def _fence(conn: AsyncConnection, lease: Lease, finishes: list[ItemFinish], now: Any) -> sa.RowMapping:
    values: dict[str, Any] = {"lease_expires_at": fencing.lease_expiry(conn, lease.seconds)}
    if finishes:
        succeeded = sum(1 for f in finishes if f.error is None)
        eta = finishes[-1].eta
        values.update(
            processed_products=wip_jobs.c.processed_products + len(finishes),
            successful_products=wip_jobs.c.successful_products + succeeded,
            failed_products=wip_jobs.c.failed_products + len(finishes) - succeeded,
            claims=0,  # progress: the job's run limit starts again
            # Bumping the counter on the locked job row keeps sequence numbers gapless and unique.
            event_seq=wip_jobs.c.event_seq + len(finishes),
            eta_seconds=None if eta is None else round(eta, 1),
            eta_at=now,
        )
    row = (
        (
            await conn.execute(
                fencing.owned(lease.job_id, lease.owner).values(**values).returning(*_JOB_COLUMNS)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise LeaseLost(f"job {lease.job_id} is no longer owned by {lease.owner}")
    return row


def _item_update(job_id: str) -> sa.Update:
    # No IN (…): an expanding parameter cannot go into an ``executemany``.
    still_open = sa.or_(*(job_items.c.status == status for status in OPEN_ITEMS))
    return job_items.update().where(
        job_items.c.job_id == job_id, job_items.c.wip_id == sa.bindparam("b_wip_id"), still_open
    )


_LEDGER_VALUES = {
    "step": sa.bindparam("b_step", type_=job_items.c.step.type),
    "checkpoint": sa.bindparam("b_checkpoint", type_=job_items.c.checkpoint.type),
    "row_num": sa.bindparam("b_row_num", type_=job_items.c.row_num.type),
}


def _ledger_params(write: ItemCheckpoint) -> dict[str, Any]:
    return {"b_step": write.step, "b_checkpoint": clean_json(write.checkpoint), "b_row_num": write.row_num}


async def _checkpoints(conn: AsyncConnection, job_id: str, writes: list[ItemCheckpoint], now: Any) -> None:
    if not writes:
        return
    await conn.execute(
        _item_update(job_id).values(**_LEDGER_VALUES),
        [{"b_wip_id": w.wip_id, **_ledger_params(w)} for w in writes],
    )
    # One statement per set of product columns written (the steps add columns as they go).
    shapes: dict[tuple[str, ...], list[ItemCheckpoint]] = {}
    for write in writes:
        shapes.setdefault(tuple(sorted(write.product_values)), []).append(write)
    for columns, group in shapes.items():
        await conn.execute(
            wip_products.update()
            .where(wip_products.c.id == sa.bindparam("b_id"))
            .values(
                status=sa.bindparam("b_status"),
                updated_at=now,
                **{name: sa.bindparam(f"b_{name}", type_=wip_products.c[name].type) for name in columns},
            ),
            [
                {
                    "b_id": w.wip_id,
                    "b_status": w.wip_status.value,
                    **{f"b_{name}": clean_json(w.product_values[name]) for name in columns},
                }
                for w in group
            ],
        )


async def _close(conn: AsyncConnection, job_id: str, finishes: list[ItemFinish], now: Any) -> None:
    def outcome(finish: ItemFinish) -> dict[str, Any]:
        success = finish.error is None
        return {
            "b_wip_id": finish.wip_id,
            "b_status": (ItemStatus.SUCCEEDED if success else ItemStatus.FAILED).value,
            "b_error": _error(finish),
            "b_error_step": finish.error_step,
            "b_transient": None if success else finish.transient,
            "b_duration": finish.duration,
        }

    closing = _item_update(job_id).values(
        status=sa.bindparam("b_status"),
        error=sa.bindparam("b_error"),
        error_step=sa.bindparam("b_error_step"),
        error_transient=sa.bindparam("b_transient", type_=sa.Boolean()),
        finished_at=now,
        duration=sa.bindparam("b_duration", type_=sa.Float()),
    )
    with_last = [f for f in finishes if f.last is not None]
    without = [f for f in finishes if f.last is None]
    if with_last:
        await conn.execute(
            closing.values(**_LEDGER_VALUES),
            [{**outcome(f), **_ledger_params(f.last)} for f in with_last if f.last is not None],
        )
    if without:
        await conn.execute(closing, [outcome(f) for f in without])
    await conn.execute(
        wip_products.update()
        .where(wip_products.c.id == sa.bindparam("b_id"))
        .values(status=sa.bindparam("b_status"), error=sa.bindparam("b_error"), updated_at=now),
        [
            {
                "b_id": f.wip_id,
                "b_status": (WipStatus.READY if f.error is None else WipStatus.ERROR).value,
                "b_error": _error(f),
            }
            for f in finishes
        ],
    )


async def _add_token_usage(
    conn: AsyncConnection, job_id: str, before: dict[str, int] | None, finishes: list[ItemFinish]
) -> dict[str, int] | None:
    """The job's token usage with the finished products' added (written only if they spent any)."""
    usage: dict[str, int] = dict(before or {})
    spent = False
    for finish in finishes:
        for key, value in (finish.token_usage or {}).items():
            usage[key], spent = usage.get(key, 0) + value, True
    if not spent:
        return before
    await conn.execute(wip_jobs.update().where(wip_jobs.c.job_id == job_id).values(token_usage=usage))
    return usage


async def _events(
    conn: AsyncConnection, job_id: str, job: sa.RowMapping, finishes: list[ItemFinish], now: Any
) -> list[ProgressEvent]:
    count = len(finishes)
    seq, processed = job["event_seq"] - count, job["processed_products"] - count
    successful = job["successful_products"] - sum(1 for f in finishes if f.error is None)
    failed = job["failed_products"] - sum(1 for f in finishes if f.error is not None)
    timestamp = iso_utc(now)
    events: list[ProgressEvent] = []
    for finish in finishes:
        seq, processed = seq + 1, processed + 1
        successful += finish.error is None
        failed += finish.error is not None
        current: dict[str, Any] = {
            "wip_id": finish.wip_id,
            "sku": finish.sku,
            "success": finish.error is None,
            "row_num": finish.last.row_num if finish.last is not None else finish.row_num,
        }
        if finish.error is not None:
            current["error"] = _error(finish)
            current["error_step"] = finish.error_step  # the step it failed at, as in the job's results
            await enqueue_product_failure(conn, job_id, current)
        payload = JobProgress(
            job_id=job_id,
            status=EventStatus.PROCESSING,
            total=job["total_products"],
            processed=processed,
            successful=successful,
            failed=failed,
            current_product=CurrentProduct.model_validate(current),
            collection_name=job["collection_name"],
            seq=seq,
            eta_seconds=None if finish.eta is None else round(finish.eta, 1),
            job_status=JobStatus(job["status"]),
            timestamp=timestamp,
        ).payload()
        events.append(ProgressEvent(job_id, job["collection_name"], seq, payload))
    await conn.execute(
        job_events.insert(),
        [{"job_id": job_id, "seq": e.seq, "created_at": now, "payload": e.payload} for e in events],
    )
    return events


def _error(finish: ItemFinish) -> str | None:
    return clean_text(finish.error) if finish.error is not None else None
