"""Graceful shutdown: `wipsvc serve` sent SIGTERM in the middle of a job, then started again.

The steps in flight finish and are checkpointed (no page is fetched twice), the job is
handed back with a `paused` event that the connected Socket.IO client still receives, the
job shows no ETA while no instance works on it, and the next start resumes it (logging and
announcing `resumed`) to the end with every SKU on exactly one row of the Google sheet.

The server logs JSON here, so this is also the check that every line of a real server —
uvicorn's included — is one JSON object, with the request id and the job in context.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.sheets import FakeSheets
from tests.support.paced_shop import PacedShop
from tests.support.server_process import TERMINAL, ServerProcess, free_port
from tests.support.sheet_servers import HEADER, WORKSHEET, add_sheet, create_sheet_products, sheets_server_env
from wipsvc.collection import DEFAULT_COLUMNS, column_index

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

COLLECTION = "drain"
SA_EMAIL = "wipsvc-drain@fake-project.iam.gserviceaccount.com"
PRODUCTS = 12


@pytest.fixture
def sheets(oauth: FakeGoogleOAuth) -> Iterator[FakeSheets]:
    with FakeSheets(oauth, read_quota=1_000_000, write_quota=1_000_000) as fake:
        yield fake


@pytest.fixture
def shop() -> Iterator[PacedShop]:
    # Pages slow enough that a SIGTERM lands while several are being fetched.
    with PacedShop(latency=(0.6, 1.2), seed=12) as running:
        yield running


def _query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/{COLLECTION}/wip/jobs/{job_id}")
    response.raise_for_status()
    job: dict[str, Any] = response.json()["job"]
    return job


def _log_entries(path: Path) -> list[dict[str, Any]]:
    """Every line the server wrote, each parsed as JSON (the start markers aside)."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("====="):
            continue
        entries.append(json.loads(line))  # fails the test on any line in another format
    return entries


async def test_sigterm_mid_job_checkpoints_hands_over_and_resumes(
    tmp_path: Path, oauth: FakeGoogleOAuth, sheets: FakeSheets, shop: PacedShop
) -> None:
    credentials = oauth.write_service_account(tmp_path / "service-account.json", client_email=SA_EMAIL)
    spreadsheet_id = add_sheet(sheets, SA_EMAIL)
    db = tmp_path / "wipsvc.db"
    env = sheets_server_env(
        credentials,
        sheets,
        database_url=f"sqlite+aiosqlite:///{db}",
        claim_interval_seconds=0.2,
        lease_seconds=5,
        shutdown_grace_seconds=30,
        log_format="json",
        log_level="info",
    )
    log_path = tmp_path / "server.log"
    server = ServerProcess(env, port=free_port(), cwd=tmp_path, log_path=log_path)
    products = shop.products("GS", PRODUCTS)
    received: list[dict[str, Any]] = []
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("wip_job_progress", lambda data: received.append(data))
    try:
        server.start()
        await asyncio.to_thread(server.wait_ready)
        with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client:
            ids = create_sheet_products(client, COLLECTION, spreadsheet_id, products)
            await sio.connect(server.url, transports=["websocket"])
            started = client.post(
                f"/api/{COLLECTION}/wip/process",
                json={"wip_ids": ids},
                headers={"X-Request-ID": "start-the-drain-job"},
            )
            started.raise_for_status()
            assert started.headers["X-Request-ID"] == "start-the-drain-job"
            job_id: str = started.json()["job_id"]
            deadline = time.monotonic() + 60
            while _job(client, job_id)["processed_products"] < 3:
                assert time.monotonic() < deadline, server.log_tail()
                await asyncio.sleep(0.1)
            await asyncio.to_thread(server.stop, 60.0)  # SIGTERM, then waits for the exit
        fetching = +shop.hits  # the pages the stopped instance asked for

        # The client connected to the stopping instance was told before its connection closed.
        paused = [event for event in received if event.get("phase") == "paused"]
        assert len(paused) == 1, received[-3:]
        assert paused[0]["status"] == "processing" and paused[0]["job_status"] == "running"
        assert paused[0]["eta_seconds"] is None and paused[0]["current_product"] is None
        await sio.disconnect()

        # While no instance is up: still running (a seed status), nobody's lease, no stale ETA.
        [(status, owner, lease, eta)] = _query(
            db, "SELECT status, owner, lease_expires_at, eta_seconds FROM wip_jobs WHERE job_id = ?", job_id
        )
        assert (status, owner, lease, eta) == ("running", None, None, None)
        # Every product whose page was asked for finished that step and saved it; no other started.
        for sku, step, item_status in _query(
            db, "SELECT sku, step, status FROM job_items WHERE job_id = ?", job_id
        ):
            if sku in fetching:
                assert item_status in ("running", "succeeded"), (sku, item_status)
                assert item_status == "succeeded" or step is not None, (sku, step)
            else:
                assert item_status == "pending", (sku, item_status)
        assert any(
            item_status == "pending"
            for (item_status,) in _query(db, "SELECT status FROM job_items WHERE job_id = ?", job_id)
        ), "the job ended before the SIGTERM: nothing was left to hand over"

        server.start()
        await asyncio.to_thread(server.wait_ready)
        with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client:
            deadline = time.monotonic() + 120
            while (job := _job(client, job_id))["status"] not in TERMINAL:
                assert time.monotonic() < deadline, server.log_tail()
                await asyncio.sleep(0.2)
        await asyncio.to_thread(server.stop)
    except BaseException:
        print(f"server log:\n{server.log_tail(200)}")
        raise
    finally:
        if sio.connected:
            await sio.disconnect()
        server.kill()

    assert job["status"] == "completed" and job["processed_products"] == PRODUCTS
    assert job["successful_products"] == PRODUCTS
    # No step ran twice: every page was fetched once, and every SKU has exactly one row.
    assert shop.hits == Counter({sku: 1 for sku, _ in products}), shop.hits
    header, *rows = sheets.rows(spreadsheet_id, WORKSHEET)
    assert header == HEADER
    assert sorted(row[column_index(DEFAULT_COLUMNS["sku"])] for row in rows) == sorted(s for s, _ in products)

    # The stored stream: gapless, one start, the hand-over, one event per product, one end.
    events = [
        json.loads(payload)
        for (payload,) in _query(db, "SELECT payload FROM job_events WHERE job_id = ? ORDER BY seq", job_id)
    ]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert [event.get("phase") for event in events if "phase" in event] == ["paused", "resumed"]
    resumed = next(event for event in events if event.get("phase") == "resumed")
    assert resumed["status"] == "processing" and resumed["seq"] == paused[0]["seq"] + 1
    plain = [event["status"] for event in events if "phase" not in event]
    assert plain == ["started"] + ["processing"] * PRODUCTS + ["completed"]

    # The logs: all JSON, uvicorn's lines too; the request and the job named in context.
    entries = _log_entries(log_path)
    assert any(entry["logger"].startswith("uvicorn") for entry in entries)
    assert any(
        entry["logger"] == "wipsvc.access"
        and entry.get("request_id") == "start-the-drain-job"
        and entry.get("collection") == COLLECTION
        for entry in entries
    )
    messages = [entry["message"] for entry in entries]
    assert f"job {job_id} ({COLLECTION}) resumed on" in "\n".join(messages)
    assert any(
        "paused" in entry["message"]
        and entry.get("job_id") == job_id
        and entry.get("collection") == COLLECTION
        for entry in entries
    )
