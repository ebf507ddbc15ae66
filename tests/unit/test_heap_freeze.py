"""`wipsvc serve` freezes the objects it started with, out of the collector's full collections."""

from __future__ import annotations

import gc
from typing import Any

import uvicorn

from wipsvc.serving import DrainingServer


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise AssertionError("no request is made")


async def _drain() -> None:
    return None


async def test_a_started_server_has_frozen_the_heap_it_started_with() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    made_before = [object() for _ in range(3)] + [{"cycle": None}]
    config = uvicorn.Config(_app, host="127.0.0.1", port=0, lifespan="off")
    server = DrainingServer(config, _drain)
    config.load()  # what uvicorn's `serve` does before `startup`
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup()
        assert server.started
        assert gc.get_freeze_count() > len(made_before)
    finally:
        await server.shutdown()
        gc.unfreeze()  # the rest of the test process collects as usual
