"""Checks and calls shared by the multi-instance tests (paused owner, scale-out, cancel across
instances): the ledger and events of a job processed once, the sheet with one live row per SKU,
polling, and a job submitted to one instance."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from tests.support.cluster import ClusterDatabase
from tests.support.live import start_job
from tests.support.paced_shop import expected_fields
from tests.support.server_process import TERMINAL, ServerProcess
from tests.support.sheet_servers import HEADER
from wipsvc.collection import DEFAULT_COLUMNS, column_index


async def check_ledger_and_events(db: ClusterDatabase, job_id: str, ids: list[int], where: str) -> None:
    ledger = await db.ledger(job_id)
    assert [(wip_id, status) for wip_id, status, _ in ledger] == [(i, "succeeded") for i in ids], where
    events = await db.events(job_id)
    assert [seq for seq, _ in events] == list(range(1, len(events) + 1)), f"gap in seq {where}"
    statuses = [payload["status"] for _, payload in events]
    assert statuses.count("started") == 1 and statuses[-1] == "completed", (statuses, where)
    # A take-over of a started job says so in a `processing` event with `phase: "resumed"` and no
    # product (an owner frozen before it recorded the start leaves the `started` event to the next).
    phases = [payload["phase"] for _, payload in events if "phase" in payload]
    assert set(phases) <= {"resumed"}, (phases, where)
    assert all(payload["current_product"] is None for _, payload in events if "phase" in payload), where
    processing = Counter(
        p["current_product"]["wip_id"] for _, p in events if p["status"] == "processing" and "phase" not in p
    )
    assert processing == Counter(ids), f"processing events per product: {processing} {where}"


def check_sheet(rows: list[list[str]], products: list[tuple[str, str]], where: str) -> None:
    header, *body = rows
    assert header == HEADER, where
    column = {name: column_index(letter) for name, letter in DEFAULT_COLUMNS.items()}

    def cell(row: list[str], name: str) -> str:
        index = column[name]
        return row[index] if index < len(row) else ""

    live = [row for row in body if cell(row, "sku")]
    counts = Counter(cell(row, "sku") for row in live)
    doubled = sorted(sku for sku, count in counts.items() if count > 1)
    assert not doubled, f"SKUs with two live rows: {doubled} {where}"
    assert sorted(counts) == sorted(sku for sku, _ in products), f"rows missing {where}"
    urls = dict(products)
    for row in live:
        sku = cell(row, "sku")
        assert cell(row, "url") == urls[sku], (row, where)
        for name, value in expected_fields(sku).items():
            assert cell(row, name) == value, (sku, name, row, where)
        assert cell(row, "status") == "ready", (row, where)


async def poll_until(probe: Any, *, where: str, timeout: float = 30.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = await probe()
            if value:
                return value
            await asyncio.sleep(0.02)
    raise AssertionError(where)  # pragma: no cover - asyncio.timeout raises first


async def wait_until(probe: Any, *, where: str, timeout: float) -> Any:
    """``probe()``'s first true answer, polled; an AssertionError saying ``where`` after ``timeout`` s."""
    try:
        return await poll_until(probe, where=where, timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"timed out ({timeout:g} s): {where}") from None


def instance_client(server: ServerProcess, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=server.url, timeout=10, trust_env=False, headers=headers)


async def submit_job(
    client: httpx.AsyncClient, collection: str, products: list[tuple[str, str]]
) -> tuple[str, list[int]]:
    """The job's id and its products' ids (created and started through the typed client)."""
    started = await start_job(client, collection, products)
    return started.job_id, started.wip_ids


async def ended_job(client: httpx.AsyncClient, collection: str, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = (await client.get(f"/api/{collection}/wip/jobs/{job_id}")).json()["job"]
    return job if job["status"] in TERMINAL else None
