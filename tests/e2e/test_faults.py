"""Faults of every outside party during a live job, against the fakes.

Sheets 429 storms and 5xx bursts (some answered after the write landed), LLM timeouts and
invalid JSON, Apps Script errors, hostile pages (one that never ends, 50 MB, a redirect
loop, redirects to the cloud metadata address) and a database that is briefly locked or
fails a write. Each test ends the same way: the job finished, the products that had to
fail failed with an error naming the cause, every other product is `ready`, and nothing
is lost or doubled (one result, one ledger entry, one event, one sheet row per product).

No packet leaves loopback: pages are fetched through ``LoopbackOnlyTransport`` with DNS
answers injected by ``static_resolver``, and every vendor is a fake on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy.exc

from tests.fakes import openai_api as llm_behaviour
from tests.support.fault_cloud import COLLECTION, Cloud, cell_of, start_faults_job
from tests.support.live import LiveServer, make_settings, until_processed, wait_for_job
from tests.support.netguard import LocalHttpServer, LoopbackOnlyTransport, is_loopback_ip, static_resolver
from tests.support.paced_shop import PacedShop, expected_fields
from wipsvc.adapters import factory as backends_module
from wipsvc.adapters.llm_client import build_llm_client
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.store.lease import Lease
from wipsvc.store.ledger_batch import ItemCheckpoint, ItemFinish, ItemStart

# sku -> (step it fails at, fragment its error must contain)
Failures = dict[str, tuple[str, str]]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with Cloud(tmp_path) as fakes:
        yield fakes


@pytest.fixture
def paced_shop() -> Iterator[PacedShop]:
    with PacedShop() as shop:
        yield shop


async def _finished_as_expected(
    server: LiveServer,
    client: httpx.AsyncClient,
    job_id: str,
    products: list[tuple[str, str]],
    ids: list[int],
    failures: Failures,
    timeout: float = 60,
) -> dict[str, dict[str, Any]]:
    """The job completed; `failures` failed at their step with their message; the rest is ready;
    one result, one ledger entry and one event per product. Returns the results by SKU."""
    job = await wait_for_job(client, COLLECTION, job_id, timeout=timeout)
    assert job["status"] == "completed" and job["error"] is None, job
    assert job["total_products"] == job["processed_products"] == len(products)
    assert job["failed_products"] == len(failures)
    assert job["successful_products"] == len(products) - len(failures)
    assert sorted(r["wip_id"] for r in job["results"]) == sorted(ids)
    results = {r["sku"]: r for r in job["results"]}
    for sku, _ in products:
        result = results[sku]
        if sku in failures:
            step, fragment = failures[sku]
            assert (result["status"], result["error_step"]) == ("failed", step), result
            assert fragment in result["error"], result
        else:
            assert result["status"] == "succeeded" and result["error"] is None, result
    for wip_id, (sku, _) in zip(ids, products, strict=True):
        product = (await client.get(f"/api/{COLLECTION}/wip/{wip_id}")).json()["product"]
        assert product["status"] == ("error" if sku in failures else "ready"), product
        assert product["active_job_id"] is None
    items = await server.services.store.jobs.items(job_id)
    assert sorted(item.wip_id for item in items) == sorted(ids)
    assert all(item.status.value in ("succeeded", "failed") for item in items)
    stored = await server.services.store.jobs.events_after(job_id, 0)
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    # A job resumed after its runner stopped on an error says so, in an event naming no product.
    handovers = [e.payload for e in stored if "phase" in e.payload]
    assert all(p["phase"] == "resumed" and p["current_product"] is None for p in handovers), handovers
    events = [e for e in stored if "phase" not in e.payload]
    statuses = [e.payload["status"] for e in events]
    assert statuses == ["started"] + ["processing"] * len(products) + ["completed"]
    assert sorted(e.payload["current_product"]["wip_id"] for e in events[1:-1]) == sorted(ids)
    return results


def _check_sheet(cloud: Cloud, products: list[tuple[str, str]], failures: Failures) -> None:
    """Every product that got past its first step has one row; finished ones carry their fields."""
    rows = cloud.rows_by_sku()
    for sku, url in products:
        if failures.get(sku, ("",))[0] == "sheet_row":
            assert sku not in rows
            continue
        row = rows[sku]
        assert cell_of(row, "url") == url
        if sku in failures:
            assert cell_of(row, "status") == ""
        else:
            assert cell_of(row, "status") == "ready"
            assert cell_of(row, "title") == expected_fields(sku)["title"]
            assert cell_of(row, "price") == expected_fields(sku)["price"]


# -- Google Sheets --------------------------------------------------------------------------


async def test_a_429_storm_fails_only_the_product_it_outlasts(
    sqlite_url: str, cloud: Cloud, fetcher: SafeFetcher, paced_shop: PacedShop
) -> None:
    products = paced_shop.products("QS", 5)
    # One worker, so that the storms hit known products; no quota bucket, so each 429 uses one of
    # a step's 3 tries: the first product's append meets 3 429s and gives up; the second
    # product's field write meets 2, fewer than its tries, and gets through.
    cloud.sheets.fail_next(3, 429, method="values.append")
    cloud.sheets.fail_next(2, 429, method="values.batchUpdate")
    settings = cloud.settings(sqlite_url, workers_per_job=1)
    async with (
        LiveServer(
            settings, fetcher=fetcher, google_sheets=cloud.google_sheets(), retry=cloud.retry(settings)
        ) as server,
        server.client() as client,
    ):
        job_id, ids = await start_faults_job(client, cloud.config(), products)
        failures = {"QS-001": ("sheet_row", "Google Sheets quota exceeded (429 RESOURCE_EXHAUSTED)")}
        results = await _finished_as_expected(server, client, job_id, products, ids, failures)
    assert results["QS-001"]["error"].endswith("(429 RESOURCE_EXHAUSTED) (after 3 attempts)")
    assert cloud.sheets.count(status=429) == 5
    # The one backoff: 1, 2 s (the jitter's draw is 1 here) between the tries of each step.
    assert cloud.backoff.delays == [1.0, 2.0, 1.0, 2.0]
    _check_sheet(cloud, products, failures)


async def test_a_429_storm_waits_in_the_paused_bucket_without_using_step_tries(
    sqlite_url: str, cloud: Cloud, fetcher: SafeFetcher, paced_shop: PacedShop
) -> None:
    products = paced_shop.products("QB", 3)
    # The service's own Sheets client, with its quota buckets: a 429 pauses the bucket and the
    # step's next try waits there. Twice as many 429s as a step has tries, and nothing fails.
    cloud.sheets.fail_next(6, 429, method="values.append")
    settings = cloud.settings(sqlite_url, workers_per_job=1, sheets_coalesce=False)
    async with (
        LiveServer(settings, fetcher=fetcher, retry=cloud.retry(settings)) as server,
        server.client() as client,
    ):
        job_id, ids = await start_faults_job(client, cloud.config(), products)
        await _finished_as_expected(server, client, job_id, products, ids, {})
    assert cloud.sheets.count(status=429) == 6
    assert cloud.backoff.delays == []  # the waits were the bucket's pauses, not the step's backoff
    _check_sheet(cloud, products, {})


async def test_a_429_storm_longer_than_the_quota_wait_uses_step_tries(
    sqlite_url: str, cloud: Cloud, fetcher: SafeFetcher, paced_shop: PacedShop
) -> None:
    products = paced_shop.products("QW", 2)
    cloud.sheets.fail_next(50, 429, method="values.append")
    # No quota wait at all: every 429 counts as a try, so the storm fails the first product
    # after its 3 tries (and each of the second's 3 too, until the storm ends).
    settings = cloud.settings(sqlite_url, workers_per_job=1, sheets_coalesce=False, quota_wait_seconds=0)
    async with (
        LiveServer(settings, fetcher=fetcher, retry=cloud.retry(settings)) as server,
        server.client() as client,
    ):
        job_id, ids = await start_faults_job(client, cloud.config(), products)
        failure = ("sheet_row", "Google Sheets quota exceeded (429 RESOURCE_EXHAUSTED)")
        await _finished_as_expected(
            server, client, job_id, products, ids, {sku: failure for sku, _ in products}
        )
    assert cloud.sheets.count(status=429) == 6  # the worst case: 3 requests per product
    _check_sheet(cloud, products, {sku: failure for sku, _ in products})


async def test_5xx_bursts_and_lost_responses_append_each_row_once(
    sqlite_url: str, cloud: Cloud, fetcher: SafeFetcher, paced_shop: PacedShop
) -> None:
    products = paced_shop.products("FX", 6)
    sheets = cloud.sheets
    sheets.fail_next(2, 503, method="spreadsheets.get")  # while the job opens the spreadsheet
    # Appends that Google carried out but whose answer was lost to a 5xx: a blind retry
    # would append the row twice. Each burst is shorter than a step's 3 tries.
    sheets.fail_next(1, 503, method="values.append", after_apply=True)
    sheets.fail_next(1, 500, method="values.append")
    sheets.fail_next(1, 500, method="values.batchUpdate", after_apply=True)
    sheets.fail_next(1, 502, method="values.batchUpdate")
    settings = cloud.settings(sqlite_url, workers_per_job=2)
    async with (
        LiveServer(settings, fetcher=fetcher, google_sheets=cloud.google_sheets()) as server,
        server.client() as client,
    ):
        job_id, ids = await start_faults_job(client, cloud.config(), products)
        await _finished_as_expected(server, client, job_id, products, ids, {})
    # The bursts were met (how many requests they took depends on how writes were batched)…
    assert sheets.count(status=503) == 3 and sheets.count(status=500) == 2 and sheets.count(status=502) == 1
    # …and the appends answered 503 after landing were not appended again: one row per SKU.
    _check_sheet(cloud, products, {})


async def test_a_sheets_outage_at_job_start_is_retried_with_the_job_set_up(
    sqlite_url: str, cloud: Cloud, fetcher: SafeFetcher, paced_shop: PacedShop
) -> None:
    products = paced_shop.products("OP", 3)
    sheets = cloud.sheets
    settings = cloud.settings(sqlite_url, workers_per_job=2)
    # One 503 fewer than the set-up's tries: opening the spreadsheet is retried as a whole.
    sheets.fail_next(settings.step_max_attempts - 1, 503, method="spreadsheets.get")
    async with (
        LiveServer(
            settings, fetcher=fetcher, google_sheets=cloud.google_sheets(), retry=cloud.retry(settings)
        ) as server,
        server.client() as client,
    ):
        job_id, ids = await start_faults_job(client, cloud.config(), products)
        await _finished_as_expected(server, client, job_id, products, ids, {})
    assert sheets.count(status=503) == settings.step_max_attempts - 1
    assert cloud.backoff.delays == [1.0, 2.0]
    _check_sheet(cloud, products, {})


# -- LLM --------------------------------------------------------------------------------------


@pytest.fixture
def short_llm_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The LLM client with a 1 s timeout, so a hung call fails fast."""
    monkeypatch.setattr(backends_module, "build_llm_client", functools.partial(build_llm_client, timeout=1.0))


@pytest.mark.usefixtures("short_llm_timeout")
async def test_llm_timeouts_and_invalid_json(
    sqlite_url: str, cloud: Cloud, fetcher: SafeFetcher, paced_shop: PacedShop
) -> None:
    products = paced_shop.products("LM", 6)
    llm = cloud.llm

    def about(sku: str) -> Callable[[llm_behaviour.RecordedRequest], bool]:
        return lambda request: sku in request.user_text

    llm.when(about("LM-002"), llm_behaviour.delay(2.5))  # hangs every time
    llm.when(about("LM-003"), llm_behaviour.delay(2.5), times=1)  # hangs once, then answers
    llm.when(about("LM-004"), llm_behaviour.invalid_json())  # never valid JSON
    llm.when(about("LM-005"), llm_behaviour.invalid_json(), times=1)  # valid on the second try
    settings = cloud.settings(sqlite_url, llm=True, workers_per_job=2)
    async with (
        LiveServer(settings, fetcher=fetcher, google_sheets=cloud.google_sheets()) as server,
        server.client() as client,
    ):
        job_id, ids = await start_faults_job(client, cloud.config(llm=True), products)
        failures = {
            "LM-002": ("extract", "LLM request timed out"),
            "LM-004": ("extract", "LLM output invalid"),
        }
        results = await _finished_as_expected(server, client, job_id, products, ids, failures)
    assert "(after 3 attempts)" in results["LM-002"]["error"]  # a timeout is worth retrying…
    assert "(after 3 attempts)" in results["LM-004"]["error"]  # …and so is one bad answer
    for sku in ("LM-001", "LM-003", "LM-005", "LM-006"):
        assert results[sku]["generator"] == "llm"
        assert results[sku]["token_usage"]["total_tokens"] > 0
    outcomes = Counter(r.outcome for r in llm.requests)
    assert outcomes["invalid_json"] == 3 + 1 and outcomes["delay"] == 3 + 1
    _check_sheet(cloud, products, failures)


# -- Apps Script -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["apps_script_api", "apps_script_webapp"])
async def test_apps_script_errors_fail_only_their_product(
    sqlite_url: str, cloud: Cloud, fetcher: SafeFetcher, paced_shop: PacedShop, backend: str
) -> None:
    products = paced_shop.products("AS", 5)
    script = cloud.script
    script.fail_sku("AS-002")  # the script throws for this row, every time
    script.http_error_next(503, 2)  # and Google's front end fails twice: retried
    cleaning: dict[str, Any] = {"backend": backend}
    if backend == "apps_script_api":
        cleaning |= {"script_id": script.script_id, "oauth_credentials_file": cloud.authorized_user.name}
    else:
        cleaning |= {"webapp_url": script.webapp_url, "webapp_secret": script.secret}
    settings = cloud.settings(sqlite_url, workers_per_job=2)
    async with (
        LiveServer(settings, fetcher=fetcher, google_sheets=cloud.google_sheets()) as server,
        server.client() as client,
    ):
        job_id, ids = await start_faults_job(client, cloud.config(cleaning=cleaning), products)
        # The web app here is not a Google host: its answer is not quoted, only named.
        fragment = (
            "TypeError: Cannot read properties of undefined (reading 'trim')"
            if backend == "apps_script_api"
            else "HTTP 200, application/json from 127.0.0.1 (not quoted: not a Google host)"
        )
        failures = {"AS-002": ("clean", fragment)}
        results = await _finished_as_expected(server, client, job_id, products, ids, failures)
    assert "Apps Script" in results["AS-002"]["error"]
    if backend == "apps_script_api":
        cleaned = Counter(str(call.parameters[2]) for call in script.api_calls)
    else:
        # The web app records only the calls that got past Google's front end (no 503).
        cleaned = Counter(str(call.body.get("sku")) for call in script.webapp_calls)
        assert cleaned["AS-002"] == 1, "a script error is not worth retrying"
    assert set(cleaned) == {sku for sku, _ in products}
    _check_sheet(cloud, products, failures)


# -- hostile pages -----------------------------------------------------------------------------


@pytest.fixture
def pages() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as server:
        yield server


@pytest.fixture
async def guarded_fetcher(pages: LocalHttpServer) -> AsyncIterator[tuple[SafeFetcher, LoopbackOnlyTransport]]:
    """The real scraper with injected DNS answers, behind a transport that refuses all but loopback."""
    guard = LoopbackOnlyTransport()
    resolver = static_resolver(
        {
            "shop.test": ["127.0.0.1"],
            "metadata.test": ["169.254.169.254"],  # a name for the cloud metadata service
            "rebind.test": ["127.0.0.1", "169.254.169.254"],  # one good answer does not excuse a bad one
        }
    )
    fetcher = SafeFetcher(
        timeout=1.0,
        max_bytes=1_000_000,
        max_redirects=5,
        allowed_hosts=["127.0.0.1"],
        user_agent="wipsvc-faults",
        resolver=resolver,
        transport=guard,
    )
    yield fetcher, guard
    await fetcher.aclose()
    assert guard.violations == []
    assert all(is_loopback_ip(request.url.host) for request in guard.requests)


async def test_hostile_pages_fail_their_product_and_nothing_leaves_loopback(
    sqlite_url: str,
    cloud: Cloud,
    pages: LocalHttpServer,
    guarded_fetcher: tuple[SafeFetcher, LoopbackOnlyTransport],
) -> None:
    fetcher, guard = guarded_fetcher
    port = pages.port
    products = [
        ("HP-GOOD", f"http://shop.test:{port}/product?sku=HP-GOOD"),
        ("HP-CHAIN", pages.url("/chain?left=3")),
        ("HP-TRICKLE", pages.url("/trickle")),  # headers, then a byte every 50 ms, forever
        ("HP-HUGE", pages.url("/big-stream?size=50000000")),  # 50 MB, no Content-Length
        ("HP-LOOP", pages.url("/loop/a")),
        ("HP-META", pages.url("/redirect?to=http://169.254.169.254/latest/meta-data/")),
        ("HP-META-NAME", pages.url("/redirect?to=http://metadata.test/latest/meta-data/")),
        ("HP-REBIND", f"http://rebind.test:{port}/product"),
    ]
    failures = {
        "HP-TRICKLE": ("extract", "timed out after 1.0 s fetching"),
        "HP-HUGE": ("extract", "page too large: more than 1000000 bytes"),
        "HP-LOOP": ("extract", "redirect loop at"),
        "HP-META": ("extract", "169.254.169.254 is a cloud metadata address"),
        "HP-META-NAME": ("extract", "metadata.test resolves to 169.254.169.254, a cloud metadata address"),
        "HP-REBIND": ("extract", "rebind.test resolves to 169.254.169.254, a cloud metadata address"),
    }
    settings = cloud.settings(sqlite_url, workers_per_job=3)
    async with (
        LiveServer(settings, fetcher=fetcher, google_sheets=cloud.google_sheets()) as server,
        server.client() as client,
    ):
        job_id, ids = await start_faults_job(client, cloud.config(), products)
        results = await _finished_as_expected(server, client, job_id, products, ids, failures)
    assert "(after 3 attempts)" in results["HP-TRICKLE"]["error"]  # a slow site may recover: retried
    assert results["HP-HUGE"]["attempts"] == 1
    assert not [r for r in pages.requests if r.path.startswith("/latest")]
    assert guard.requests, "the guard saw the page requests"
    rows = cloud.rows_by_sku()
    assert sorted(rows) == sorted(sku for sku, _ in products)
    assert cell_of(rows["HP-GOOD"], "title") == "Oak Chair" and cell_of(rows["HP-GOOD"], "status") == "ready"


# -- the database ------------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite+aiosqlite:///"))


def _lock(path: Path) -> sqlite3.Connection:
    """Another process's view: take SQLite's write lock and change something under it."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("UPDATE collections SET updated_at = updated_at")
    return conn


def _unlock(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")
    conn.close()


async def _local_sheet_skus(client: httpx.AsyncClient) -> list[str]:
    """The SKU column of the embedded sheet, sorted (duplicates kept, so that they show)."""
    text = (await client.get(f"/api/collections/{COLLECTION}/sheet.csv")).text
    return sorted(row[0] for row in list(csv.reader(io.StringIO(text)))[1:])


async def test_a_briefly_locked_database_delays_the_job_but_loses_nothing(
    sqlite_url: str, fetcher: SafeFetcher
) -> None:
    with PacedShop(latency=(0.02, 0.08)) as shop:
        products = shop.products("DB", 16)
        extra = shop.products("DBX", 1)
        settings = make_settings(sqlite_url, workers_per_job=3)
        async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
            job_id, ids = await start_faults_job(client, {}, products)
            queued_sku, queued_url = extra[0]
            created = await client.post(
                f"/api/{COLLECTION}/wip", json={"products": [{"sku": queued_sku, "url": queued_url}]}
            )
            queued_id = created.json()["wip_ids"][0]
            await until_processed(client, COLLECTION, job_id, 3)
            # The local sheet lives in the same database: appends and field writes wait too.
            conn = await asyncio.to_thread(_lock, _sqlite_path(sqlite_url))
            try:
                # Write requests arriving meanwhile wait for the lock rather than failing.
                write = asyncio.create_task(
                    client.post(
                        f"/api/{COLLECTION}/wip", json={"products": [{"sku": "DBX-LATE", "url": queued_url}]}
                    )
                )
                process = asyncio.create_task(
                    client.post(f"/api/{COLLECTION}/wip/process", json={"wip_ids": [queued_id]})
                )
                # Readers are not blocked (WAL): the job's status still answers.
                status = await client.get(f"/api/{COLLECTION}/wip/jobs/{job_id}")
                assert status.status_code == 200
                await asyncio.sleep(1.5)
                assert not write.done(), "the write should be waiting for the lock"
            finally:
                await asyncio.to_thread(_unlock, conn)
            assert (await write).status_code == 201
            answer = await process
            assert answer.status_code == 202, answer.text
            await _finished_as_expected(server, client, job_id, products, ids, {})
            second = await wait_for_job(client, COLLECTION, answer.json()["job_id"])
            assert second["status"] == "completed" and second["successful_products"] == 1
            assert await _local_sheet_skus(client) == sorted(sku for sku, _ in [*products, *extra])


def _database_locked() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError(
        "UPDATE wip_jobs …", {}, sqlite3.OperationalError("database is locked")
    )


def _fail_once(
    target: Callable[..., Awaitable[Any]], *, on_call: int, failures: list[str]
) -> Callable[..., Awaitable[Any]]:
    """``target``, except that its ``on_call``-th call fails as SQLite does when it stays locked."""
    calls = 0

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == on_call:
            failures.append(target.__name__)
            raise _database_locked()
        return await target(*args, **kwargs)

    return wrapper


# A running job's products write through batches (many products in one transaction): a batch
# fails as a whole, and every product whose write it held stops with it.
_BATCHED = {"start_item": ItemStart, "checkpoint": ItemCheckpoint, "finish_item": ItemFinish}


def _fail_batch_once(
    target: Callable[..., Awaitable[Any]], kind: str, *, on_call: int, failures: list[str]
) -> Callable[..., Awaitable[Any]]:
    """``target`` (``write_batch``), except that the ``on_call``-th batch holding a write of
    ``kind`` fails as SQLite does when it stays locked."""
    calls = 0

    async def wrapper(lease: Lease, writes: Sequence[Any]) -> Any:
        nonlocal calls
        if any(isinstance(write, _BATCHED[kind]) for write in writes):
            calls += 1
            if calls == on_call:
                failures.append(kind)
                raise _database_locked()
        return await target(lease, writes)

    return wrapper


@pytest.mark.parametrize(
    "method", ["mark_started", "start_item", "checkpoint", "finish_item", "heartbeat", "finish"]
)
async def test_a_failed_database_write_in_a_runner_resumes_the_job(
    sqlite_url: str, fetcher: SafeFetcher, method: str
) -> None:
    with PacedShop(latency=(0.05, 0.1)) as shop:
        products = shop.products("RW", 8)
        # A short lease, so that the heartbeat runs several times during the job.
        settings = make_settings(sqlite_url, workers_per_job=2, lease_seconds=0.6)
        async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
            jobs = server.services.store.jobs
            failed: list[str] = []
            # A runner's first heartbeat comes before it records the job's start: fail one made
            # while the job runs (the first one is like a failed mark_started).
            on_call = {"start_item": 3, "checkpoint": 6, "finish_item": 2, "heartbeat": 2}.get(method, 1)
            if method in _BATCHED:
                jobs.write_batch = _fail_batch_once(  # type: ignore[method-assign,assignment]
                    jobs.write_batch, method, on_call=on_call, failures=failed
                )
            else:
                setattr(jobs, method, _fail_once(getattr(jobs, method), on_call=on_call, failures=failed))
            job_id, ids = await start_faults_job(client, {}, products)
            await _finished_as_expected(server, client, job_id, products, ids, {})
            assert failed == [method]
            if method != "mark_started":  # a job whose start was never recorded just starts
                phases = [e.payload.get("phase") for e in await jobs.events_after(job_id, 0)]
                assert "resumed" in phases, phases
            job = (await client.get(f"/api/{COLLECTION}/wip/jobs/{job_id}")).json()["job"]
            if method in ("checkpoint", "finish_item"):
                # The runner died with this product in flight; a new runner resumed it.
                assert any(r["attempts"] > 1 for r in job["results"]), job["results"]
            assert await _local_sheet_skus(client) == sorted(sku for sku, _ in products)
