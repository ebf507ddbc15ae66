"""Crash safety: `wipsvc serve` killed with SIGKILL at random moments of a 100-product job.

Each kill is a real crash of a separate process (no shutdown code runs, no lease is given
back, a transaction is cut wherever it was); each restart must take the job over and
resume its products from their checkpoints. At the end nothing may be lost or doubled:
every product finished exactly once in the ledger and in the results, the Google sheet
(the fake) holds every SKU on exactly one row with its fields, and the stored event
stream is gapless with one `processing` event per product.

The kill moments come from a seeded generator; the seed is in every failure message and
can be replayed with ``WIPSVC_CRASH_SEED=<seed>``.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.sheets import FakeSheets
from tests.support.paced_shop import PacedShop, expected_fields
from tests.support.server_process import TERMINAL, ServerProcess, free_port
from tests.support.sheet_servers import HEADER, WORKSHEET, add_sheet, create_sheet_products, sheets_server_env
from wipsvc.collection import DEFAULT_COLUMNS, column_index

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

COLLECTION = "crash"
SA_EMAIL = "wipsvc-crash@fake-project.iam.gserviceaccount.com"
PRODUCTS = 100
KILLS = 12  # at least 10 must land while the job runs
BROKEN = frozenset({"CR-007", "CR-042", "CR-077"})  # pages without product data: failed, once each
PAGE_LATENCY = (0.3, 0.8)  # seconds per page: 100 products take ~20 s of uptime with 3 workers
MAX_UPTIME = 1.5  # longest a killed instance lives after it answers
# When a kill lands: at a random moment of startup or of work, or just after the fake sheet
# applied an append or a batch write (the windows where a lost checkpoint would double a row
# or an event).
KILL_MOMENTS = ("startup", "random", "random", "after_append", "after_append", "after_write")


@pytest.fixture
def seed() -> int:
    return int(os.environ.get("WIPSVC_CRASH_SEED") or random.randrange(2**32))


@pytest.fixture
def sheets(oauth: FakeGoogleOAuth) -> Iterator[FakeSheets]:
    # Quotas far above what the job needs: this test is about crashes, not 429s.
    with FakeSheets(oauth, read_quota=1_000_000, write_quota=1_000_000) as fake:
        yield fake


@pytest.fixture
def shop(seed: int) -> Iterator[PacedShop]:
    with PacedShop(latency=PAGE_LATENCY, broken=BROKEN, seed=seed) as running:
        yield running


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/{COLLECTION}/wip/jobs/{job_id}")
    response.raise_for_status()
    job: dict[str, Any] = response.json()["job"]
    return job


def _wait_until_terminal(client: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = _job(client, job_id)
        if job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job still {job['status']} ({job['processed_products']} processed)")
        time.sleep(0.2)


def _await_request(sheets: FakeSheets, method: str, timeout: float) -> bool:
    """Wait until the fake records one more ``method`` request (it records after applying it)."""
    seen = sheets.count(method)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sheets.count(method) > seen:
            return True
        time.sleep(0.001)
    return False


def _stored_events(db: Path, job_id: str) -> list[tuple[int, dict[str, Any]]]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT seq, payload FROM job_events WHERE job_id = ? ORDER BY seq", (job_id,)
        ).fetchall()
    return [(int(seq), json.loads(payload)) for seq, payload in rows]


def _ledger(db: Path, job_id: str) -> list[tuple[int, str, int]]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT wip_id, status, attempts FROM job_items WHERE job_id = ? ORDER BY position", (job_id,)
        ).fetchall()
    return [(int(wip_id), str(status), int(attempts)) for wip_id, status, attempts in rows]


def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, seed: int, oauth: FakeGoogleOAuth, sheets: FakeSheets, shop: PacedShop
) -> None:
    rng = random.Random(seed)
    where = f"(WIPSVC_CRASH_SEED={seed})"
    credentials = oauth.write_service_account(tmp_path / "service-account.json", client_email=SA_EMAIL)
    spreadsheet_id = add_sheet(sheets, SA_EMAIL)
    db = tmp_path / "wipsvc.db"
    env = sheets_server_env(
        credentials,
        sheets,
        database_url=f"sqlite+aiosqlite:///{db}",
        claim_interval_seconds=0.2,
        lease_seconds=5,
        # Killed 12 times on purpose, some of them mid-startup: more runs without a finished
        # product than the claim limit allows a job that really keeps dying.
        job_max_claims=KILLS + 1,
        log_level="info",
    )
    server = ServerProcess(env, port=free_port(), cwd=tmp_path, log_path=tmp_path / "server.log")
    products = shop.products("CR", PRODUCTS)
    skus = [sku for sku, _ in products]
    try:
        server.start()
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client:
            ids = create_sheet_products(client, COLLECTION, spreadsheet_id, products)
            started = client.post(f"/api/{COLLECTION}/wip/process", json={"wip_ids": ids})
            started.raise_for_status()
            job_id: str = started.json()["job_id"]

            kills = kills_mid_job = 0
            moments: Counter[str] = Counter()
            deadline = time.monotonic() + 300
            last_status = "queued"
            while kills < KILLS:
                assert time.monotonic() < deadline, f"kill loop took too long {where}"
                moment = rng.choice(KILL_MOMENTS) if server.starts > 1 else "random"
                if moment == "startup":
                    # Mid-startup: schema check, Google session opening, claiming the job.
                    time.sleep(rng.uniform(0.0, 3.0))
                else:
                    server.wait_ready()
                    last_status = _job(client, job_id)["status"]
                    if moment == "random":
                        time.sleep(rng.uniform(0.0, MAX_UPTIME))
                    else:
                        # Right after the fake applied a write, before the instance can checkpoint it.
                        method = "values.append" if moment == "after_append" else "values.batchUpdate"
                        moment += "" if _await_request(sheets, method, timeout=MAX_UPTIME) else " (none)"
                server.kill()
                kills += 1
                kills_mid_job += last_status not in TERMINAL
                moments[moment] += 1
                server.start()
            where += f" kills: {dict(moments)}"

            server.wait_ready()
            job = _wait_until_terminal(client, job_id, timeout=180)
            assert kills_mid_job >= 10, f"only {kills_mid_job} kills landed while the job ran {where}"
            listing = client.get(f"/api/{COLLECTION}/wip", params={"limit": 500}).json()["products"]
        server.stop()
    except BaseException:
        print(f"server log {where}:\n{server.log_tail(200)}")
        raise
    finally:
        server.kill()

    # The job: finished, every product counted once.
    assert job["status"] == "completed" and job["error"] is None, where
    assert job["total_products"] == job["processed_products"] == PRODUCTS, where
    assert job["successful_products"] + job["failed_products"] == job["processed_products"], where
    assert job["failed_products"] == len(BROKEN), (job["failed_products"], where)
    results = {r["wip_id"]: r for r in job["results"]}
    assert sorted(r["wip_id"] for r in job["results"]) == sorted(ids), f"a result missing or doubled {where}"
    sku_of = dict(zip(ids, skus, strict=True))
    for wip_id, result in results.items():
        if sku_of[wip_id] in BROKEN:
            assert (result["status"], result["error_step"]) == ("failed", "extract"), (result, where)
            assert "no product data" in result["error"], (result, where)
        else:
            assert result["status"] == "succeeded" and result["step"] == "complete", (result, where)

    # The ledger: one terminal entry per product; some were resumed after a kill.
    ledger = _ledger(db, job_id)
    assert [wip_id for wip_id, _, _ in ledger] == ids, where
    for wip_id, status, _ in ledger:
        assert status == ("failed" if sku_of[wip_id] in BROKEN else "succeeded"), (wip_id, status, where)
    assert any(attempts > 1 for _, _, attempts in ledger), f"no product was resumed mid-way {where}"

    # The products: ready or in error, none still held by the job.
    by_id = {p["wip_id"]: p for p in listing}
    for wip_id in ids:
        product = by_id[wip_id]
        assert product["status"] == ("error" if sku_of[wip_id] in BROKEN else "ready"), (product, where)
        assert product["active_job_id"] is None, (product, where)

    # The Google sheet: the header, then every SKU on exactly one row, with its fields.
    header, *rows = sheets.rows(spreadsheet_id, WORKSHEET)
    assert header == HEADER
    column = {name: column_index(letter) for name, letter in DEFAULT_COLUMNS.items()}

    def cell(row: list[str], name: str) -> str:
        index = column[name]
        return row[index] if index < len(row) else ""

    counts = Counter(cell(row, "sku") for row in rows)
    doubled = sorted(sku for sku, count in counts.items() if count > 1)
    assert not doubled, f"SKUs on more than one row: {doubled} {where}"
    assert sorted(counts) == sorted(skus), f"rows missing: {sorted(set(skus) - set(counts))} {where}"
    urls = dict(products)
    for row in rows:
        sku = cell(row, "sku")
        assert cell(row, "url") == urls[sku], (row, where)
        if sku in BROKEN:
            assert cell(row, "status") == "" and cell(row, "title") == "", (row, where)
            continue
        for name, value in expected_fields(sku).items():
            assert cell(row, name) == value, (sku, name, row, where)
        assert cell(row, "status") == "ready", (row, where)

    # The stored events: gapless, one start, one `processing` per product, one end; and between
    # them a `resumed` event (a `processing` naming no product) from each instance that took over.
    stored = _stored_events(db, job_id)
    assert [seq for seq, _ in stored] == list(range(1, len(stored) + 1)), f"gap in seq {where}"
    phases = [payload["phase"] for _, payload in stored if "phase" in payload]
    assert phases and set(phases) <= {"paused", "resumed"}, (phases, where)
    assert all(payload["current_product"] is None for _, payload in stored if "phase" in payload), where
    events = [(seq, payload) for seq, payload in stored if "phase" not in payload]
    statuses = [payload["status"] for _, payload in events]
    assert statuses[0] == "started" and statuses.count("started") == 1, (statuses[:3], where)
    assert statuses[-1] == "completed" and sum(s in TERMINAL for s in statuses) == 1, where
    processing = [payload for _, payload in events if payload["status"] == "processing"]
    assert len(events) == PRODUCTS + 2, where
    assert sorted(p["current_product"]["wip_id"] for p in processing) == sorted(ids), where
    assert [p["processed"] for p in processing] == list(range(1, PRODUCTS + 1)), where
    final = events[-1][1]
    assert (final["processed"], final["successful"], final["failed"]) == (
        PRODUCTS,
        PRODUCTS - len(BROKEN),
        len(BROKEN),
    ), where
