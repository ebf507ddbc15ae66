"""The real service for the benchmarks: ``create_app(Settings())`` under uvicorn, in its own process.

Settings come from ``WIPSVC_*`` environment variables only (never a ``.env`` file). Prints its base
URL on the first line of stdout, then serves until its stdin is closed.
"""

from __future__ import annotations

import asyncio
import sys

from wipsvc.app import create_app
from wipsvc.config import Settings
from wipsvc.embedded import EmbeddedServer
from wipsvc.server_options import uvicorn_options


async def main() -> None:
    settings = Settings(_env_file=None)
    server = EmbeddedServer(create_app(settings), host="127.0.0.1", port=0, options=uvicorn_options(settings))
    await server.start()
    print(server.url, flush=True)
    try:
        await asyncio.to_thread(sys.stdin.read)  # returns when the parent closes our stdin
    finally:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
