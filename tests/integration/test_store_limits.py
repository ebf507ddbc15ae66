"""The store on SQLite and PostgreSQL: a job's claim limit, cancel of an unheld job, outside
text cleaned before storage, and migration 0004 (admin keys, credential names, clean settings)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from tests.support.leases import lease_of
from wipsvc.domain.statuses import JobStatus, WipStatus
from wipsvc.store import Store
from wipsvc.store.engine import _alembic_config, create_engine
from wipsvc.store.tables import collections, job_items, utcnow, wip_jobs


async def _job(store: Store, count: int = 2) -> tuple[str, list[int]]:
    await store.collections.ensure("sinks")
    prefix = uuid.uuid4().hex[:6]
    ids = await store.collections.create_products(
        "sinks", [(f"{prefix}-{i}", f"https://shop.example/{i}") for i in range(count)]
    )
    job = await store.jobs.create(str(uuid.uuid4()), "sinks", ids)
    return job.job_id, ids


async def _claim(store: Store, owner: str) -> list[str]:
    claimed = await store.jobs.claim(owner, lease_seconds=30, per_collection=5, limit=5, take_running=False)
    return [job.job_id for job in claimed]


async def test_a_job_that_keeps_dying_without_progress_ends_failed(store: Store) -> None:
    job_id, ids = await _job(store)
    for run in range(3):
        assert await store.jobs.end_abandoned(max_claims=3) == []
        assert await _claim(store, f"run-{run}") == [job_id]
        await store.jobs.release(job_id, f"run-{run}", error="RuntimeError: the runner \x00 died")
    [event] = await store.jobs.end_abandoned(max_claims=3)
    job = await store.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error == "gave up after 3 runs with no product finished: RuntimeError: the runner  died"
    assert event.payload["status"] == "failed"
    products = await store.collections.get_products("sinks", ids)
    assert all(p.active_job_id is None and p.status is WipStatus.PENDING for p in products.values())


async def test_progress_and_graceful_releases_do_not_count_towards_the_limit(store: Store) -> None:
    job_id, ids = await _job(store)
    for run in range(5):  # shut down gracefully again and again: never given up
        assert await _claim(store, f"run-{run}") == [job_id]
        await store.jobs.release(job_id, f"run-{run}")
        assert await store.jobs.end_abandoned(max_claims=2) == []
    for run in range(3):  # each run finishes a product before it dies: still going
        assert await _claim(store, f"dying-{run}") == [job_id]
        if run < len(ids):
            await store.jobs.start_item(lease_of(job_id, f"dying-{run}"), ids[run])
            await store.jobs.finish_item(
                lease_of(job_id, f"dying-{run}"),
                ids[run],
                error=None,
                error_step=None,
                duration=0.1,
                eta=None,
            )
        await store.jobs.release(job_id, f"dying-{run}", error="boom")
        if run < len(ids):
            assert await store.jobs.end_abandoned(max_claims=2) == []
    job = await store.jobs.get(job_id)
    assert job is not None and job.status is JobStatus.RUNNING


@pytest.mark.postgres
async def test_a_held_lease_is_judged_by_the_database_clock_that_set_it(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await Store.open(postgres_url)
    try:
        job_id, _ = await _job(store)
        assert await _claim(store, "alive") == [job_id]  # a 30 s lease, by PostgreSQL's clock
        # This instance's wall clock runs an hour ahead: the lease is still held.
        skewed = utcnow() + timedelta(hours=1)
        monkeypatch.setattr("wipsvc.store.jobs_repo.utcnow", lambda: skewed)
        assert await store.jobs.end_abandoned(max_claims=1) == []  # claimed once, but held
        job, event = await store.jobs.request_cancel(job_id)
        assert job.status is JobStatus.RUNNING and event is None  # its live owner stops it
    finally:
        await store.close()


async def test_cancel_ends_a_running_job_that_nobody_holds(store: Store) -> None:
    job_id, _ = await _job(store)
    assert await _claim(store, "gone") == [job_id]
    job, event = await store.jobs.request_cancel(job_id)
    assert job.status is JobStatus.RUNNING and event is None  # a live owner stops it itself
    await store.jobs.release(job_id, "gone", error="the database went away")
    assert [e.payload["status"] for e in await store.jobs.end_abandoned(max_claims=5)] == ["cancelled"]
    job_id, _ = await _job(store)
    assert await _claim(store, "gone-too") == [job_id]
    await store.jobs.release(job_id, "gone-too", error="boom")
    job, event = await store.jobs.request_cancel(job_id)  # no owner: ended at once
    assert job.status is JobStatus.CANCELLED and event is not None


async def test_outside_text_is_cleaned_before_storage(store: Store) -> None:
    job_id, ids = await _job(store, 1)
    assert await _claim(store, "me") == [job_id]
    await store.jobs.start_item(lease_of(job_id, "me"), ids[0])
    await store.jobs.checkpoint(
        lease_of(job_id, "me"),
        ids[0],
        step="extract",
        checkpoint={"extracted": {"fields": {"title": "A\x00B\ud800", "k\x00": "x" * 60_000}}},
        row_num=2,
        wip_status=WipStatus.EXTRACTING,
        product_values={"extracted": {"title": "A\x00B\ud800"}},
    )
    await store.jobs.finish_item(
        lease_of(job_id, "me"),
        ids[0],
        error="vendor said \x00\x1b[31m",
        error_step="clean",
        duration=1.0,
        eta=None,
    )
    row = await store.collections.sheet_append("sinks", "Sheet1", {"A": "sku"}, {"A": "S\x00", "B": "=1"})
    product = await store.collections.get_product("sinks", ids[0])
    assert product.extracted == {"title": "AB"}
    assert product.error == "vendor said [31m"
    async with store.db.read() as conn:
        checkpoint = (await conn.execute(sa.select(job_items.c.checkpoint))).scalar_one()
    assert checkpoint["extracted"]["fields"] == {"title": "AB", "k": "x" * 50_000}
    assert (await store.collections.sheet_rows("sinks", "Sheet1"))[row - 1][1] == {"A": "S", "B": "=1"}


def _upgrade_to(connection: Connection, revision: str, credentials_dir: str | None = None) -> None:
    config = _alembic_config(connection)
    config.attributes["credentials_dir"] = credentials_dir
    command.upgrade(config, revision)


async def test_migration_0004_names_credentials_and_cleans_stored_settings(
    database_url: str, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    (credentials / "team").mkdir(parents=True)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0003")
            legacy = {
                "sheet": {"backend": "google", "credentials_file": str(credentials / "team" / "sa.json")},
                "cleaning": {"backend": "apps_script_api", "oauth_credentials_file": "/elsewhere/user.json"},
                "llm": {"model": "m\u0000odel"},
            }
            now = sa.func.current_timestamp()
            await conn.execute(
                collections.insert().values(name="old", config=legacy, created_at=now, updated_at=now)
            )
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "head", str(credentials))
            config = (await conn.execute(sa.select(collections.c.config))).scalar_one()
            claims = (await conn.execute(sa.select(sa.func.count()).select_from(wip_jobs))).scalar_one()
    finally:
        await engine.dispose()
    assert config["sheet"]["credentials_file"] == "team/sa.json"
    assert config["cleaning"]["oauth_credentials_file"] == "/elsewhere/user.json"  # left to check-config
    assert config["llm"]["model"] == "model"
    assert claims == 0
    store = await Store.open(database_url)
    try:
        record = await store.collections.get("old")
        assert record is not None and record.config.llm.model == "model"
        assert not (await store.keys.all())
    finally:
        await store.close()
