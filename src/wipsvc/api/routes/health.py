"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from wipsvc.api.deps import ServicesDep
from wipsvc.api.errors import ApiError
from wipsvc.api.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """The process is up."""
    return HealthResponse()


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    responses={503: {"description": "Database unreachable, or shutting down"}},
)
async def readyz(services: ServicesDep) -> ReadyResponse:
    """The service can take work: its database answers and it is not shutting down."""
    if services.registry.draining:
        raise ApiError(503, "not_ready", "shutting down: running jobs are being handed over")
    try:
        await services.store.ping()
    except Exception as error:
        raise ApiError(503, "not_ready", f"database unreachable: {type(error).__name__}") from error
    return ReadyResponse(running_jobs=len(services.registry.running_job_ids))
