"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from wipsvc.api.deps import ServicesDep
from wipsvc.api.errors import ApiError, error_responses
from wipsvc.api.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthResponse,
    summary="Liveness probe",
    response_description="The process is up.",
)
async def healthz() -> HealthResponse:
    """The process is up."""
    return HealthResponse()


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    summary="Readiness probe",
    response_description="The database answers; the number of jobs this instance runs.",
    responses=error_responses(503),
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
