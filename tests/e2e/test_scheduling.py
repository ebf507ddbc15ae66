"""Jobs at set times through the real HTTP and Socket.IO interfaces: a one-off `run_at` job, and
recurring schedules firing on a shortened cron by a clock the test moves."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import socketio

from tests.support.cli import wipsvc
from tests.support.live import LiveServer, ManualClock, make_settings, until, wait_for_job
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.auth import create_key
from wipsvc.client.api import ApiClient
from wipsvc.demo.shop import SampleShop

SEED_EVENT_STATUSES = {"started", "processing", "completed", "failed", "cancelled"}


async def _job(client: httpx.AsyncClient, collection: str, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/{collection}/wip/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()["job"]
    return job


def _error_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    code: str = response.json()["error"]["code"]
    return code


async def test_a_job_at_a_set_time_is_scheduled_then_queued_and_runs(
    database_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    scheduled: list[dict[str, Any]] = []
    progress: list[dict[str, Any]] = []
    async with LiveServer(make_settings(database_url), fetcher=fetcher) as server, server.client() as client:
        sio = socketio.AsyncClient()
        sio.on("wip_job_scheduled", lambda data: scheduled.append(data))
        sio.on("wip_job_progress", lambda data: progress.append(data))
        await sio.connect(server.url, transports=["websocket"])
        try:
            ids = await ApiClient.over(client).create_products("sinks", shop.products()[:2])
            run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
            paris = run_at.astimezone(ZoneInfo("Europe/Paris")).isoformat()  # any offset will do
            response = await client.post("/api/sinks/wip/process", json={"wip_ids": ids, "run_at": paris})
            assert response.status_code == 202, response.text
            job_id = response.json()["job_id"]
            assert "scheduled" in response.json()["message"]

            job = await _job(client, "sinks", job_id)
            assert job["status"] == "scheduled" and job["started_at"] is None
            assert datetime.fromisoformat(job["run_at"]) == run_at
            listed = (await client.get("/api/sinks/wip/jobs", params={"status": "scheduled"})).json()["jobs"]
            assert [j["job_id"] for j in listed] == [job_id]
            # It holds its products: they cannot go into another job meanwhile.
            busy = await client.post("/api/sinks/wip/process", json={"wip_ids": ids[:1]})
            assert _error_code(busy, 409) == "conflict"

            await until(lambda: bool(scheduled))
            assert scheduled[0] == {
                "job_id": job_id,
                "collection_name": "sinks",
                "total": 2,
                "run_at": run_at.isoformat().replace("+00:00", "Z"),
                "job_status": "scheduled",
                "timestamp": scheduled[0]["timestamp"],
            }

            final = await wait_for_job(client, "sinks", job_id, timeout=60)
            assert final["status"] == "completed" and final["processed_products"] == 2
            assert datetime.fromisoformat(final["started_at"]) >= run_at
            await until(lambda: any(e["job_id"] == job_id and e["status"] == "completed" for e in progress))
            mine = [event for event in progress if event["job_id"] == job_id]
            # Its progress starts once queued, with the seed's statuses only.
            assert mine[0]["status"] == "started" and mine[0]["seq"] == 1
            assert {event["status"] for event in mine} <= SEED_EVENT_STATUSES
        finally:
            await sio.disconnect()


async def test_a_scheduled_job_counts_as_active_and_can_be_cancelled(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    settings = make_settings(sqlite_url, max_active_jobs_per_collection=1, schedule_max_ahead_days=2)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        first, second = await ApiClient.over(client).create_products("sinks", shop.products()[:2])
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        response = await client.post("/api/sinks/wip/process", json={"wip_ids": [first], "run_at": later})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        # The scheduled job takes the collection's one active slot.
        full = await client.post("/api/sinks/wip/process", json={"wip_ids": [second]})
        assert _error_code(full, 409) == "too_many_active_jobs"
        assert full.json()["error"]["details"] == {"active_jobs": 1, "limit": 1}

        cancelled = await client.post(f"/api/sinks/wip/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["job"]["status"] == "cancelled"
        product = (await client.get(f"/api/sinks/wip/{first}")).json()["product"]
        assert product["active_job_id"] is None and product["status"] == "pending"
        again = await client.post(f"/api/sinks/wip/jobs/{job_id}/cancel")
        assert _error_code(again, 409) == "conflict"

        # Without `run_at` a job is never `scheduled`.
        now = await client.post("/api/sinks/wip/process", json={"wip_ids": [second]})
        assert now.status_code == 202, now.text
        assert (await _job(client, "sinks", now.json()["job_id"]))["status"] in (
            "queued",
            "running",
            "completed",
        )
        await wait_for_job(client, "sinks", now.json()["job_id"])

        for run_at, fragment in [
            ("2026-12-01T09:00:00", "timezone"),  # no offset: pydantic's own 422
            ((datetime.now(UTC) - timedelta(minutes=5)).isoformat(), "has passed"),
            ((datetime.now(UTC) + timedelta(days=3)).isoformat(), "days ahead"),
            ("tomorrow", "datetime"),
        ]:
            refused = await client.post("/api/sinks/wip/process", json={"wip_ids": [first], "run_at": run_at})
            assert refused.status_code == 422, (run_at, refused.text)
            assert fragment in refused.text, (run_at, refused.text)


async def test_a_recurring_schedule_fires_on_its_cron_by_the_clock(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    clock = ManualClock(datetime(2026, 6, 1, 8, 0, 0, tzinfo=UTC))
    settings = make_settings(
        sqlite_url, max_batch=2, schedule_poll_seconds=0.05, schedule_min_interval_seconds=1
    )
    products = shop.products()
    async with LiveServer(settings, fetcher=fetcher, clock=clock) as server, server.client() as client:
        ids = await ApiClient.over(client).create_products("sinks", products[:3])
        # Every 30 seconds (seconds are the sixth field), read in Paris time.
        created = await client.post(
            "/api/sinks/schedules", json={"cron": "* * * * * */30", "timezone": "Europe/Paris"}
        )
        assert created.status_code == 201, created.text
        schedule = created.json()["schedule"]
        assert schedule["selector"] == {"statuses": ["pending"]} and schedule["paused"] is False
        assert datetime.fromisoformat(schedule["next_fire_at"]) == datetime(2026, 6, 1, 8, 0, 30, tzinfo=UTC)
        fires_url = f"/api/sinks/schedules/{schedule['id']}/fires"

        async def fires() -> list[dict[str, Any]]:
            response = await client.get(fires_url)
            assert response.status_code == 200, response.text
            found: list[dict[str, Any]] = response.json()["fires"]
            return found

        async def fire_count(count: int) -> list[dict[str, Any]]:
            log: list[dict[str, Any]] = []
            while len(log) < count:
                await asyncio.sleep(0.05)
                log = await fires()
            return log

        assert await fires() == []
        clock.advance(seconds=31)  # 08:00:31: the 08:00:30 due time has come
        log = await _within(fire_count(1))
        first = log[0]
        assert first["outcome"] == "fired" and first["products"] == 3
        assert datetime.fromisoformat(first["due_at"]) == datetime(2026, 6, 1, 8, 0, 30, tzinfo=UTC)
        # As many jobs of at most WIPSVC_MAX_BATCH products as needed, oldest products first.
        jobs = [await _job(client, "sinks", job_id) for job_id in first["job_ids"]]
        assert [job["wip_ids"] for job in jobs] == [ids[:2], ids[2:]]
        assert {job["schedule_id"] for job in jobs} == {schedule["id"]}
        assert all(job["run_at"] is None for job in jobs)
        for job in jobs:
            assert (await wait_for_job(client, "sinks", job["job_id"]))["status"] == "completed"

        # Nothing pending at the next due time: no job, a skipped fire.
        clock.advance(seconds=30)
        log = await _within(fire_count(2))
        assert (log[0]["outcome"], log[0]["job_ids"], log[0]["products"]) == ("skipped", [], 0)

        # A new product: the third due time takes it, and only it.
        (new,) = await ApiClient.over(client).create_products("sinks", [("SCHED-NEW", products[0][1])])
        clock.advance(seconds=30)
        log = await _within(fire_count(3))
        assert log[0]["outcome"] == "fired" and log[0]["products"] == 1
        (job_id,) = log[0]["job_ids"]
        assert (await _job(client, "sinks", job_id))["wip_ids"] == [new]
        await wait_for_job(client, "sinks", job_id)

        # Paused, it does not fire; resumed, it waits for the next due time after now.
        paused = await client.post(f"/api/sinks/schedules/{schedule['id']}/pause")
        assert (
            paused.json()["schedule"]["paused"] is True and paused.json()["schedule"]["next_fire_at"] is None
        )
        clock.advance(seconds=60)
        assert await server.services.scheduler.run_due() == []  # type: ignore[union-attr]
        resumed = (await client.post(f"/api/sinks/schedules/{schedule['id']}/resume")).json()["schedule"]
        assert datetime.fromisoformat(resumed["next_fire_at"]) == datetime(2026, 6, 1, 8, 3, 0, tzinfo=UTC)
        assert len(await fires()) == 3

        listed = (await client.get("/api/sinks/schedules")).json()
        assert listed["count"] == 1 and listed["schedules"][0]["id"] == schedule["id"]
        deleted = await client.delete(f"/api/sinks/schedules/{schedule['id']}")
        assert deleted.status_code == 200, deleted.text
        assert _error_code(await client.get(f"/api/sinks/schedules/{schedule['id']}"), 404) == "not_found"
        # The jobs it made stay, still naming it.
        assert (await _job(client, "sinks", job_id))["schedule_id"] == schedule["id"]


async def test_schedules_are_validated_and_kept_to_their_collection(
    sqlite_url: str, shop: SampleShop
) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        sinks_key = (await create_key(server.services.store.keys, ["sinks"])).key
        both_key = (await create_key(server.services.store.keys, ["sinks", "taps"])).key
        sinks = {"Authorization": f"Bearer {sinks_key}"}
        both = {"Authorization": f"Bearer {both_key}"}
        for collection in ("sinks", "taps"):
            response = await client.post(
                f"/api/{collection}/wip",
                json={"products": [{"sku": "A1", "url": shop.products()[0][1]}]},
                headers=both,
            )
            assert response.status_code == 201, response.text

        bad: list[tuple[dict[str, Any], str]] = [
            ({"cron": "61 * * * *"}, "invalid_cron"),
            ({"cron": "* * *"}, "invalid_cron"),
            ({"cron": "* * * * * */30"}, "invalid_cron"),  # every 30 s: under the 60 s minimum
            ({"cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "invalid_timezone"),
            ({"cron": "0 6 * * *", "selector": {"statuses": ["nope"]}}, "validation_error"),
            ({"cron": "0 6 * * *", "selector": {"statuses": []}}, "validation_error"),
            ({"cron": "0 6 * * *", "selector": {"statuses": ["pending", "pending"]}}, "validation_error"),
            ({"cron": "0 6 * * *", "selector": {"sku": "A1"}}, "validation_error"),
        ]
        for body, code in bad:
            response = await client.post("/api/sinks/schedules", json=body, headers=sinks)
            assert _error_code(response, 422) == code, body

        created = await client.post(
            "/api/sinks/schedules",
            json={"cron": "0 6 * * 1-5", "selector": {"statuses": ["pending", "error"]}},
            headers=sinks,
        )
        assert created.status_code == 201, created.text
        schedule_id = created.json()["schedule"]["id"]
        assert created.json()["schedule"]["timezone"] == "UTC"

        # A key without the collection sees nothing of its schedules, as if it did not exist.
        taps_only = {
            "Authorization": f"Bearer {(await create_key(server.services.store.keys, ['taps'])).key}"
        }
        for method, path in [
            ("GET", "/api/sinks/schedules"),
            ("POST", "/api/sinks/schedules"),
            ("GET", f"/api/sinks/schedules/{schedule_id}"),
            ("GET", f"/api/sinks/schedules/{schedule_id}/fires"),
            ("POST", f"/api/sinks/schedules/{schedule_id}/pause"),
            ("DELETE", f"/api/sinks/schedules/{schedule_id}"),
        ]:
            payload: dict[str, Any] | None = {"cron": "0 6 * * *"} if path.endswith("schedules") else None
            response = await client.request(method, path, json=payload, headers=taps_only)
            assert _error_code(response, 404) == "not_found", (method, path)
        # Another collection's schedule, through a collection the key may use: not found either.
        for path in [f"/api/taps/schedules/{schedule_id}", f"/api/taps/schedules/{schedule_id}/fires"]:
            assert _error_code(await client.get(path, headers=both), 404) == "not_found"
        deleting = await client.delete(f"/api/taps/schedules/{schedule_id}", headers=both)
        assert _error_code(deleting, 404) == "not_found"
        assert (await client.get("/api/sinks/schedules", headers=sinks)).json()["count"] == 1
        assert (await client.post("/api/sinks/schedules", headers={})).status_code == 401

        # Deleting the collection deletes its schedules: none keeps firing for it.
        gone = await client.delete("/api/collections/sinks", headers=both)
        assert gone.status_code == 200, gone.text
        assert await server.services.store.schedules.of_collection("sinks") == []
        assert await server.services.store.schedules.fires(schedule_id, limit=10) == []


async def _within(awaitable: Any, timeout: float = 20) -> Any:
    async with asyncio.timeout(timeout):
        return await awaitable


async def test_the_cli_schedules_a_job_and_manages_schedules(sqlite_url: str, shop: SampleShop) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        (wip_id,) = await ApiClient.over(client).create_products("sinks", shop.products()[:1])
        at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
        run = await wipsvc(
            "jobs", "start", "sinks", str(wip_id), "--at", at.isoformat(), "--json", url=server.url
        )
        assert run.code == 0, run.err
        job = await _job(client, "sinks", json.loads(run.out)["job_id"])
        assert job["status"] == "scheduled" and datetime.fromisoformat(job["run_at"]) == at
        naive = await wipsvc(
            "jobs", "start", "sinks", str(wip_id), "--at", "2026-12-01T06:00:00", url=server.url
        )
        assert naive.code == 2 and "offset" in naive.err

        run = await wipsvc(
            "schedules",
            "create",
            "sinks",
            "0 6 * * 1-5",
            "--tz",
            "Europe/Paris",
            "--status",
            "pending",
            "--status",
            "error",
            "--json",
            url=server.url,
        )
        assert run.code == 0, run.err
        created = json.loads(run.out)["schedule"]
        assert created["selector"] == {"statuses": ["pending", "error"]}
        schedule_id = str(created["id"])
        bad = await wipsvc("schedules", "create", "sinks", "0 6 * *", url=server.url)
        assert bad.code == 3 and "invalid_cron" in bad.err

        listed = await wipsvc("schedules", "list", "sinks", url=server.url)
        assert listed.code == 0 and "0 6 * * 1-5" in listed.out and "Europe/Paris" in listed.out, listed.out
        paused = await wipsvc("schedules", "pause", "sinks", schedule_id, url=server.url)
        assert paused.code == 0 and f"schedule {schedule_id} paused" in paused.out
        assert "paused" in (await wipsvc("schedules", "list", "sinks", url=server.url)).out
        resumed = await wipsvc("schedules", "resume", "sinks", schedule_id, "--json", url=server.url)
        assert resumed.code == 0 and json.loads(resumed.out)["schedule"]["paused"] is False
        deleted = await wipsvc("schedules", "delete", "sinks", schedule_id, url=server.url)
        assert deleted.code == 0 and f"Schedule {schedule_id} deleted." in deleted.out
        assert (
            json.loads((await wipsvc("schedules", "list", "sinks", "--json", url=server.url)).out)["count"]
            == 0
        )


async def test_schedules_survive_a_restart_and_fires_missed_meanwhile_follow_the_policy(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    clock = ManualClock(datetime(2026, 6, 1, 8, 0, 0, tzinfo=UTC))
    settings = make_settings(sqlite_url, schedule_poll_seconds=0.05, schedule_missed_fire_grace_seconds=600)
    async with LiveServer(settings, fetcher=fetcher, clock=clock) as server, server.client() as client:
        (wip_id,) = await ApiClient.over(client).create_products("sinks", shop.products()[:1])
        hourly = (await client.post("/api/sinks/schedules", json={"cron": "0 * * * *"})).json()["schedule"]
        daily = (await client.post("/api/sinks/schedules", json={"cron": "30 8 * * *"})).json()["schedule"]

    # Down from 08:00 to 09:05: hourly's 09:00 is 5 min late (within the 10 min grace), daily's 08:30
    # is 35 min late (beyond it).
    clock.advance(minutes=65)
    async with LiveServer(settings, fetcher=fetcher, clock=clock) as server, server.client() as client:

        async def fires_of(schedule_id: int) -> list[dict[str, Any]]:
            while True:
                found: list[dict[str, Any]] = (
                    await client.get(f"/api/sinks/schedules/{schedule_id}/fires")
                ).json()["fires"]
                if found:
                    return found
                await asyncio.sleep(0.05)

        ran, missed = await _within(asyncio.gather(fires_of(hourly["id"]), fires_of(daily["id"])))
        assert [(f["outcome"], f["due_at"]) for f in ran] == [("fired", "2026-06-01T09:00:00Z")]
        assert [(f["outcome"], f["due_at"], f["job_ids"]) for f in missed] == [
            ("missed", "2026-06-01T08:30:00Z", [])
        ]
        (job_id,) = ran[0]["job_ids"]
        assert (await wait_for_job(client, "sinks", job_id))["wip_ids"] == [wip_id]
        listed = {s["id"]: s for s in (await client.get("/api/sinks/schedules")).json()["schedules"]}
        assert listed[hourly["id"]]["next_fire_at"] == "2026-06-01T10:00:00Z"
        assert listed[daily["id"]]["next_fire_at"] == "2026-06-02T08:30:00Z"
