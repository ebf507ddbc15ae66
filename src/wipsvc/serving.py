"""`wipsvc serve`: uvicorn, with a shutdown that hands the running jobs over first.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, closes the open ones (Socket.IO
clients included) and only then runs the app's shutdown. Jobs are therefore drained before
all that, while the clients connected here can still be told: the steps in flight finish
(within `shutdown_grace_seconds`), each job is checkpointed and handed back with a `paused`
event, and `/readyz` answers 503 meanwhile. A second Ctrl-C cuts the wait short.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn

from wipsvc.api.deps import NotStarted, app_runtime
from wipsvc.app import create_api, outermost_app
from wipsvc.config import Settings
from wipsvc.server_options import uvicorn_options

log = logging.getLogger(__name__)

# uvicorn's exit status when the app could not start.
STARTUP_FAILURE = 3


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: Callable[[], Coroutine[Any, Any, None]]) -> None:
        super().__init__(config)
        self._drain = drain

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        draining = asyncio.create_task(self._drain())
        while not draining.done():
            await asyncio.wait({draining}, timeout=0.1)
            if self.force_exit:  # asked twice: stop waiting for the steps in flight
                draining.cancel()
        try:
            await draining
        except asyncio.CancelledError:
            log.warning("shutdown forced: running jobs resume when their leases expire")
        except Exception:
            log.exception("handing the running jobs over failed; they resume when their leases expire")
        # Socket.IO sends through a writer task per connection: give the writers their turn to
        # send the `paused` events queued just now, before uvicorn closes the connections.
        await asyncio.sleep(0.2)
        await super().shutdown(sockets)


def build_server(settings: Settings) -> DrainingServer:
    api, realtime = create_api(settings)

    async def drain() -> None:
        try:
            services = app_runtime(api).services
        except NotStarted:  # the app never finished starting: nothing runs
            return
        await services.drain()

    config = uvicorn.Config(
        outermost_app(settings, api, realtime),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        # Logging is configured already (wipsvc.logs), and wipsvc.api.request_log writes the
        # access log, with request ids and at DEBUG for routine reads.
        log_config=None,
        access_log=False,
        **uvicorn_options(settings),
    )
    return DrainingServer(config, drain)


def run(server: uvicorn.Server) -> None:
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
