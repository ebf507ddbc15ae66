"""The uvicorn options that belong to the service's security, shared by `wipsvc serve` and the
servers embedded in the demo, the tests and the benchmarks (so tests exercise what runs)."""

from __future__ import annotations

from typing import Any

from wipsvc.config import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        # h11 rather than httptools: only h11 caps how much of a request's head it buffers (an
        # oversized request line or header set gets 400 instead of being held in memory).
        "http": "h11",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "ws": "websockets-sansio",
        # A WebSocket message is a request body too; engine.io refuses larger ones anyway.
        "ws_max_size": settings.max_request_bytes,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, which would let
        # any local caller pick its own address (and so its own rate-limit bucket).
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies),
    }
