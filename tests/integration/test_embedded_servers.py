"""The servers the demo, the tests and the benchmarks embed answer without Nagle's delay.

uvicorn's h11 protocol writes a response's head and body separately. On a connection without
TCP_NODELAY the body waits for the client to acknowledge the head, and the client delays that
acknowledgement (40 ms on Linux): every answer after the first on a kept-alive connection took
~44 ms. asyncio sets TCP_NODELAY only where the accepted socket says it is TCP, which it inherits
from the listener these servers bind themselves; checked here on the live connections.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import uvicorn

from wipsvc.demo.shop import SampleShop
from wipsvc.embedded import EmbeddedServer


def _nodelay_of_connections(server: uvicorn.Server) -> list[int]:
    return [
        protocol.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        for protocol in server.server_state.connections
    ]


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_the_embedded_service_server_sets_tcp_nodelay() -> None:
    server = EmbeddedServer(_hello)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
            assert (await client.get("/")).text == "ok"
            assert _nodelay_of_connections(server._server) == [1]  # the kept-alive connection
    finally:
        await server.stop()


def test_the_sample_shop_sets_tcp_nodelay() -> None:
    with SampleShop() as shop, httpx.Client(base_url=shop.base_url, trust_env=False) as client:
        assert client.get("/").status_code == 200
        assert shop._server is not None
        assert _nodelay_of_connections(shop._server) == [1]
