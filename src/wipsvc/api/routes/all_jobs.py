"""Jobs of every collection the caller may see, in one paged listing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from wipsvc.api.deps import Access, ServicesDep
from wipsvc.api.errors import error_responses
from wipsvc.api.routes.jobs import job_view
from wipsvc.api.schemas import JobPageResponse
from wipsvc.collection import COLLECTION_NAME_PATTERN
from wipsvc.jobs.models import JobStatus

router = APIRouter(prefix="/api", tags=["jobs"], responses=error_responses(401, 422))


@router.get(
    "/jobs",
    response_model=JobPageResponse,
    summary="List jobs across collections",
    response_description="One page of jobs, newest first, with the number matching in all.",
)
async def list_all_jobs(
    services: ServicesDep,
    access: Access,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    collection: Annotated[
        str | None, Query(pattern=COLLECTION_NAME_PATTERN, description="Only jobs of this collection.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Jobs per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Jobs to skip.")] = 0,
) -> JobPageResponse:
    """Recent jobs of every collection the API key may use (all of them without keys), newest
    first. A collection outside the key's reach lists no jobs, exactly like one without jobs."""
    if collection is not None and not access.may_see(collection):
        return JobPageResponse(jobs=[], total=0, limit=limit, offset=offset)
    jobs, total = await services.store.job_listing.page(
        visible=access.collections, collection=collection, status=status, limit=limit, offset=offset
    )
    return JobPageResponse(
        jobs=[await job_view(services, job) for job in jobs], total=total, limit=limit, offset=offset
    )
