"""A paused owner must not write again: three instances, the owner frozen past its lease.

Three `wipsvc serve` processes share one PostgreSQL and one Redis. In each trial a job runs on one
of them; the test freezes that instance with SIGSTOP (a long GC pause, a frozen VM) at a chosen
moment of the job, waits until another instance has taken the job over, and lets the frozen one
carry on (SIGCONT) at a chosen moment after that. Whatever the frozen instance had queued or
half-done must not reach the sheet or the database: in the end no SKU has two live rows in the
Google sheet (the fake), every product has one row with its fields, one finish in the ledger and
one `processing` event, and the take-over came within the lease plus a claim interval.

Bounded: a 3 s lease, a 0.3 s claim interval, 15 products a job, five trials.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.sheets import FakeSheets
from tests.support.cluster import FAILOVER_SETTINGS, REDIS_URL, Cluster, ClusterDatabase
from tests.support.cluster_checks import check_ledger_and_events, check_sheet, poll_until, submit_job
from tests.support.paced_shop import PacedShop
from tests.support.server_process import TERMINAL
from tests.support.sheet_servers import WORKSHEET, add_sheet, sheets_server_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

SA_EMAIL = "wipsvc-fence@fake-project.iam.gserviceaccount.com"
PRODUCTS = 15
LEASE = 3.0
CLAIM_INTERVAL = 0.3
APPEND_LATENCY = 0.4
# Scheduling allowance on a shared 2-core machine on top of "lease + claim interval".
TAKEOVER_SLACK = 1.5
# What a resumed instance logs when it finds its job gone: its lease lost, or its database
# sessions ended by the server while it was frozen.
STOPPED = ("was taken over by another instance", "stopped on an error; it will be resumed")


@dataclass(frozen=True)
class Trial:
    pause_at: str  # "start", "append_in_flight", "after_write" or "processed:<n>"
    resume_after: float | None  # seconds after the take-over; None: once the job has ended


TRIALS = [
    Trial("start", 0.0),
    Trial("append_in_flight", 0.5),
    Trial("after_write", 1.0),
    # At most PRODUCTS - 2 x workers: the last products finish almost together, and the job
    # must still be running when its owner freezes.
    Trial("processed:5", None),
    Trial("processed:9", 0.2),
]


@pytest.fixture
def sheets(oauth: FakeGoogleOAuth) -> Iterator[FakeSheets]:
    with FakeSheets(oauth, read_quota=1_000_000, write_quota=1_000_000) as fake:
        # Appends take a while, so that a paused owner has one on the wire and others queued.
        fake.latency_by_method["values.append"] = APPEND_LATENCY
        yield fake


@pytest.fixture
def paced_shop() -> Iterator[PacedShop]:
    with PacedShop(latency=(0.3, 0.8), seed=15) as running:
        yield running


async def test_a_paused_owner_never_writes_after_its_job_is_taken_over(
    tmp_path: Path, postgres_url: str, oauth: FakeGoogleOAuth, sheets: FakeSheets, paced_shop: PacedShop
) -> None:
    credentials = oauth.write_service_account(tmp_path / "service-account.json", client_email=SA_EMAIL)
    env = sheets_server_env(
        credentials,
        sheets,
        database_url=postgres_url,
        redis_url=REDIS_URL,
        lease_seconds=LEASE,
        claim_interval_seconds=CLAIM_INTERVAL,
        **FAILOVER_SETTINGS,
    )
    cluster = Cluster(["a", "b", "c"], env, tmp_path)
    figures: list[str] = []
    sessions: list[str] = []  # the database sessions, looked at while a take-over is late
    try:
        with cluster:
            async with ClusterDatabase(postgres_url) as db:
                for number, trial in enumerate(TRIALS):
                    figures.append(await _run_trial(number, trial, cluster, db, sheets, paced_shop, sessions))
    except BaseException:
        print("\n".join(figures))
        print("\n".join(sessions))
        print(cluster.log_tails(120))
        raise
    cleared = sum(cluster.log_count(name, "cleared doubled sheet rows") for name in cluster.servers)
    figures.append(f"clean-ups of doubled rows: {cleared}")
    stalled = sum(cluster.log_count(name, "stalled mid-statement: pids") for name in cluster.servers)
    figures.append(f"rounds that ended a frozen owner's session stalled mid-statement: {stalled}")
    print("\n".join(figures))


async def _run_trial(
    number: int,
    trial: Trial,
    cluster: Cluster,
    db: ClusterDatabase,
    sheets: FakeSheets,
    shop: PacedShop,
    sessions: list[str],
) -> str:
    where = f"(trial {number}: {trial})"
    collection = f"fence-{number}"
    spreadsheet_id = add_sheet(sheets, SA_EMAIL)
    products = shop.products(f"F{number}", PRODUCTS)
    api = cluster["a"] if not cluster["a"].paused else cluster.other_than("a")
    async with httpx.AsyncClient(base_url=api.url, timeout=10, trust_env=False) as client:
        config = {
            "sheet": {"backend": "google", "spreadsheet_id": spreadsheet_id, "worksheet": WORKSHEET},
            "cleaning": {"backend": "python"},
            "llm": {"enabled": False},
        }
        (await client.put(f"/api/collections/{collection}", json=config)).raise_for_status()
        job_id, ids = await submit_job(client, collection, products)

        owner = await poll_until(lambda: db.owner(job_id), where=f"no owner {where}")
        writes = sheets.count("values.batchUpdate")
        if trial.pause_at == "append_in_flight":
            await _until_true(lambda: _true(sheets.in_flight > 0), where)
        elif trial.pause_at == "after_write":
            await _until_true(lambda: _true(sheets.count("values.batchUpdate") > writes), where)
        elif trial.pause_at.startswith("processed:"):
            count = int(trial.pause_at.partition(":")[2])
            await _until_true(lambda: _processed(client, collection, job_id, count), where)
        paused = cluster[owner]
        stopped_before = _stopped(cluster, owner, job_id)
        paused.pause()
        paused_at = time.monotonic()
        assert await db.status(job_id) == "running", f"the job ended before its owner froze {where}"

        next_look = paused_at + LEASE + CLAIM_INTERVAL

        async def new_owner() -> str | None:
            nonlocal next_look
            current = await db.owner(job_id)
            if current not in (None, owner):
                return current
            if time.monotonic() >= next_look:  # late: what holds the job?
                late = time.monotonic() - paused_at
                looked = await db.sessions(cluster.database_ports())
                sessions.append(f"{where} not taken over after {late:.2f} s, owner {current}:\n{looked}")
                next_look = time.monotonic() + 0.5
            return None

        taker = await poll_until(new_owner, where=f"never taken over {where}", timeout=LEASE * 4)
        takeover = time.monotonic() - paused_at

        other = cluster.other_than(owner)
        async with httpx.AsyncClient(base_url=other.url, timeout=10, trust_env=False) as live:
            if trial.resume_after is not None:
                await asyncio.sleep(trial.resume_after)
            else:
                await _until_true(lambda: _ended(live, collection, job_id), where, timeout=60)
            paused.resume()
            await _until_true(lambda: _ended(live, collection, job_id), where, timeout=60)
            # The resumed instance notices it lost the job; only then is the sheet final.
            await _until_true(
                lambda: _true(_stopped(cluster, owner, job_id) > stopped_before), where, timeout=20
            )
            job = (await live.get(f"/api/{collection}/wip/jobs/{job_id}")).json()["job"]

    assert takeover <= LEASE + CLAIM_INTERVAL + TAKEOVER_SLACK, f"take-over after {takeover:.2f} s {where}"
    _check_job(job, ids, where)
    await check_ledger_and_events(db, job_id, ids, where)
    check_sheet(sheets.rows(spreadsheet_id, WORKSHEET), products, where)
    return (
        f"trial {number}: paused {owner} at {trial.pause_at}, taken over by {taker} after "
        f"{takeover:.2f} s (lease {LEASE} s + claim interval {CLAIM_INTERVAL} s)"
    )


def _check_job(job: dict[str, Any], ids: list[int], where: str) -> None:
    assert job["status"] == "completed", (job["status"], job["error"], where)
    assert job["total_products"] == job["processed_products"] == job["successful_products"] == PRODUCTS, where
    assert sorted(r["wip_id"] for r in job["results"]) == sorted(ids), where


async def _until_true(probe: Any, where: str, *, timeout: float = 30.0) -> None:
    try:
        await poll_until(probe, where=where, timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting {where}") from None


def _stopped(cluster: Cluster, name: str, job_id: str) -> int:
    return sum(cluster.log_count(name, f"job {job_id} {message}") for message in STOPPED)


async def _true(value: bool) -> bool:
    return value


async def _processed(client: httpx.AsyncClient, collection: str, job_id: str, count: int) -> bool:
    job = (await client.get(f"/api/{collection}/wip/jobs/{job_id}")).json()["job"]
    return int(job["processed_products"]) >= count


async def _ended(client: httpx.AsyncClient, collection: str, job_id: str) -> bool:
    job = (await client.get(f"/api/{collection}/wip/jobs/{job_id}")).json()["job"]
    return job["status"] in TERMINAL
