"""Socket.IO stays bounded: malformed `subscribe`s get error answers, replays come in pages
and are rate-limited per connection — through a real Socket.IO client against a live server."""

from __future__ import annotations

from typing import Any

import httpx
import socketio

from tests.support.live import LiveServer, make_settings, start_job, wait_for_job
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import SampleShop


async def _finished_job(client: httpx.AsyncClient, shop: SampleShop) -> dict[str, Any]:
    return await wait_for_job(client, "sinks", (await start_job(client, "sinks", shop.products())).job_id)


class Recorder:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient()
        self.events: list[dict[str, Any]] = []
        self.sio.on("wip_job_progress", self.events.append)

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.sio.disconnect()


MALFORMED: list[tuple[str, tuple[Any, ...]]] = [
    ("no payload", ()),
    ("a string", ("job",)),
    ("a list", ([1, 2],)),
    ("two arguments", ({"job_id": "a"}, {"after_seq": 0})),
    ("no job id", ({"after_seq": 0},)),
    ("a numeric job id", ({"job_id": 5},)),
    ("an empty job id", ({"job_id": ""},)),
    ("a NUL in the job id", ({"job_id": "abc\x00def"},)),
    ("a newline in the job id", ({"job_id": "abc\n"},)),
    ("a job id of 65 characters", ({"job_id": "a" * 65},)),
    ("after_seq 2**31", ({"job_id": "JOB", "after_seq": 2**31},)),
    ("after_seq 2**63", ({"job_id": "JOB", "after_seq": 2**63},)),
    ("a negative after_seq", ({"job_id": "JOB", "after_seq": -1},)),
    ("a boolean after_seq", ({"job_id": "JOB", "after_seq": True},)),
    ("a string after_seq", ({"job_id": "JOB", "after_seq": "1"},)),
    ("a fractional after_seq", ({"job_id": "JOB", "after_seq": 1.5},)),
]


def _with_job(arg: Any, job_id: str) -> Any:
    """`arg` with the placeholder job id "JOB" replaced by a real one."""
    return {**arg, "job_id": job_id} if isinstance(arg, dict) and arg.get("job_id") == "JOB" else arg


async def test_malformed_subscribes_get_error_answers(
    database_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    settings = make_settings(database_url, socket_subscribes_per_minute=1000)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        job = await _finished_job(client, shop)
        async with Recorder() as recorder:
            await recorder.sio.connect(server.url, transports=["websocket"], wait_timeout=5)
            for name, args in MALFORMED:
                args = tuple(_with_job(arg, job["job_id"]) for arg in args)
                if not args:
                    ack = await recorder.sio.call("subscribe", timeout=10)
                else:  # call() sends a tuple's items as separate arguments
                    payload = args[0] if len(args) == 1 else args
                    ack = await recorder.sio.call("subscribe", payload, timeout=10)
                assert isinstance(ack, dict) and ack["ok"] is False and ack["error"], (name, ack)
            assert recorder.events == []  # nothing was replayed
            # The connection still works: a good subscribe replays the whole job.
            ack = await recorder.sio.call("subscribe", {"job_id": job["job_id"], "after_seq": 0}, timeout=10)
            total = len(shop.products()) + 2
            assert ack == {"ok": True, "replayed": total, "last_seq": total, "more": False}
            assert [event["seq"] for event in recorder.events] == list(range(1, total + 1))
            # The largest after_seq allowed is fine on both databases.
            ack = await recorder.sio.call("subscribe", {"job_id": job["job_id"], "after_seq": 2**31 - 1})
            assert ack["ok"] is True and ack["replayed"] == 0
        assert (await client.get("/healthz")).status_code == 200


async def test_replays_come_in_pages_and_are_rate_limited(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    settings = make_settings(sqlite_url, socket_replay_page=4, socket_subscribes_per_minute=3)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        job = await _finished_job(client, shop)
        total = len(shop.products()) + 2
        assert total > 8
        async with Recorder() as recorder:
            await recorder.sio.connect(server.url, transports=["websocket"], wait_timeout=5)
            acks = []
            after = 0
            for _ in range(3):
                ack = await recorder.sio.call("subscribe", {"job_id": job["job_id"], "after_seq": after})
                acks.append(ack)
                after = ack["last_seq"]
            assert acks == [
                {"ok": True, "replayed": 4, "last_seq": 4, "more": True},
                {"ok": True, "replayed": 4, "last_seq": 8, "more": True},
                {"ok": True, "replayed": min(4, total - 8), "last_seq": min(12, total), "more": total > 12},
            ]
            assert [event["seq"] for event in recorder.events] == list(range(1, min(12, total) + 1))

            # Three subscribes a minute, in bursts of up to three (one comes back every 20 s): the
            # fourth is refused, unanswered by any replay, and says when to try again.
            refused = await recorder.sio.call("subscribe", {"job_id": job["job_id"], "after_seq": 0})
            assert refused["ok"] is False and "too many subscribes" in refused["error"]
            assert refused["retry_after"] >= 1
            assert len(recorder.events) == min(12, total)

        # The limit is per connection: another client replays at once.
        async with Recorder() as other:
            await other.sio.connect(server.url, transports=["websocket"], wait_timeout=5)
            ack = await other.sio.call("subscribe", {"job_id": job["job_id"], "after_seq": 0})
            assert ack["ok"] is True and ack["replayed"] == 4
