"""The seed's job endpoints, plus retry and delete."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from wipsvc.api.deps import AllowedCollectionName, ExistingCollection, ServicesDep
from wipsvc.api.errors import error_responses
from wipsvc.api.job_json import job_json_response
from wipsvc.api.limits import JobCap, JobStartLimit
from wipsvc.api.schemas import (
    CancelResponse,
    DeleteResponse,
    Job,
    JobListResponse,
    JobResponse,
    PriorityChange,
    ProcessRequest,
    ProcessResponse,
)
from wipsvc.domain.statuses import ItemStatus, JobStatus
from wipsvc.domain.times import iso_utc
from wipsvc.services import Services
from wipsvc.store import JobRecord

router = APIRouter(prefix="/api/{collection}/wip", tags=["jobs"], responses=error_responses(401, 404, 422))

# Job ids are UUIDs; the pattern also keeps bytes PostgreSQL cannot store (NUL) out of queries.
JobId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        examples=["ce672290-f093-4801-b4a1-078f10ab0801"],
    ),
]


_STARTS_JOB = error_responses(
    400,
    409,
    413,
    429,
    examples={409: ("conflict", "products already in an active job: 3, 4")},
)


class RetrySelection(StrEnum):
    FAILED = "failed"
    SKIPPED = "skipped"
    UNFINISHED = "unfinished"  # failed and skipped


_RETRIED_STATUSES = {
    RetrySelection.FAILED: {ItemStatus.FAILED},
    RetrySelection.SKIPPED: {ItemStatus.SKIPPED},
    RetrySelection.UNFINISHED: {ItemStatus.FAILED, ItemStatus.SKIPPED},
}


@router.post(
    "/process",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ProcessResponse,
    dependencies=[JobStartLimit],
    summary="Start a job",
    response_description="The job is queued; follow it at `status_url` or over Socket.IO.",
    responses=_STARTS_JOB,
)
async def start_job(
    body: ProcessRequest, collection: ExistingCollection, services: ServicesDep, cap: JobCap
) -> ProcessResponse:
    """Start processing WIP products in the background; answers at once with a `job_id`. With
    `run_at`, the job is `scheduled` until that time (announced over Socket.IO by
    `wip_job_scheduled`), then queued; it holds its products and counts as active meanwhile."""
    job = await services.job_service.start(
        collection.name,
        body.wip_ids,
        run_at=body.run_at,
        admit=lambda: cap.slot(services, collection.name),
        priority=body.priority,
    )
    return _accepted(job)


@router.get(
    "/jobs",
    response_model=JobListResponse,
    summary="List a collection's recent jobs",
    response_description="The most recent jobs, newest first.",
)
async def list_jobs(
    collection: ExistingCollection,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Most recent jobs to return.")] = 10,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
) -> JobListResponse:
    """Recent jobs of the collection, newest first."""
    jobs = await services.store.jobs.recent(collection.name, limit=limit, status=status)
    views = [await job_view(services, job) for job in jobs]
    return JobListResponse(jobs=views, count=len(views))


@router.get(
    "/jobs/{job_id}",
    response_model=JobResponse,
    summary="Get a job",
    response_description="The job's status, counters, ETA and per-product results.",
)
async def get_job(job_id: JobId, collection: AllowedCollectionName, services: ServicesDep) -> Response:
    """A job's status, counters and per-product results."""
    # No lookup of the collection: its job proves it exists (this is the route clients poll).
    job, results_json = await services.job_service.poll(collection, job_id)
    return job_json_response(job, await job_view(services, job, with_results=False), results_json)


@router.patch(
    "/jobs/{job_id}",
    response_model=JobResponse,
    summary="Change a waiting job's priority",
    response_description="The job with its new priority.",
    responses=error_responses(
        400,
        409,
        413,
        examples={409: ("conflict", "job ce672290-… is running: its priority can change only while queued")},
    ),
)
async def change_job_priority(
    job_id: JobId, body: PriorityChange, collection: ExistingCollection, services: ServicesDep
) -> JobResponse:
    """Raise (or lower) the priority of a job that is still scheduled or queued: `{"priority":
    "urgent"}`. A job that runs or has ended answers 409."""
    job = await services.job_service.change_priority(collection.name, job_id, body.priority)
    return JobResponse(job=await job_view(services, job))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=CancelResponse,
    summary="Cancel a job",
    response_description="Cancelled (a scheduled or queued job), or cancellation requested (a running one).",
    responses=error_responses(
        409, examples={409: ("conflict", "job ce672290-… has already ended (completed)")}
    ),
)
async def cancel_job(job_id: JobId, collection: ExistingCollection, services: ServicesDep) -> CancelResponse:
    """Cancel a job. A scheduled or queued job ends at once; a running one starts no new product and
    ends `cancelled` once the products in flight finish."""
    job = await services.job_service.cancel(collection.name, job_id)
    message = (
        "Job cancelled."
        if job.status is JobStatus.CANCELLED
        else "Cancellation requested: products already being processed will complete."
    )
    return CancelResponse(message=message, job=await job_view(services, job))


@router.post(
    "/jobs/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ProcessResponse,
    dependencies=[JobStartLimit],
    summary="Retry a finished job's failed (or skipped) products",
    response_description="A new job, linked to this one by `retry_of`, is queued.",
    responses=error_responses(
        409, 429, examples={409: ("conflict", "job ce672290-… has no failed products")}
    ),
)
async def retry_job(
    job_id: JobId,
    collection: ExistingCollection,
    services: ServicesDep,
    cap: JobCap,
    products: Annotated[
        RetrySelection,
        Query(
            description="Which products to run again: `failed` (the default), `skipped` (never started "
            "because the job was cancelled) or `unfinished` (both)."
        ),
    ] = RetrySelection.FAILED,
) -> ProcessResponse:
    """Re-run the failed products of a finished job (or the ones a cancellation skipped), as a new
    job linked to it."""
    new_job = await services.job_service.retry(
        collection.name,
        job_id,
        _RETRIED_STATUSES[products],
        label=products.value,
        admit=lambda: cap.slot(services, collection.name),
    )
    return _accepted(new_job)


@router.delete(
    "/jobs/{job_id}",
    response_model=DeleteResponse,
    summary="Delete a finished job",
    response_description="The job, its ledger and its events are deleted; products and sheet rows stay.",
    responses=error_responses(
        409, examples={409: ("conflict", "job ce672290-… is still running; cancel it first")}
    ),
)
async def delete_job(job_id: JobId, collection: ExistingCollection, services: ServicesDep) -> DeleteResponse:
    """Delete a job that has ended (completed, failed or cancelled) with its history. A queued or
    running job answers 409: cancel it first."""
    deleted = await services.store.lifecycle.delete_job(collection.name, job_id)
    return DeleteResponse.of(f"Job {job_id} deleted.", deleted)


def _accepted(job: JobRecord) -> ProcessResponse:
    count = job.total_products
    message = f"Background processing started for {count} products. Use the job_id to track progress."
    if job.status is JobStatus.SCHEDULED and job.run_at is not None:
        when = iso_utc(job.run_at)
        message = (
            f"Background processing scheduled for {count} products at {when}. Use the job_id to track it."
        )
    return ProcessResponse(
        job_id=job.job_id,
        total_products=count,
        message=message,
        status_url=f"/api/{job.collection_name}/wip/jobs/{job.job_id}",
    )


async def job_view(services: Services, job: JobRecord, *, with_results: bool = True) -> Job:
    """The record's fields as the API shows them, with the results (or none: the status route
    writes them out itself) and the estimate as of now in place of the stored ones."""
    fields = {name: getattr(job, name) for name in Job.model_fields if name not in _AS_OF_NOW}
    return Job.model_validate(
        {
            **fields,
            "results": await services.job_service.results(job) if with_results else [],
            "eta_seconds": await services.job_service.eta_seconds(job),
        }
    )


# Stored on the record, but shown as of now (and a job's stored results are parsed only if asked for).
_AS_OF_NOW = frozenset({"results", "eta_seconds"})
