"""Each finished product's entry of its job's `results`, kept as JSON on its ledger row.

Written with the product's end, in the same transaction (the group-commit batch of
:mod:`wipsvc.store.ledger_batch`), so that a poll of a running job joins stored text instead of
rebuilding every finished product's result from its checkpoint; the job's end joins them too. It
lives in the database: every instance, and the service after a restart, reads the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wipsvc.domain.statuses import TERMINAL_ITEM_STATUSES
from wipsvc.store.records import RESULT_COLUMNS, item_result_json
from wipsvc.store.tables import job_items

TERMINAL_ITEMS = [status.value for status in TERMINAL_ITEM_STATUSES]


async def keep_results(conn: AsyncConnection, job_id: str, wip_ids: Sequence[int]) -> dict[int, str]:
    """The results of products just closed, as JSON on their rows; returned by wip id. Read back
    from the rows (their attempts and earlier checkpoints are not in the batch): once per
    product, not per poll."""
    rows = (
        await conn.execute(
            sa.select(*(job_items.c[name] for name in RESULT_COLUMNS)).where(
                job_items.c.job_id == job_id, job_items.c.wip_id.in_(sorted(wip_ids))
            )
        )
    ).mappings()
    results = {row["wip_id"]: item_result_json(row) for row in rows}
    await conn.execute(
        job_items.update()
        .where(job_items.c.job_id == job_id, job_items.c.wip_id == sa.bindparam("b_wip_id"))
        .values(result_json=sa.bindparam("b_result_json")),
        [{"b_wip_id": wip_id, "b_result_json": result} for wip_id, result in results.items()],
    )
    return results


async def results_json_of(conn: AsyncConnection, job_id: str) -> str:
    """The results of the job's finished products as a JSON array, in submission order."""
    return join_results((await finished_results(conn, job_id)).values())


async def finished_results(conn: AsyncConnection, job_id: str) -> dict[int, str]:
    """Each finished product's result as JSON, by wip id in submission order, from the JSON kept
    on its row (see `keep_results`); a finished row without one (closed by its job's end, or
    before migration 0008) is built from its columns."""
    query = (
        sa.select(job_items.c.wip_id, job_items.c.result_json)
        .where(job_items.c.job_id == job_id, job_items.c.status.in_(TERMINAL_ITEMS))
        .order_by(job_items.c.position)
    )
    rows = (await conn.execute(query)).all()
    missing = [wip_id for wip_id, stored in rows if stored is None]
    built: dict[int, str] = {}
    if missing:
        columns = sa.select(*(job_items.c[name] for name in RESULT_COLUMNS)).where(
            job_items.c.job_id == job_id, job_items.c.wip_id.in_(missing)
        )
        built = {row["wip_id"]: item_result_json(row) for row in (await conn.execute(columns)).mappings()}
    return {wip_id: stored if stored is not None else built[wip_id] for wip_id, stored in rows}


def join_results(results: Iterable[str]) -> str:
    """Results, each already JSON, as one JSON array."""
    return "[" + ",".join(results) + "]"
