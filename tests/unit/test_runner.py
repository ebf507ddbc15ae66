"""The job engine on its own: JobRunner and JobRegistry on a temporary SQLite store, with the
in-memory backends (no HTTP, no Socket.IO): claim order, lease loss, cancel between steps,
the step attempt limit, resume from a checkpoint."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Hashable
from dataclasses import replace

import pytest
import sqlalchemy.exc

from tests.support.leases import lease_of
from tests.support.live import make_settings
from tests.support.memory_backends import Fetcher, Sheet, memory_backends
from wipsvc.adapters.base import Backends, FetchedPage
from wipsvc.adapters.builtin_cleaner import PythonCleaner
from wipsvc.config import Settings
from wipsvc.domain.errors import StepError
from wipsvc.domain.statuses import ItemStatus, JobStatus, WipStatus
from wipsvc.jobs.eta import EtaEstimator
from wipsvc.jobs.events import EventBus
from wipsvc.jobs.registry import JobRegistry
from wipsvc.jobs.runner import JobRunner
from wipsvc.limits import Limits, QuotaBucket
from wipsvc.pipeline.retry import RetryPolicy
from wipsvc.store import JobRecord, ProgressEvent, Store
from wipsvc.store.tables import wip_jobs


async def _no_sleep(_: float) -> None:
    pass


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(sqlite_url)
    yield opened
    await opened.close()


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, workers_per_job=1, product_delay_seconds=0)


class Engine:
    """A bus that keeps every event, and runners over the same in-memory backends."""

    def __init__(self, store: Store, settings: Settings, backends: Backends, attempts: int = 3) -> None:
        self.store, self.settings, self.backends = store, settings, backends
        self.bus = EventBus()
        self.events: list[ProgressEvent] = []
        self.retry = RetryPolicy(max_attempts=attempts, sleep=_no_sleep)

        async def keep(event: ProgressEvent) -> None:
            self.events.append(event)

        self.bus.subscribe(keep)

    def runner(self, job: JobRecord, owner: str) -> JobRunner:
        async def open_backends(_: JobRecord) -> Backends:
            return self.backends

        return JobRunner(
            job,
            store=self.store,
            bus=self.bus,
            settings=self.settings,
            owner=owner,
            open_backends=open_backends,
            retry=self.retry,
        )

    async def claimed(self, owner: str) -> list[JobRecord]:
        return await self.store.jobs.claim(
            owner, lease_seconds=30, per_collection=1, limit=10, take_running=False
        )

    def statuses(self, job_id: str) -> list[str]:
        return [e.payload["status"] for e in self.events if e.job_id == job_id]


async def _products(store: Store, count: int, collection: str = "sinks") -> list[int]:
    await store.collections.ensure(collection)
    prefix = uuid.uuid4().hex[:6]
    return await store.collections.create_products(
        collection, [(f"{prefix}-{i}", f"http://127.0.0.1:9/p/{i}") for i in range(count)]
    )


async def _job(store: Store, count: int, collection: str = "sinks") -> JobRecord:
    return await store.jobs.create(str(uuid.uuid4()), collection, await _products(store, count, collection))


class GatedFetcher(Fetcher):
    """Each fetch waits for the gate: the test decides when a product's page arrives."""

    def __init__(self) -> None:
        super().__init__([])
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def fetch(self, url: str) -> FetchedPage:
        self.waiting.set()
        await self.gate.wait()
        return await super().fetch(url)


async def test_a_job_runs_every_product_and_ends_completed(store: Store, settings: Settings) -> None:
    sheet = Sheet()
    engine = Engine(store, settings, memory_backends(sheet))
    job = await _job(store, 3)
    [claimed] = await engine.claimed("me")
    await engine.runner(claimed, "me").run()

    ended = await store.jobs.get(job.job_id)
    assert ended is not None and ended.status is JobStatus.COMPLETED and ended.successful_products == 3
    assert [r["status"] for r in ended.results] == ["succeeded"] * 3
    assert engine.statuses(job.job_id) == ["started", "processing", "processing", "processing", "completed"]
    assert sheet.appends == 3


async def test_the_step_attempt_setting_bounds_a_failing_product(store: Store, settings: Settings) -> None:
    fetcher = Fetcher([StepError("HTTP 503", transient=True)] * 10)
    engine = Engine(store, settings, memory_backends(fetcher=fetcher), attempts=2)
    job = await _job(store, 1)
    [claimed] = await engine.claimed("me")
    await engine.runner(claimed, "me").run()

    [result] = (await store.jobs.get(job.job_id)).results  # type: ignore[union-attr]
    assert (result["status"], result["error_step"]) == ("failed", "extract")
    assert result["error"] == "HTTP 503 (after 2 attempts)"
    assert fetcher.calls == 2


async def test_a_product_resumes_from_its_checkpoint_without_a_second_row(
    store: Store, settings: Settings
) -> None:
    job = await _job(store, 2)
    first, second = job.wip_ids
    # A previous owner added the first product's row and read its page, then stopped.
    await Engine(store, settings, memory_backends()).claimed("gone")
    gone = lease_of(job.job_id, "gone")
    await store.jobs.mark_started(gone)
    await store.jobs.start_item(gone, first)
    extracted = {"fields": {"title": "Sink"}, "sources": {"title": "json-ld"}, "main_text": ""}
    await store.jobs.checkpoint(
        gone,
        first,
        step="extract",
        checkpoint={"extracted": extracted, "descriptions": None, "attempts": {}, "token_usage": None},
        row_num=7,
        wip_status=WipStatus.GENERATING,
        product_values={"row_num": 7},
    )
    await store.jobs.release(job.job_id, "gone", error="stopped")

    sheet, fetcher = Sheet(), Fetcher([])
    engine = Engine(store, settings, memory_backends(sheet, fetcher))
    [taken] = await engine.claimed("next")
    await engine.runner(taken, "next").run()

    results = {r["wip_id"]: r for r in (await store.jobs.get(job.job_id)).results}  # type: ignore[union-attr]
    assert results[first]["row_num"] == 7 and results[first]["attempts"] == 2
    assert results[second]["status"] == "succeeded"
    assert fetcher.calls == 1  # only the second product's page: the first one's was read already
    assert sheet.appends == 1  # and only its row: the first one kept row 7
    assert engine.statuses(job.job_id)[0] == "processing"  # resumed, not started again


async def test_cancel_between_steps_lets_the_product_in_flight_finish(
    store: Store, settings: Settings
) -> None:
    fetcher = GatedFetcher()
    engine = Engine(store, settings, memory_backends(fetcher=fetcher))
    job = await _job(store, 3)
    [claimed] = await engine.claimed("me")
    runner = engine.runner(claimed, "me")
    running = asyncio.create_task(runner.run())
    await asyncio.wait_for(fetcher.waiting.wait(), 10)
    runner.cancel()  # the first product is in its extract step
    fetcher.gate.set()
    await asyncio.wait_for(running, 10)

    ended = await store.jobs.get(job.job_id)
    assert ended is not None and ended.status is JobStatus.CANCELLED
    assert [r["status"] for r in ended.results] == ["succeeded", "skipped", "skipped"]
    assert engine.statuses(job.job_id)[-1] == "cancelled"


async def test_a_runner_that_loses_its_lease_stops_without_ending_the_job(
    store: Store, settings: Settings
) -> None:
    fetcher = GatedFetcher()
    engine = Engine(store, settings, memory_backends(fetcher=fetcher))
    job = await _job(store, 2)
    [claimed] = await engine.claimed("me")
    running = asyncio.create_task(engine.runner(claimed, "me").run())
    await asyncio.wait_for(fetcher.waiting.wait(), 10)
    async with store.db.write() as conn:  # another instance took the job over
        await conn.execute(wip_jobs.update().where(wip_jobs.c.job_id == job.job_id).values(owner="other"))
    fetcher.gate.set()
    await asyncio.wait_for(running, 10)

    row = await store.jobs.get(job.job_id)
    assert row is not None and row.status is JobStatus.RUNNING and row.owner == "other"
    assert row.processed_products == 0  # the old owner's write of the product was fenced off
    items = await store.jobs.items(job.job_id)
    assert all(item.status is not ItemStatus.SUCCEEDED for item in items)
    assert "completed" not in engine.statuses(job.job_id)


async def test_the_registry_runs_a_collections_jobs_one_at_a_time_in_order(
    store: Store, settings: Settings
) -> None:
    engine = Engine(store, settings, memory_backends())
    started: list[str] = []

    def make_runner(job: JobRecord, owner: str) -> JobRunner:
        started.append(job.job_id)
        return engine.runner(job, owner)

    registry = JobRegistry(store, engine.bus, settings, make_runner, "me")
    await registry.start()
    try:
        jobs = [await registry.submit("sinks", await _products(store, 1)) for _ in range(3)]
        async with asyncio.timeout(20):
            while True:
                rows = [await store.jobs.get(job.job_id) for job in jobs]
                if all(row is not None and row.status is JobStatus.COMPLETED for row in rows):
                    break
                await asyncio.sleep(0.02)
    finally:
        await registry.stop()
    submitted = [job.job_id for job in jobs]
    assert [job_id for job_id in started if job_id in submitted] == submitted
    ends = sorted((row.completed_at, row.job_id) for row in rows if row is not None)
    assert [job_id for _, job_id in ends] == submitted


async def test_the_registry_claims_even_when_it_may_not_end_stalled_sessions(
    store: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(store, settings, memory_backends())

    async def refused() -> list[int]:  # e.g. a stalled session of a role this one may not signal
        raise sqlalchemy.exc.DBAPIError(
            "SELECT pg_terminate_backend(pid)", {}, Exception("permission denied")
        )

    store.stalled_sessions.end = refused  # type: ignore[method-assign]
    registry = JobRegistry(store, engine.bus, settings, engine.runner, "me")
    await registry.start()
    try:
        job = await registry.submit("sinks", await _products(store, 1))
        async with asyncio.timeout(20):
            while (row := await store.jobs.get(job.job_id)) is None or row.status is not JobStatus.COMPLETED:
                await asyncio.sleep(0.02)
    finally:
        await registry.stop()
    assert "could not end stalled database sessions: database error" in caplog.text


class CappedCleaner(PythonCleaner):
    """Runs each product's cleaning through a bucket of one execution at a time, as the Apps
    Script adapter runs its calls through Apps Script's bucket."""

    def __init__(self, bucket: QuotaBucket) -> None:
        super().__init__()
        self.bucket = bucket

    async def run(self, *, row_num: int, sku: str) -> None:
        async with self.bucket.permit():
            await asyncio.sleep(0.01)


async def test_each_products_admission_to_a_capped_resource_reaches_the_eta(
    store: Store, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Apps Script bucket tells the ETA when a product's call gets an execution: each
    product of the job is told once, as its own (the products run at once, in their own tasks),
    while it is in the clean step."""
    told: list[tuple[int, str]] = []

    class Recording(EtaEstimator):
        def call_admitted(self, key: Hashable) -> None:
            running = self._running.get(key)
            told.append((int(str(key)), running.steps[0] if running and running.steps else ""))
            super().call_admitted(key)

    monkeypatch.setattr("wipsvc.jobs.runner.EtaEstimator", Recording)
    bucket = QuotaBucket("apps_script", None, max_concurrent=1)
    limits = replace(Limits.unlimited(), apps_script=bucket)
    backends = replace(memory_backends(), cleaner=CappedCleaner(bucket), limits=limits)
    engine = Engine(store, make_settings(sqlite_url, workers_per_job=3, product_delay_seconds=0), backends)
    job = await _job(store, 3)
    [claimed] = await engine.claimed("me")
    await engine.runner(claimed, "me").run()

    ended = await store.jobs.get(job.job_id)
    assert ended is not None and ended.status is JobStatus.COMPLETED
    assert sorted(told) == sorted((item.wip_id, "clean") for item in await store.jobs.items(job.job_id))
