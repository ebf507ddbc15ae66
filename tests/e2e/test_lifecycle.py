"""Deleting products, jobs and collections over the API, pruning old job history, and the
cross-collection jobs listing: through the real HTTP interface, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from tests.support.live import LiveServer, make_settings, until, wait_for_job
from tests.support.slow import GatedFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.auth import create_key
from wipsvc.demo.shop import SampleShop
from wipsvc.jobs.retention import HistoryPruner
from wipsvc.store.tables import job_events, job_items


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


async def _create(
    client: httpx.AsyncClient, collection: str, products: Any, key: str | None = None
) -> list[int]:
    body = {"products": [{"sku": sku, "url": url} for sku, url in products]}
    response = await client.post(f"/api/{collection}/wip", json=body, headers=_auth(key))
    assert response.status_code == 201, response.text
    return response.json()["wip_ids"]  # type: ignore[no-any-return]


def _error_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    return str(body["error"]["code"])


async def test_delete_refused_while_a_job_holds_then_allowed(
    database_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    gated = GatedFetcher(fetcher)
    async with LiveServer(make_settings(database_url), fetcher=gated) as server, server.client() as client:
        products = shop.products()
        ids = await _create(client, "sinks", products[:3])
        spare = (await _create(client, "sinks", [("SPARE-1", products[3][1])]))[0]
        other = await _create(client, "taps", products[4:5])
        started = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()
        job_id = started["job_id"]
        await until(lambda: gated.waiting > 0)  # the job is running, its products held

        assert _error_code(await client.delete(f"/api/sinks/wip/{ids[0]}"), 409) == "conflict"
        assert _error_code(await client.delete(f"/api/sinks/wip/jobs/{job_id}"), 409) == "conflict"
        refused = await client.delete("/api/collections/sinks")
        assert _error_code(refused, 409) == "conflict"
        assert job_id in refused.json()["error"]["details"]["active_jobs"]
        # Refused means untouched: the spare product is still there.
        assert (await client.get(f"/api/sinks/wip/{spare}")).status_code == 200

        deleted = await client.delete(f"/api/sinks/wip/{spare}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["deleted"] == {"products": 1, "jobs": 0, "sheet_rows": 0}
        assert _error_code(await client.get(f"/api/sinks/wip/{spare}"), 404) == "not_found"
        assert _error_code(await client.delete(f"/api/sinks/wip/{spare}"), 404) == "not_found"
        # Another collection's product id answers like a missing one.
        assert _error_code(await client.delete(f"/api/sinks/wip/{other[0]}"), 404) == "not_found"

        gated.gate.set()
        job = await wait_for_job(client, "sinks", job_id)
        assert job["status"] == "completed"

        second = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids[:1]})).json()["job_id"]
        await wait_for_job(client, "sinks", second)
        deleted = await client.delete(f"/api/sinks/wip/jobs/{second}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["deleted"]["jobs"] == 1
        assert _error_code(await client.get(f"/api/sinks/wip/jobs/{second}"), 404) == "not_found"
        # The product stays, with what the deleted job did to it.
        assert (await client.get(f"/api/sinks/wip/{ids[0]}")).json()["product"]["status"] == "ready"

        sheet = (await client.get("/api/collections/sinks/sheet.csv")).text
        rows = len(list(csv.reader(io.StringIO(sheet))))
        assert rows >= 4  # the header row and one row per product
        deleted = await client.delete("/api/collections/sinks")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["deleted"] == {"products": 3, "jobs": 1, "sheet_rows": rows}
        assert _error_code(await client.get("/api/collections/sinks"), 404) == "not_found"
        assert _error_code(await client.get(f"/api/sinks/wip/jobs/{job_id}"), 404) == "not_found"
        assert (await client.get("/api/jobs", params={"collection": "sinks"})).json()["total"] == 0
        # The other collection is untouched.
        assert (await client.get(f"/api/taps/wip/{other[0]}")).status_code == 200
        # The name can be used again, from an empty collection.
        again = await _create(client, "sinks", products[:1])
        listing = (await client.get("/api/sinks/wip")).json()
        assert [p["wip_id"] for p in listing["products"]] == again


async def test_keys_naming_a_deleted_collection_keep_the_name(sqlite_url: str, shop: SampleShop) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        key = (await create_key(server.services.store.keys, ["sinks"])).key
        await _create(client, "sinks", shop.products()[:1], key)
        assert (await client.delete("/api/collections/sinks", headers=_auth(key))).status_code == 200
        # Still the key's collection: it may create it again, and another key may not see it.
        await _create(client, "sinks", shop.products()[1:2], key)
        (record,) = await server.services.store.keys.all()
        assert record.collections == frozenset({"sinks"}) or set(record.collections or ()) == {"sinks"}
        other = (await create_key(server.services.store.keys, ["taps"])).key
        hidden = await client.delete("/api/collections/sinks", headers=_auth(other))
        assert _error_code(hidden, 404) == "not_found"


async def test_old_job_history_is_pruned_but_the_job_and_results_stay(
    database_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    settings = make_settings(database_url, job_history_retention_days=30)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        ids = await _create(client, "sinks", shop.products())
        job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()["job_id"]
        before = await wait_for_job(client, "sinks", job_id)
        assert before["failed_products"] > 0  # the sample shop has broken pages
        store = server.services.store
        job = await store.jobs.get(job_id)
        assert job is not None and job.completed_at is not None
        pruner = HistoryPruner(store, retention_days=30)

        async def counts() -> tuple[int, int]:
            async with store.db.read() as conn:
                events = (
                    await conn.execute(sa.select(sa.func.count()).where(job_events.c.job_id == job_id))
                ).scalar()
                items = (
                    await conn.execute(sa.select(sa.func.count()).where(job_items.c.job_id == job_id))
                ).scalar()
            return int(events or 0), int(items or 0)

        assert await counts() == (before["total_products"] + 2, before["total_products"])
        # 29 days after it ended: kept.
        kept = await pruner.prune_once(job.completed_at + timedelta(days=29))
        assert kept.jobs == 0
        assert await counts() != (0, 0)
        # 31 days after: its events and ledger go, once.
        pruned = await pruner.prune_once(job.completed_at + timedelta(days=31))
        assert (pruned.jobs, pruned.items) == (1, before["total_products"])
        assert pruned.events == before["total_products"] + 2
        assert await counts() == (0, 0)
        assert (await pruner.prune_once(job.completed_at + timedelta(days=31))).jobs == 0

        after = (await client.get(f"/api/sinks/wip/jobs/{job_id}")).json()["job"]
        assert after["results"] == before["results"]
        assert after["status"] == before["status"]
        # Retrying still finds the failed products, from the results.
        retry = await client.post(f"/api/sinks/wip/jobs/{job_id}/retry")
        assert retry.status_code == 202, retry.text
        assert retry.json()["total_products"] == before["failed_products"]


async def test_jobs_listing_across_collections_pages_filters_and_hides(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    async with LiveServer(make_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        jobs: dict[str, list[str]] = {"sinks": [], "taps": []}
        for index, (sku, url) in enumerate(shop.products()[:4]):
            collection = "sinks" if index % 2 == 0 else "taps"
            (wip_id,) = await _create(client, collection, [(sku, url)])
            answer = await client.post(f"/api/{collection}/wip/process", json={"wip_ids": [wip_id]})
            jobs[collection].append(answer.json()["job_id"])
            await wait_for_job(client, collection, jobs[collection][-1])
        newest_first = [jobs["taps"][1], jobs["sinks"][1], jobs["taps"][0], jobs["sinks"][0]]

        page = (await client.get("/api/jobs", params={"limit": 3})).json()
        assert [job["job_id"] for job in page["jobs"]] == newest_first[:3]
        assert (page["total"], page["limit"], page["offset"]) == (4, 3, 0)
        rest = (await client.get("/api/jobs", params={"limit": 3, "offset": 3})).json()
        assert [job["job_id"] for job in rest["jobs"]] == newest_first[3:]
        only_taps = (await client.get("/api/jobs", params={"collection": "taps"})).json()
        assert [job["job_id"] for job in only_taps["jobs"]] == jobs["taps"][::-1]
        assert (await client.get("/api/jobs", params={"status": "queued"})).json()["total"] == 0

        key = (await create_key(server.services.store.keys, ["sinks"])).key
        mine = (await client.get("/api/jobs", headers=_auth(key))).json()
        assert [job["job_id"] for job in mine["jobs"]] == jobs["sinks"][::-1]
        hidden = (await client.get("/api/jobs", params={"collection": "taps"}, headers=_auth(key))).json()
        assert (hidden["jobs"], hidden["total"]) == ([], 0)
        bad = await client.get("/api/jobs", params={"limit": 0}, headers=_auth(key))
        assert _error_code(bad, 422) == "validation_error"


async def test_a_cancelled_jobs_skipped_products_can_be_run_again(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    gated = GatedFetcher(fetcher)
    settings = make_settings(sqlite_url, workers_per_job=1)
    async with LiveServer(settings, fetcher=gated) as server, server.client() as client:
        ids = await _create(client, "sinks", shop.products()[:3])
        job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()["job_id"]
        await until(lambda: gated.waiting > 0)
        await client.post(f"/api/sinks/wip/jobs/{job_id}/cancel")
        gated.gate.set()
        job = await wait_for_job(client, "sinks", job_id)
        assert job["status"] == "cancelled"
        skipped = [r["wip_id"] for r in job["results"] if r["status"] == "skipped"]
        assert len(skipped) == 2

        no_failed = await client.post(f"/api/sinks/wip/jobs/{job_id}/retry")
        assert _error_code(no_failed, 409) == "conflict"
        again = await client.post(f"/api/sinks/wip/jobs/{job_id}/retry", params={"products": "skipped"})
        assert again.status_code == 202, again.text
        new_job = await wait_for_job(client, "sinks", again.json()["job_id"])
        assert new_job["retry_of"] == job_id
        assert sorted(new_job["wip_ids"]) == sorted(skipped)
