"""Prometheus metrics (see `wipsvc.metrics` for what they count)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from wipsvc.api.deps import Access, ServicesDep
from wipsvc.api.errors import ApiError, error_responses
from wipsvc.auth import Principal

router = APIRouter(tags=["health"])


def may_read_metrics(principal: Principal) -> bool:
    """Metrics describe every collection's work: only an admin key may read them (and, in open
    mode, a local caller)."""
    return principal.is_admin


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    response_description="Metrics in Prometheus's text format.",
    responses={
        200: {
            "description": "Metrics in Prometheus's text format",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        },
        **error_responses(401, 403, examples={403: ("forbidden", "metrics need an administrator's API key")}),
    },
)
async def get_metrics(services: ServicesDep, access: Access) -> Response:
    """Jobs by status, products by outcome, step durations, quota buckets, 429s by service,
    LLM tokens and Socket.IO clients, for Prometheus to scrape."""
    if not may_read_metrics(access):
        raise ApiError(403, "forbidden", "metrics need an administrator's API key")
    return Response(await services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
