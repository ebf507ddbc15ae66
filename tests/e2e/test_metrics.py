"""`GET /metrics` after a real job: every figure checked against what the fakes saw."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import socketio
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fault_cloud import SA_EMAIL, Cloud, start_faults_job
from tests.support.live import LiveServer, make_settings, wait_for_job
from tests.support.paced_shop import PacedShop
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.auth import create_key

STEPS = ("sheet_row", "extract", "describe", "clean", "complete")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with Cloud(tmp_path) as fakes:
        yield fakes


@pytest.fixture
def shop() -> Iterator[PacedShop]:
    with PacedShop() as running:
        yield running


def _samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def test_metrics_after_a_job(
    sqlite_url: str, cloud: Cloud, fetcher: SafeFetcher, shop: PacedShop
) -> None:
    products = shop.products("MX", 3)
    cloud.sheets.fail_next(2, 429, method="values.append")  # two 429s, then the append gets through
    settings = cloud.settings(sqlite_url, llm=True, workers_per_job=1)
    async with (
        # The Sheets client built from the settings: it reports its 429s to the quota buckets.
        LiveServer(settings, fetcher=fetcher) as server,
        server.client() as client,
    ):
        sio = socketio.AsyncClient()
        await sio.connect(server.url, transports=["websocket"])
        try:
            job_id, _ = await start_faults_job(client, cloud.config(llm=True), products)
            job = await wait_for_job(client, "faults", job_id)
            response = await client.get("/metrics")
        finally:
            await sio.disconnect()

    assert job["status"] == "completed" and job["successful_products"] == 3, job
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    samples = _samples(text)

    assert _value(samples, "wipsvc_jobs", status="completed") == 1
    assert _value(samples, "wipsvc_jobs", status="running") == 0
    assert _value(samples, "wipsvc_jobs_finished_total", status="completed") == 1
    assert _value(samples, "wipsvc_jobs_running_here") == 0
    assert _value(samples, "wipsvc_products_total", outcome="succeeded") == 3
    for step in STEPS:
        assert _value(samples, "wipsvc_step_duration_seconds_count", step=step) == 3, step
        assert _value(samples, "wipsvc_step_duration_seconds_sum", step=step) > 0, step
    usage = cloud.llm.total_usage()
    assert usage["prompt_tokens"] > 0
    assert _value(samples, "wipsvc_llm_tokens_total", kind="prompt") == usage["prompt_tokens"]
    assert _value(samples, "wipsvc_llm_tokens_total", kind="completion") == usage["completion_tokens"]
    assert _value(samples, "wipsvc_llm_calls_total") == len(cloud.llm.completed())
    # 429s by service: the two the fake Sheets answered, none elsewhere.
    assert cloud.sheets.count(status=429) == 2
    assert _value(samples, "wipsvc_rate_limited_total", resource="sheets_write", service="sheets") == 2
    assert _value(samples, "wipsvc_rate_limited_total", resource="llm_requests", service="llm") == 0
    assert _value(samples, "wipsvc_quota_limit", resource="sheets_write", service="sheets") == 100_000
    assert _value(samples, "wipsvc_quota_admitted_total", resource="llm_requests", service="llm") > 0
    assert _value(samples, "wipsvc_quota_in_flight", resource="sheets_write", service="sheets") == 0
    assert _value(samples, "wipsvc_socketio_clients") == 1  # read while the client was connected
    # The same per account, under the account's alias: the 429s were the service account's.
    accounts = {
        dict(labels)["account"] for name, labels in samples if name == "wipsvc_account_rate_limited_total"
    }
    assert len([a for a in accounts if a.startswith("google-")]) == 1, accounts
    (google,) = [a for a in accounts if a.startswith("google-")]
    assert (
        _value(
            samples,
            "wipsvc_account_rate_limited_total",
            resource="sheets_write",
            service="sheets",
            account=google,
        )
        == 2
    )
    # No account, key or product data in any label or value.
    for secret in (SA_EMAIL, cloud.llm.api_key, cloud.spreadsheet_id, "MX-001", "faults"):
        assert secret not in text, secret


async def test_metrics_are_for_administrators_only(sqlite_url: str) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        # Open mode (no key exists, loopback): readable.
        assert (await client.get("/metrics")).status_code == 200
        scoped = (await create_key(server.services.store.keys, ["sinks"])).key
        every = (await create_key(server.services.store.keys, None)).key  # every collection, no admin
        admin = (await create_key(server.services.store.keys, None, is_admin=True)).key

        no_key = await client.get("/metrics")
        assert no_key.status_code == 401
        refused = await client.get("/metrics", headers={"Authorization": f"Bearer {scoped}"})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        not_admin = await client.get("/metrics", headers={"Authorization": f"Bearer {every}"})
        assert not_admin.status_code == 403
        allowed = await client.get("/metrics", headers={"X-API-Key": admin})
        assert allowed.status_code == 200 and "wipsvc_jobs" in allowed.text


async def test_two_apps_in_one_process_keep_their_own_figures(
    sqlite_url: str, tmp_path: Path, fetcher: SafeFetcher, shop: PacedShop
) -> None:
    other_url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    async with (
        LiveServer(make_settings(sqlite_url), fetcher=fetcher) as busy,
        LiveServer(make_settings(other_url), fetcher=fetcher) as idle,
        busy.client() as client,
        httpx.AsyncClient(base_url=idle.url, trust_env=False) as idle_client,
    ):
        created = await client.post(
            "/api/sinks/wip", json={"products": [{"sku": s, "url": u} for s, u in shop.products("TW", 2)]}
        )
        started = await client.post("/api/sinks/wip/process", json={"wip_ids": created.json()["wip_ids"]})
        await wait_for_job(client, "sinks", started.json()["job_id"])
        busy_samples = _samples((await client.get("/metrics")).text)
        idle_samples = _samples((await idle_client.get("/metrics")).text)
    assert _value(busy_samples, "wipsvc_products_total", outcome="succeeded") == 2
    assert ("wipsvc_products_total", frozenset({("outcome", "succeeded")})) not in idle_samples
    assert _value(idle_samples, "wipsvc_jobs", status="completed") == 0


async def test_stats_show_usage_per_account_by_name_to_admins_and_by_alias_to_collection_keys(
    sqlite_url: str, cloud: Cloud, fetcher: SafeFetcher, shop: PacedShop
) -> None:
    products = shop.products("AC", 2)
    settings = cloud.settings(sqlite_url, llm=True, workers_per_job=2)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        job_id, _ = await start_faults_job(client, cloud.config(llm=True), products)
        await wait_for_job(client, "faults", job_id)
        keys = server.services.store.keys
        admin = (await create_key(keys, None, is_admin=True)).key
        own = (await create_key(keys, ["faults"])).key
        other = (await create_key(keys, ["elsewhere"])).key
        seen = {}
        for name, key in (("admin", admin), ("own", own), ("other", other)):
            response = await client.get("/api/stats", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
            seen[name] = response.json()["accounts"]

    by_service = {row["service"]: row for row in seen["admin"]}
    assert set(by_service) == {"google", "llm"}
    assert by_service["google"]["account"] == SA_EMAIL and by_service["google"]["collections"] == ["faults"]
    assert cloud.llm.api_key not in by_service["llm"]["account"]
    # Every product's Sheets writes went through the service account's bucket.
    assert by_service["google"]["buckets"]["sheets_write"]["admitted"] >= 1
    assert by_service["llm"]["buckets"]["llm_requests"]["admitted"] == len(cloud.llm.completed())
    # The collection's own key: the same accounts, by alias only.
    assert [(row["service"], row["alias"]) for row in seen["own"]] == [
        (row["service"], row["alias"]) for row in seen["admin"]
    ]
    shown = str(seen["own"])
    for secret in (SA_EMAIL, "fake-project", cloud.llm.api_key, cloud.llm.base_url):
        assert secret not in shown, secret
    assert all("account" not in row and "project" not in row for row in seen["own"])
    # A key of another collection sees none of them.
    assert seen["other"] == []
