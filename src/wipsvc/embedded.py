"""Serving an ASGI app with uvicorn inside the current event loop (demo, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any

import uvicorn


class EmbeddedServer:
    """uvicorn on an already-bound socket, so the port is known before serving starts."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """``options`` are more uvicorn settings (see ``wipsvc.server_options``)."""
        # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on connections whose socket
        # says TCP, and an accepted socket inherits the listener's. Without it, h11's two writes
        # (head, then body) met Nagle and the client's delayed ACK: every answer after the first
        # on a kept-alive connection took ~44 ms instead of ~2.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            app, **{"lifespan": "on", "log_level": log_level, "ws": "websockets-sansio", **(options or {})}
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("server did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None
        self._socket.close()
