"""API keys and resource limits, through the real HTTP and Socket.IO interfaces and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from tests.support.cli import run_wipsvc
from tests.support.live import LiveServer, make_settings, wait_for_job
from tests.support.slow import SlowFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.app import create_app
from wipsvc.auth import InsecureBind, create_key
from wipsvc.demo.shop import SampleShop
from wipsvc.store import Store


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is False and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]  # type: ignore[no-any-return]


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


async def _key(server: LiveServer, collections: list[str] | None) -> str:
    return (await create_key(server.services.store.keys, collections)).key


async def _products(client: httpx.AsyncClient, key: str | None, collection: str, products: Any) -> list[int]:
    body = {"products": [{"sku": sku, "url": url} for sku, url in products]}
    response = await client.post(f"/api/{collection}/wip", json=body, headers=_auth(key))
    assert response.status_code == 201, response.text
    return response.json()["wip_ids"]  # type: ignore[no-any-return]


class Listener:
    """A real Socket.IO client that records every `wip_job_progress` event."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient()
        self.events: list[dict[str, Any]] = []
        self.refusals: list[Any] = []
        self.sio.on("wip_job_progress", self.events.append)
        self.sio.on("connect_error", self.refusals.append)

    async def connect(self, url: str, key: str | None) -> None:
        auth = {"api_key": key} if key is not None else None
        await self.sio.connect(url, transports=["websocket"], auth=auth, wait_timeout=5)

    def jobs(self) -> set[str]:
        return {event["job_id"] for event in self.events}


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    """The environment of a `wipsvc` subprocess: the test's database, nothing of the developer's."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WIPSVC_")}
    return clean | {"WIPSVC_DATABASE_URL": sqlite_url}


async def test_a_key_reaches_only_its_collections(
    database_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    async with LiveServer(make_settings(database_url), fetcher=fetcher) as server, server.client() as client:
        sinks_key, taps_key, admin_key = [await _key(server, c) for c in (["sinks"], ["taps"], None)]
        sinks_ids = await _products(client, sinks_key, "sinks", shop.products()[:2])
        taps_ids = await _products(client, taps_key, "taps", shop.products()[2:4])
        # Creating products elsewhere is refused, and creates no collection.
        hidden = await client.post(
            "/api/taps/wip",
            json={"products": [{"sku": "X-1", "url": shop.products()[0][1]}]},
            headers=_auth(sinks_key),
        )
        assert _error(hidden, 404, "not_found")["message"] == "collection 'taps' not found"

        listeners = {name: Listener() for name in ("sinks", "taps", "admin")}
        for name, key in zip(listeners, (sinks_key, taps_key, admin_key), strict=True):
            await listeners[name].connect(server.url, key)
        try:
            sinks_job = (
                await client.post(
                    "/api/sinks/wip/process", json={"wip_ids": sinks_ids}, headers=_auth(sinks_key)
                )
            ).json()["job_id"]
            taps_job = (
                await client.post(
                    "/api/taps/wip/process", json={"wip_ids": taps_ids}, headers=_auth(taps_key)
                )
            ).json()["job_id"]
            client.headers.update(_auth(admin_key))
            for collection, job_id in (("sinks", sinks_job), ("taps", taps_job)):
                assert (await wait_for_job(client, collection, job_id))["status"] == "completed"
            async with asyncio.timeout(10):
                while listeners["admin"].jobs() != {sinks_job, taps_job} or not all(
                    any(e["status"] == "completed" for e in listener.events)
                    for listener in listeners.values()
                ):
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # time for any stray event to arrive
            assert listeners["sinks"].jobs() == {sinks_job}
            assert listeners["taps"].jobs() == {taps_job}
            assert len(listeners["sinks"].events) == len(sinks_ids) + 2

            # Replays: another collection's job is "not found", its own is replayed.
            sinks_sio = listeners["sinks"].sio
            assert await sinks_sio.call("subscribe", {"job_id": taps_job}) == {
                "ok": False,
                "error": "job not found",
            }
            assert (await sinks_sio.call("subscribe", {"job_id": sinks_job, "after_seq": 1}))["ok"] is True
        finally:
            for listener in listeners.values():
                await listener.sio.disconnect()

        # REST: another collection's jobs, products and settings answer exactly like missing ones.
        client.headers.clear()
        sinks = _auth(sinks_key)
        missing = _error(await client.get("/api/nowhere/wip/jobs", headers=sinks), 404, "not_found")
        for response in (
            await client.get(f"/api/taps/wip/jobs/{taps_job}", headers=sinks),
            await client.post(f"/api/taps/wip/jobs/{taps_job}/cancel", headers=sinks),
            await client.post(f"/api/taps/wip/jobs/{taps_job}/retry", headers=sinks),
            await client.patch(f"/api/taps/wip/jobs/{taps_job}", json={"priority": "urgent"}, headers=sinks),
            await client.get(f"/api/taps/wip/{taps_ids[0]}", headers=sinks),
            await client.get("/api/taps/wip", headers=sinks),
            await client.post("/api/taps/wip/process", json={"wip_ids": taps_ids}, headers=sinks),
            await client.get("/api/collections/taps", headers=sinks),
            await client.get("/api/collections/taps/sheet.csv", headers=sinks),
            await client.put("/api/collections/taps", json={}, headers=sinks),
        ):
            assert _error(response, 404, "not_found") == missing | {"message": "collection 'taps' not found"}
        # Through its own collection's path, the other job is unknown too.
        _error(await client.get(f"/api/sinks/wip/jobs/{taps_job}", headers=sinks), 404, "not_found")
        moved = await client.patch(f"/api/sinks/wip/jobs/{taps_job}", json={"priority": "low"}, headers=sinks)
        _error(moved, 404, "not_found")
        listed = (await client.get("/api/collections", headers=sinks)).json()["collections"]
        assert [c["name"] for c in listed] == ["sinks"]
        assert (await client.get(f"/api/sinks/wip/jobs/{sinks_job}", headers=sinks)).status_code == 200

        # An --all key sees everything.
        admin = _auth(admin_key)
        listed = (await client.get("/api/collections", headers=admin)).json()["collections"]
        assert [c["name"] for c in listed] == ["sinks", "taps"]
        assert (await client.get(f"/api/taps/wip/jobs/{taps_job}", headers=admin)).status_code == 200
        assert (await client.get(f"/api/sinks/wip/{sinks_ids[0]}", headers=admin)).status_code == 200


async def test_no_key_or_a_bad_key_is_refused(sqlite_url: str) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        key = await _key(server, ["sinks"])
        required = _error(await client.get("/api/collections"), 401, "unauthorized")
        assert "API key required" in required["message"]
        unknown = key[:13] + "x" * (len(key) - 13)
        for bad in ("nonsense", unknown, "wip_00000000_" + "a" * 43):
            response = await client.get("/api/collections", headers=_auth(bad))
            assert _error(response, 401, "unauthorized")["message"] == "invalid API key"
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert bad not in response.text  # never echoed
        _error(await client.get("/api/stats"), 401, "unauthorized")
        # Both ways of sending a key work.
        assert (await client.get("/api/collections", headers=_auth(key))).status_code == 200
        assert (await client.get("/api/collections", headers={"X-API-Key": key})).status_code == 200
        # Probes, documentation and the dashboard stay open.
        for path in ("/healthz", "/readyz", "/docs", "/openapi.json", "/", "/static/js/api.js"):
            assert (await client.get(path)).status_code == 200, path

        for presented in (None, "nonsense", unknown):
            listener = Listener()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await listener.connect(server.url, presented)
            assert listener.refusals == [{"message": "unauthorized"}]
            await listener.sio.disconnect()
        allowed = Listener()
        await allowed.connect(server.url, key)
        assert allowed.sio.connected
        await allowed.sio.disconnect()


async def test_openapi_documents_both_schemes(sqlite_url: str) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearer"]["description"],
    }
    assert schemes["apiKey"] | {"description": ""} == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "",
    }
    paths = schema["paths"]
    assert paths["/api/{collection}/wip/process"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert paths["/api/collections"]["get"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "security" not in paths["/healthz"]["get"]


async def test_open_mode_on_loopback(sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher) -> None:
    async with LiveServer(make_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        listener = Listener()
        await listener.connect(server.url, None)
        try:
            ids = (
                await client.post(
                    "/api/sinks/wip", json={"products": [{"sku": "S-1", "url": shop.products()[0][1]}]}
                )
            ).json()["wip_ids"]
            job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()["job_id"]
            assert (await wait_for_job(client, "sinks", job_id))["status"] == "completed"
            async with asyncio.timeout(10):
                while not any(e["status"] == "completed" for e in listener.events):
                    await asyncio.sleep(0.02)
        finally:
            await listener.sio.disconnect()
        # A key sent anyway (the dashboard keeps one) changes nothing while no key exists.
        response = await client.get("/api/collections", headers=_auth("wip_0123abcd_" + "k" * 43))
        assert [c["name"] for c in response.json()["collections"]] == ["sinks"]


async def _closes_only(dropped: Listener, *, kept: Listener) -> None:
    """The server's key check closes ``dropped``; after some more checks ``kept`` is still open."""
    async with asyncio.timeout(10):
        while dropped.sio.connected:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    assert kept.sio.connected
    await kept.sio.disconnect()


async def test_open_connections_close_once_the_first_key_exists(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, socket_key_recheck_seconds=0.2)
    async with LiveServer(settings) as server:
        keyless = Listener()
        await keyless.connect(server.url, None)  # open mode: allowed
        await asyncio.sleep(0.5)
        assert keyless.sio.connected  # the check leaves it alone while no key exists
        key = await _key(server, None)
        keyed = Listener()
        await keyed.connect(server.url, key)
        await _closes_only(keyless, kept=keyed)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await Listener().connect(server.url, None)


async def test_the_cli_manages_keys_and_revocation_is_immediate(
    sqlite_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = await run_wipsvc(env, tmp_path, "keys", "list")
    assert code == 0 and "No API keys" in out
    code, out, err = await run_wipsvc(
        env, tmp_path, "keys", "create", "--collections", "sinks,taps", "--label", "ci"
    )
    assert code == 0, err
    key = out.strip()
    assert re.fullmatch(r"wip_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", key)
    assert "Created API key 1" in err and "collections: sinks, taps" in err and "only this once" in err
    code, out, err = await run_wipsvc(env, tmp_path, "keys", "create", "--all")
    assert code == 0, err
    second_key = out.strip()

    settings = make_settings(sqlite_url, socket_key_recheck_seconds=0.2)
    async with LiveServer(settings) as server, server.client() as client:
        assert (await client.get("/api/collections", headers=_auth(key))).status_code == 200
        watching, other = Listener(), Listener()  # connected before the revocation
        await watching.connect(server.url, key)
        await other.connect(server.url, second_key)
        code, out, _ = await run_wipsvc(env, tmp_path, "keys", "list")
        lines = out.splitlines()
        assert lines[0].split() == [
            "ID",
            "PREFIX",
            "ROLE",
            "COLLECTIONS",
            "CREATED",
            "LAST",
            "USED",
            "REVOKED",
            "LABEL",
        ]
        assert lines[1].startswith("1 ") and key[:12] in lines[1] and "sinks,taps" in lines[1]
        assert lines[1].split()[6:9] != ["-"] * 3 and lines[1].endswith("ci")  # last used is set
        assert lines[1].split()[2] == "collection"
        assert " * " in lines[2]
        assert key not in out  # the key itself is never shown again

        code, out, _ = await run_wipsvc(env, tmp_path, "keys", "revoke", "1")
        assert code == 0 and "Revoked API key 1" in out
        response = await client.get("/api/collections", headers=_auth(key))
        assert _error(response, 401, "unauthorized")["message"] == "API key revoked"
        # An open connection is closed at the next check, and only the revoked key's.
        await _closes_only(watching, kept=other)
        listener = Listener()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await listener.connect(server.url, key)
        await listener.sio.disconnect()
        # Every key revoked still means "keys exist": the service does not fall back to open.
        code, out, _ = await run_wipsvc(env, tmp_path, "keys", "revoke", key[:12])
        assert code == 0
        _error(await client.get("/api/collections"), 401, "unauthorized")
    code, out, _ = await run_wipsvc(env, tmp_path, "keys", "list", "--json")
    listed = json.loads(out)
    assert listed["success"] is True
    assert [key["revoked_at"] is None for key in listed["keys"]] == [False, True]

    for args, message in (
        (["keys", "create"], "either --collections"),
        (["keys", "create", "--all", "--collections", "sinks"], "either --collections"),
        (["keys", "create", "--collections", "Bad Name"], "invalid collection names"),
        (["keys", "revoke", "99"], "no API key with id 99"),
    ):
        code, out, err = await run_wipsvc(env, tmp_path, *args)
        assert code == 2 and message in err, (args, err)


@pytest.fixture
def trap() -> Iterator[int]:
    """A port held on 127.0.0.1: a server that tried to bind 0.0.0.0 on it would fail
    with "address already in use" rather than serve, so no test can open the service."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


async def test_serve_refuses_a_public_address_without_keys(
    env: dict[str, str], tmp_path: Path, trap: int
) -> None:
    code, out, err = await run_wipsvc(env, tmp_path, "serve", "--host", "0.0.0.0", "--port", str(trap))
    assert code == 2, (out, err)
    assert "refusing to serve on '0.0.0.0': no API keys exist" in err
    assert "wipsvc keys create" in err
    assert "Uvicorn running" not in out + err and "already in use" not in out + err  # never reached bind


async def test_the_app_refuses_to_start_on_a_public_address_without_keys(
    sqlite_url: str, env: dict[str, str], tmp_path: Path, trap: int
) -> None:
    # The app's own check, for servers started without `wipsvc serve`: uvicorn runs the
    # lifespan before it binds, so the failure comes first.
    script = (
        "import uvicorn; from wipsvc.app import create_app; from wipsvc.config import Settings\n"
        f"s = Settings(_env_file=None, host='0.0.0.0', port={trap})\n"
        "uvicorn.run(create_app(s), host=s.host, port=s.port, lifespan='on')\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    output = b"".join(await asyncio.wait_for(process.communicate(), 60)).decode()
    assert process.returncode == 3, output  # uvicorn's "startup failed"
    assert "refusing to serve on '0.0.0.0'" in output
    assert "Uvicorn running" not in output and "already in use" not in output

    # In-process, through the ASGI lifespan protocol (no socket at all): with a key it starts.
    async def lifespan(app: Any) -> list[dict[str, Any]]:
        incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "lifespan.startup.complete":
                incoming.put_nowait({"type": "lifespan.shutdown"})

        incoming.put_nowait({"type": "lifespan.startup"})
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, incoming.get, send)
        return sent

    settings = make_settings(sqlite_url, host="0.0.0.0")
    with pytest.raises(InsecureBind, match="no API keys exist"):
        await lifespan(create_app(settings))
    store = await Store.open(sqlite_url)
    try:
        await create_key(store.keys, ["sinks"])
    finally:
        await store.close()
    sent = await lifespan(create_app(settings))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.fixture
async def limited(sqlite_url: str, fetcher: SafeFetcher) -> AsyncIterator[LiveServer]:
    settings = make_settings(
        sqlite_url, max_request_bytes=2048, job_starts_per_minute=3, max_active_jobs_per_collection=2
    )
    async with LiveServer(settings, fetcher=SlowFetcher(fetcher, 2.0)) as server:
        yield server


async def test_a_body_too_large_gets_413(limited: LiveServer) -> None:
    products = [{"sku": f"S-{i}", "url": f"https://shop.example/{i}"} for i in range(60)]
    async with limited.client() as client:
        declared = await client.post("/api/sinks/wip", json={"products": products})
        error = _error(declared, 413, "request_too_large")
        assert "at most 2048 bytes" in error["message"] and error["details"] == {"max_bytes": 2048}

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the bytes are counted
            yield b'{"products": ['
            for _ in range(40):
                yield b'{"sku": "S-1", "url": "https://shop.example/a-long-enough-path"},'
            yield b"]}"

        chunked = await client.post(
            "/api/sinks/wip", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "transfer-encoding" in chunked.request.headers
        _error(chunked, 413, "request_too_large")
        assert (await client.get("/api/sinks/wip")).status_code == 404  # nothing was created
        small = await client.post("/api/sinks/wip", json={"products": products[:5]})
        assert small.status_code == 201


async def test_job_starts_are_rate_limited_per_key(limited: LiveServer, shop: SampleShop) -> None:
    one, two = await _key(limited, None), await _key(limited, None)
    async with limited.client() as client:
        sinks = await _products(client, one, "sinks", shop.products()[:2])
        taps = await _products(client, one, "taps", shop.products()[2:4])
        # Three starts in a burst, the retry endpoint included in the count …
        for collection, wip_id in (("sinks", sinks[0]), ("sinks", sinks[1]), ("taps", taps[0])):
            started = await client.post(
                f"/api/{collection}/wip/process", json={"wip_ids": [wip_id]}, headers=_auth(one)
            )
            assert started.status_code == 202, started.text
        # … then the fourth waits.
        for path in ("/api/taps/wip/process", f"/api/taps/wip/jobs/{started.json()['job_id']}/retry"):
            refused = await client.post(path, json={"wip_ids": [taps[1]]}, headers=_auth(one))
            error = _error(refused, 429, "rate_limited")
            retry_after = int(refused.headers["retry-after"])
            assert 1 <= retry_after <= 20 and error["details"] == {"retry_after": retry_after}
            assert "at most 3 per minute" in error["message"]
        # Another key has its own allowance.
        other = await client.post("/api/taps/wip/process", json={"wip_ids": [taps[1]]}, headers=_auth(two))
        assert other.status_code == 202, other.text


async def test_active_jobs_per_collection_are_capped(
    sqlite_url: str, fetcher: SafeFetcher, shop: SampleShop
) -> None:
    settings = make_settings(sqlite_url, max_active_jobs_per_collection=2)
    async with LiveServer(settings, fetcher=SlowFetcher(fetcher, 2.0)) as server, server.client() as client:
        sinks = await _products(client, None, "sinks", shop.products()[:3])
        taps = await _products(client, None, "taps", shop.products()[3:4])
        first = await client.post("/api/sinks/wip/process", json={"wip_ids": [sinks[0]]})
        second = await client.post("/api/sinks/wip/process", json={"wip_ids": [sinks[1]]})
        assert first.status_code == second.status_code == 202
        refused = await client.post("/api/sinks/wip/process", json={"wip_ids": [sinks[2]]})
        error = _error(refused, 409, "too_many_active_jobs")
        assert (
            "collection 'sinks' already has 2 active (scheduled, queued or running) jobs" in error["message"]
        )
        assert error["details"] == {"active_jobs": 2, "limit": 2}
        assert (await client.get(f"/api/sinks/wip/{sinks[2]}")).json()["product"]["active_job_id"] is None
        # Other collections are unaffected.
        assert (await client.post("/api/taps/wip/process", json={"wip_ids": taps})).status_code == 202
        # A slot freed (the queued job cancelled) takes a new job.
        await client.post(f"/api/sinks/wip/jobs/{second.json()['job_id']}/cancel")
        assert (await client.post("/api/sinks/wip/process", json={"wip_ids": [sinks[2]]})).status_code == 202
