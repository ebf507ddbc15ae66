"""The service's edge, through real HTTP: which Host names it answers, whose X-Forwarded-For it
believes, how large a request head it reads."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support.live import LiveServer, make_settings
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.auth import create_key
from wipsvc.demo.shop import SampleShop

FOREIGN = "attacker.example"


async def websocket_status(url: str, host: str, path: str = "/socket.io/?EIO=4&transport=websocket") -> int:
    """The HTTP status a WebSocket handshake with this `Host` gets (101: accepted)."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port
    reader, writer = await asyncio.open_connection("127.0.0.1", parts.port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        return int(status_line.split()[1])
    finally:
        writer.close()


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "host_not_allowed"
    assert FOREIGN not in error["message"]


async def test_open_mode_answers_only_loopback_names(sqlite_url: str) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        port = urlsplit(server.url).port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}", "localhost."):
            response = await client.get("/api/collections", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)
            assert (await websocket_status(server.url, host)) == 101, host
        # A rebound name, with or without port, and malformed ones: REST, Socket.IO polling, WebSocket.
        for host in (FOREIGN, f"{FOREIGN}:{port}", "127.0.0.1.attacker.example", "localhost:abc", ""):
            _refused(await client.get("/api/collections", headers={"Host": host}))
            _refused(await client.get("/socket.io/?EIO=4&transport=polling", headers={"Host": host}))
            _refused(await client.get("/", headers={"Host": host}))
            assert (await websocket_status(server.url, host)) == 403, host

        # Once a key exists, every request needs it anyway: the Host no longer matters.
        key = (await create_key(server.services.store.keys, None)).key
        response = await client.get(
            "/api/collections", headers={"Host": FOREIGN, "Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200, response.text
        assert (await client.get("/api/collections", headers={"Host": FOREIGN})).status_code == 401


async def test_allowed_hosts_extend_the_list_and_are_checked_with_keys(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, allowed_hosts="wipsvc.example.com, Other.Example:8443")
    async with LiveServer(settings) as server, server.client() as client:
        for host in ("wipsvc.example.com", "wipsvc.example.com:443", "other.example", "localhost"):
            assert (await client.get("/api/collections", headers={"Host": host})).status_code == 200, host
        _refused(await client.get("/api/collections", headers={"Host": FOREIGN}))

        key = (await create_key(server.services.store.keys, None)).key
        keyed = {"Authorization": f"Bearer {key}"}
        _refused(await client.get("/api/collections", headers={"Host": FOREIGN, **keyed}))
        assert (await websocket_status(server.url, FOREIGN)) == 403
        response = await client.get("/api/collections", headers={"Host": "wipsvc.example.com", **keyed})
        assert response.status_code == 200


async def _start_jobs(client: httpx.AsyncClient, shop: SampleShop, forwarded_for: list[str]) -> list[int]:
    body = {"products": [{"sku": sku, "url": url} for sku, url in shop.products()[: len(forwarded_for)]]}
    created = await client.post("/api/sinks/wip", json=body)
    assert created.status_code == 201, created.text
    statuses = []
    for wip_id, address in zip(created.json()["wip_ids"], forwarded_for, strict=True):
        response = await client.post(
            "/api/sinks/wip/process", json={"wip_ids": [wip_id]}, headers={"X-Forwarded-For": address}
        )
        statuses.append(response.status_code)
    return statuses


async def test_forwarded_for_does_not_reset_the_job_start_limit(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    settings = make_settings(sqlite_url, job_starts_per_minute=2, max_active_jobs_per_collection=10)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        statuses = await _start_jobs(client, shop, ["203.0.113.1", "203.0.113.2", "203.0.113.3"])
        assert statuses == [202, 202, 429]


async def test_forwarded_for_counts_behind_a_trusted_proxy(
    sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    settings = make_settings(
        sqlite_url, job_starts_per_minute=1, max_active_jobs_per_collection=10, trusted_proxies="127.0.0.1"
    )
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        # Each client behind the proxy has its own budget: one job a minute.
        statuses = await _start_jobs(client, shop, ["203.0.113.1", "203.0.113.2", "203.0.113.1"])
        assert statuses == [202, 202, 429]


async def test_oversized_request_heads_are_refused(sqlite_url: str) -> None:
    async with LiveServer(make_settings(sqlite_url, max_header_bytes=65_536)) as server:
        parts = urlsplit(server.url)
        assert parts.port
        reader, writer = await asyncio.open_connection("127.0.0.1", parts.port)
        try:
            head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: " + b"x" * 200_000
            # The server may answer and close before it has read everything.
            with contextlib.suppress(ConnectionError):
                writer.write(head)
                await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 10)
            assert status_line.split()[1] == b"400", status_line
        finally:
            writer.close()
        async with server.client() as client:
            assert (await client.get("/healthz", headers={"X-Filler": "x" * 60_000})).status_code == 200
            # A head over the limit that arrives in one piece is refused too, on every path.
            for path in ("/healthz", "/socket.io/?EIO=4&transport=polling"):
                response = await client.get(path, headers={"X-Filler": "x" * 66_000})
                assert response.status_code == 431, response.text
                assert response.json()["error"]["code"] == "headers_too_large"
