"""Keeping tests on loopback: a guard transport, injected DNS answers and a local HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit

import httpx

LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")


class NetworkViolation(AssertionError):
    """A test tried to reach an address beyond loopback."""


class LoopbackOnlyTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that fails the test on any request not addressed to a loopback IP.

    The check runs before the connection pool sees the request, so nothing is sent; host
    names are refused too, because resolving them could already leave the machine.
    """

    def __init__(self) -> None:
        super().__init__(retries=0)
        self.violations: list[str] = []
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not is_loopback_ip(request.url.host):
            self.violations.append(str(request.url))
            raise NetworkViolation(f"test tried to connect beyond loopback: {request.url}")
        self.requests.append(request)
        return await super().handle_async_request(request)


def is_loopback_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address in LOOPBACK_V4 or address == ipaddress.IPv6Address("::1")


class StaticResolver:
    """A ``Resolver`` answering from a fixed table; unknown names fail like a DNS lookup."""

    def __init__(self, mapping: dict[str, list[str]]) -> None:
        self.mapping = {name.lower(): list(addresses) for name, addresses in mapping.items()}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        try:
            return list(self.mapping[host.lower().rstrip(".")])
        except KeyError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def static_resolver(mapping: dict[str, list[str]]) -> StaticResolver:
    return StaticResolver(mapping)


PRODUCT_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Oak Chair | Test Shop</title>
<script type="application/ld+json">
{"@context": "https://schema.org", "@type": "Product", "name": "Oak Chair", "sku": "OC-1",
 "offers": {"@type": "Offer", "price": "129.00", "priceCurrency": "EUR"}}
</script></head>
<body><h1>Oak Chair</h1><p>A sturdy chair made of oak.</p></body></html>
"""


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased


@dataclass(slots=True)
class Reply:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


Route = Callable[[ReceivedRequest], Reply]
_REASONS = {200: "OK", 302: "Found", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable"}
_HTML = ("Content-Type", "text/html; charset=utf-8")


def _redirect(location: str) -> Reply:
    return Reply(302, [("Location", location), _HTML], b"<p>moved</p>")


def _default_routes() -> dict[str, Route]:
    return {
        "/product": lambda req: Reply(200, [_HTML], PRODUCT_HTML.encode()),
        "/redirect": lambda req: _redirect(req.query["to"]),
        "/set-cookie-redirect": lambda req: Reply(
            302, [("Location", req.query["to"]), ("Set-Cookie", "session=s3cret; Path=/; HttpOnly")]
        ),
        "/cookie-gate": lambda req: (
            Reply(200, [_HTML], PRODUCT_HTML.encode())
            if "visited=1" in req.headers.get("cookie", "")
            else Reply(302, [("Location", "/cookie-gate"), ("Set-Cookie", "visited=1; Path=/")])
        ),
        "/loop/a": lambda req: _redirect("/loop/b"),
        "/loop/b": lambda req: _redirect("/loop/a"),
        "/chain": lambda req: (
            _redirect(f"/chain?left={int(req.query['left']) - 1}")
            if int(req.query["left"]) > 0
            else Reply(200, [_HTML], PRODUCT_HTML.encode())
        ),
        "/big": lambda req: Reply(200, [_HTML], b"<html>" + b"x" * int(req.query["size"])),
        "/json": lambda req: Reply(200, [("Content-Type", "application/json")], b'{"name": "Oak Chair"}'),
        "/no-content-type": lambda req: Reply(200, [], PRODUCT_HTML.encode()),
        "/latin1": lambda req: Reply(
            200, [("Content-Type", "text/html; charset=iso-8859-1")], "<h1>Café</h1>".encode("latin-1")
        ),
        "/meta-charset": lambda req: Reply(
            200, [("Content-Type", "text/html")],
            '<html><head><meta charset="windows-1252"></head><h1>Café</h1>'.encode("cp1252"),
        ),
        "/status": lambda req: Reply(int(req.query["code"]), [_HTML], b"<h1>status</h1>"),
    }  # fmt: skip


class LocalHttpServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 (ephemeral port) running in a background thread.

    Usable from sync and async tests alike: ``with LocalHttpServer() as server: server.url("/product")``.
    Besides the table routes there are two streaming ones: ``/big-stream?size=N`` (no Content-Length)
    and ``/trickle`` (headers, then one byte every 50 ms until the client goes away).
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = _default_routes()
        self.requests: list[ReceivedRequest] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("local test server did not start")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        handlers: set[asyncio.Task[None]] = set()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await self._handle(reader, writer)
            finally:
                handlers.discard(task)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        parts = urlsplit(target)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        request = ReceivedRequest(method, parts.path, query, headers)
        self.requests.append(request)
        with contextlib.suppress(ConnectionError):
            if parts.path in ("/trickle", "/big-stream"):
                forever = parts.path == "/trickle"
                await _stream(reader, writer, forever=forever, size=int(query.get("size", 0)))
                return
            route = self.routes.get(parts.path)
            reply = route(request) if route else Reply(404, [_HTML], b"<h1>not found</h1>")
            await _write_reply(writer, reply)


async def _stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, forever: bool, size: int
) -> None:
    # No Content-Length: the body ends when the connection closes (or never).
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html>")
    await writer.drain()
    sent = 0
    # drain() does not notice a departed client, so stop when its side of the stream ends.
    while (forever or sent < size) and not (writer.is_closing() or reader.at_eof()):
        chunk = b"x" if forever else b"x" * min(8192, size - sent)
        writer.write(chunk)
        await writer.drain()
        sent += len(chunk)
        if forever:
            await asyncio.sleep(0.05)


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply) -> None:
    lines = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in reply.headers]
    lines += [f"Content-Length: {len(reply.body)}", "Connection: close", "", ""]
    writer.write("\r\n".join(lines).encode("latin-1") + reply.body)
    await writer.drain()
