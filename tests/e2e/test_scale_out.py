"""Scale-out: three `wipsvc serve` processes on one PostgreSQL and one Redis act as one service.

They run the jobs of three collections (two jobs each) between them; one instance is killed
(SIGKILL) mid-job; its job is taken over within the lease plus a claim interval, every product is
processed once (one finish in the ledger, one `processing` event, one sheet row per SKU), every
job's events are gapless, and a Socket.IO client of one instance receives the events of every
job of its key's collections (and none of the others), whichever instance ran it. (A cancel
across instances: `test_cancel_across_instances.py`.)

Bounded: a 3 s lease and a 0.3 s claim interval, six jobs of eight products.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.sheets import FakeSheets
from tests.support.cluster import FAILOVER_SETTINGS, REDIS_URL, Cluster, ClusterDatabase
from tests.support.cluster_checks import (
    check_ledger_and_events,
    check_sheet,
    ended_job,
    instance_client,
    submit_job,
    wait_until,
)
from tests.support.paced_shop import PacedShop
from tests.support.server_process import TERMINAL, server_env
from tests.support.sheet_servers import HEADER
from wipsvc.auth import create_key
from wipsvc.store import Store

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(300)]

SA_EMAIL = "wipsvc-scale@fake-project.iam.gserviceaccount.com"
WORKSHEET = "Sheet1"
COLLECTIONS = ("north", "south", "east")
WATCHED = {"north", "south"}  # the collections of the Socket.IO client's key
JOBS_PER_COLLECTION = 2
PRODUCTS = 8
WORKERS = 2  # per job
LEASE = 3.0
CLAIM_INTERVAL = 0.3
TAKEOVER_SLACK = 1.5  # scheduling allowance on a shared 2-core machine


@pytest.fixture
def sheets(oauth: FakeGoogleOAuth) -> Iterator[FakeSheets]:
    with FakeSheets(oauth, read_quota=1_000_000, write_quota=1_000_000) as fake:
        yield fake


@pytest.fixture
def paced_shop() -> Iterator[PacedShop]:
    with PacedShop(latency=(0.2, 0.6), seed=14) as running:
        yield running


class EventLog:
    """What a Socket.IO client of one instance received, per job."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient()
        self.by_job: dict[str, list[dict[str, Any]]] = {}
        self.sio.on("wip_job_progress", self._received)

    async def _received(self, payload: dict[str, Any]) -> None:
        self.by_job.setdefault(str(payload["job_id"]), []).append(payload)

    def seqs(self, job_id: str) -> list[int]:
        return sorted(int(event["seq"]) for event in self.by_job.get(job_id, []))


async def test_three_instances_share_jobs_survive_a_kill_and_relay_every_event(
    tmp_path: Path, postgres_url: str, oauth: FakeGoogleOAuth, sheets: FakeSheets, paced_shop: PacedShop
) -> None:
    credentials = oauth.write_service_account(tmp_path / "service-account.json", client_email=SA_EMAIL)
    env = server_env(
        database_url=postgres_url,
        redis_url=REDIS_URL,
        scrape_allowed_hosts="127.0.0.1",
        sheets_api_url=sheets.url,
        google_credentials_file=credentials,
        workers_per_job=WORKERS,
        max_running_jobs=2,  # the survivors always have room for a job taken over ("a": 1, below)
        jobs_per_collection=1,
        sheets_write_per_minute=1_000_000,
        sheets_read_per_minute=1_000_000,
        lease_seconds=LEASE,
        claim_interval_seconds=CLAIM_INTERVAL,
        **FAILOVER_SETTINGS,
    )
    # Keys exist: an admin key drives the API; the Socket.IO client's key sees two collections.
    store = await Store.open(postgres_url)
    try:
        admin = (await create_key(store.keys, None, is_admin=True)).key
        watcher = (await create_key(store.keys, sorted(WATCHED))).key
    finally:
        await store.close()
    # "a" runs one job at a time: the two watched collections' jobs run at once (a job per
    # collection at a time), so one of them is always on b or c, where the kill falls. Otherwise
    # "a", claiming its collection's next job the moment it ends its last, could run all of them.
    cluster = Cluster(["a", "b", "c"], env, tmp_path, overrides={"a": {"WIPSVC_MAX_RUNNING_JOBS": "1"}})
    events = EventLog()
    try:
        with cluster:
            async with ClusterDatabase(postgres_url) as db:
                await events.sio.connect(
                    cluster["a"].url, transports=["websocket"], auth={"api_key": watcher}
                )
                try:
                    await _run_and_kill(cluster, db, postgres_url, sheets, paced_shop, events, admin)
                finally:
                    await events.sio.disconnect()
    except BaseException:
        print(cluster.log_tails(120))
        raise


async def _run_and_kill(
    cluster: Cluster,
    db: ClusterDatabase,
    database_url: str,
    sheets: FakeSheets,
    shop: PacedShop,
    events: EventLog,
    key: str,
) -> None:
    names = list(cluster.servers)
    jobs: dict[str, tuple[str, list[int]]] = {}  # job id -> (collection, wip ids)
    products: dict[str, list[tuple[str, str]]] = {}
    spreadsheets: dict[str, str] = {}
    for number, collection in enumerate(COLLECTIONS):
        spreadsheets[collection] = sheets.add_spreadsheet(worksheets=[WORKSHEET], shared_with=[SA_EMAIL])
        sheets.set_rows(spreadsheets[collection], WORKSHEET, [HEADER])
        async with instance_client(cluster[names[number]], key) as client:
            config = {
                "sheet": {
                    "backend": "google",
                    "spreadsheet_id": spreadsheets[collection],
                    "worksheet": WORKSHEET,
                },
                "cleaning": {"backend": "python"},
                "llm": {"enabled": False},
            }
            (await client.put(f"/api/collections/{collection}", json=config)).raise_for_status()
    # Submitted through every instance in turn.
    for round_ in range(JOBS_PER_COLLECTION):
        for number, collection in enumerate(COLLECTIONS):
            batch = shop.products(f"{collection.upper()}{round_}", PRODUCTS)
            products.setdefault(collection, []).extend(batch)
            async with instance_client(cluster[names[(number + round_) % len(names)]], key) as client:
                job_id, ids = await submit_job(client, collection, batch)
            jobs[job_id] = (collection, ids)

    owners_seen: dict[str, set[str]] = {job_id: set() for job_id in jobs}
    watch = asyncio.create_task(_watch_owners(database_url, owners_seen))
    try:
        taken = await _kill_and_wait(cluster, db, jobs, key)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    ran_jobs = set().union(*owners_seen.values())
    assert len(ran_jobs) >= 2, f"every job ran on {ran_jobs}"
    assert all(owners_seen.values()), f"jobs never seen owned: {owners_seen}"

    for job_id, (_, ids) in jobs.items():
        await check_ledger_and_events(db, job_id, ids, where=f"(job {job_id})")
    for collection in COLLECTIONS:
        check_sheet(sheets.rows(spreadsheets[collection], WORKSHEET), products[collection], f"({collection})")
    await _check_relayed(db, events, jobs, taken)


async def _watch_owners(database_url: str, seen: dict[str, set[str]]) -> None:
    """Record every instance that owns each job, until cancelled (a job's owner is cleared when
    it ends, so it is watched while the jobs run)."""
    async with ClusterDatabase(database_url) as db:
        while True:
            for job_id, owners in seen.items():
                owner = await db.owner(job_id)
                if owner is not None:
                    owners.add(owner)
            await asyncio.sleep(0.05)


async def _kill_and_wait(
    cluster: Cluster, db: ClusterDatabase, jobs: dict[str, tuple[str, list[int]]], key: str
) -> dict[str, int]:
    """Kill an instance mid-job, check the take-over of its jobs, wait until every job has ended;
    the jobs it held, each with the last `seq` it had stored."""
    victim, taken = await _kill_an_owner_mid_job(cluster, db, jobs, key)
    killed_at = time.monotonic()
    for job_id in taken:

        async def new_owner(job_id: str = job_id) -> str | None:
            owner = await db.owner(job_id)
            status = await db.status(job_id)
            return owner if owner not in (None, victim) or status in TERMINAL else None

        await wait_until(new_owner, where=f"job {job_id} never taken over", timeout=LEASE * 4)
        takeover = time.monotonic() - killed_at
        assert takeover <= LEASE + CLAIM_INTERVAL + TAKEOVER_SLACK, (
            f"job {job_id} taken over after {takeover:.2f} s"
        )
        print(f"{victim} killed; its job {job_id} taken over after {takeover:.2f} s")

    async with instance_client(cluster["a"], key) as client:
        for job_id, (collection, ids) in jobs.items():
            job = await wait_until(
                functools.partial(ended_job, client, collection, job_id),
                where=f"job {job_id} never ended",
                timeout=120,
            )
            assert job["status"] == "completed", (job_id, job["status"], job["error"])
            assert job["processed_products"] == job["successful_products"] == len(ids), job_id
    return taken


async def _kill_an_owner_mid_job(
    cluster: Cluster,
    db: ClusterDatabase,
    jobs: dict[str, tuple[str, list[int]]],
    key: str,
) -> tuple[str, dict[str, int]]:
    """SIGKILL an instance other than "a" (where the Socket.IO client is) while it runs a job of
    the client's collections that has products left; the jobs it held then, each with the last
    `seq` stored."""
    async with instance_client(cluster["a"], key) as client:

        async def running_elsewhere() -> str | None:
            for job_id, (collection, _) in jobs.items():
                owner = await db.owner(job_id)
                if owner in (None, "a") or collection not in WATCHED:
                    continue
                job = (await client.get(f"/api/{collection}/wip/jobs/{job_id}")).json()["job"]
                if job["status"] == "running" and 2 <= job["processed_products"] <= PRODUCTS - 4:
                    return owner
            return None

        victim: str = await wait_until(running_elsewhere, where="no job ran on b or c", timeout=60)
    cluster[victim].kill()
    taken = {
        job_id: len(await db.events(job_id))
        for job_id in jobs
        if await db.owner(job_id) == victim and await db.status(job_id) == "running"
    }
    assert taken, f"{victim} was killed with no job running"
    return victim, taken


async def _check_relayed(
    db: ClusterDatabase, events: EventLog, jobs: dict[str, tuple[str, list[int]]], taken: dict[str, int]
) -> None:
    """The client of "a" received every stored event of every job of its key's collections live,
    and none of the others'. An event the killed instance had stored but not yet sent (one per
    worker at most) died with it (broadcast is at most once): for its jobs, the client asks for a
    replay (`subscribe`), as a client re-syncs by `seq`."""
    relayed_from_victim = 0
    for job_id, (collection, _) in jobs.items():
        stored = [seq for seq, _ in await db.events(job_id)]
        assert stored == list(range(1, len(stored) + 1)), f"gap in the stored events of {job_id}"
        if collection not in WATCHED:
            continue
        if job_id in taken:
            # What the killed instance ran of this job came to "a"'s client through Redis.
            live = set(events.seqs(job_id)) & set(range(1, taken[job_id] + 1))
            # A job the victim had only just started (its second) may have sent nothing yet.
            assert len(live) >= taken[job_id] - WORKERS, (job_id, taken[job_id], sorted(live))
            relayed_from_victim += len(live)
            ack = await events.sio.call("subscribe", {"job_id": job_id, "after_seq": 0}, timeout=10)
            assert ack["ok"] and not ack["more"], ack

        async def all_received(job_id: str = job_id, count: int = len(stored)) -> bool:
            return set(events.seqs(job_id)) == set(range(1, count + 1))

        where = f"job {job_id}: stored 1..{len(stored)}, received {events.seqs(job_id)}"
        await wait_until(all_received, where=where, timeout=10)
        if job_id not in taken:
            assert events.seqs(job_id) == stored, f"job {job_id}: an event arrived twice"
    # The job killed mid-way (two products or more done) had events relayed from the victim.
    assert relayed_from_victim >= 1, taken
    # Checked last: by now every event of every job has long been sent.
    unwatched = {job_id for job_id, (collection, _) in jobs.items() if collection not in WATCHED}
    assert not unwatched & set(events.by_job), "events of a collection the key does not name"
