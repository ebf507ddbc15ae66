"""Run an ASGI app on 127.0.0.1 in a background thread, for fakes of external services.

The real client libraries (requests, httpx, google-auth) then talk real HTTP to the
fake. The server has its own thread and event loop so that it keeps answering while
the test's loop is blocked or busy, and so that synchronous clients work too.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

_START_TIMEOUT = 10.0


class ThreadedServer:
    """``with ThreadedServer(app) as server: requests.get(server.url + "/…")``."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost"):
            # The fakes stand in for remote services; they must never listen beyond loopback.
            raise ValueError("ThreadedServer only listens on 127.0.0.1")
        self._app = app
        self._host = "127.0.0.1"
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("server already started")
        # Bind here rather than in uvicorn so that the ephemeral port is known before the thread runs.
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so; without it
        # Nagle's algorithm and delayed ACKs add ~40 ms to every keep-alive request.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._requested_port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            loop="asyncio",
            http="h11",
            ws="none",  # no websockets import: its deprecation warnings would be errors under pytest
            lifespan="auto",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=self._run, args=(server, sock), name=f"fake-server-{self._port}", daemon=True
        )
        self._thread.start()
        self._wait_started(server)
        return self

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        try:
            asyncio.run(serve())
        except BaseException as exc:  # surfaced by start()/stop() in the test thread
            self._error = exc
        finally:
            sock.close()

    def _wait_started(self, server: uvicorn.Server) -> None:
        thread = self._thread
        assert thread is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"fake server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fake server did not start in time")
            thread.join(0.01)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(_START_TIMEOUT)
        self._server = None
        self._thread = None
        self.loop = None
        if thread.is_alive():
            raise RuntimeError("fake server did not stop in time")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServedFake:
    """Start, stop and `with` for a fake that serves its app on a ``ThreadedServer``."""

    _server: ThreadedServer

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
