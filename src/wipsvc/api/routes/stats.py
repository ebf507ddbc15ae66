"""Service-wide figures for dashboards: throughput, job counts and external-service quotas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from wipsvc.api.deps import Access, ServicesDep
from wipsvc.api.errors import error_responses
from wipsvc.api.schemas import Success
from wipsvc.jobs.models import JobStatus
from wipsvc.store.stats_repo import StatsRepository
from wipsvc.store.tables import utcnow

router = APIRouter(prefix="/api", tags=["health"], responses=error_responses(401))

WINDOW_MINUTES = 15

_EXAMPLE: dict[str, Any] = {
    "success": True,
    "generated_at": "2025-10-13T23:59:30Z",
    "window_start": "2025-10-13T23:45:00Z",
    "products_finished_last_15m": [0, 0, 3, 5, 4, 6, 5, 0, 0, 2, 4, 4, 5, 3, 1],
    "products_failed_last_15m": [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
    "running_jobs": 1,
    "queued_jobs": 2,
    "quotas": {
        "sheets_write": {
            "limit": 60,
            "shared_by": 1,
            "period_seconds": 60.0,
            "max_concurrent": 6,
            "burst": 30,
            "available": 42,
            "in_flight": 1,
            "waiting": 0,
            "admitted": 318,
            "throttled": 0,
            "paused_for": 0.0,
        },
    },
}


class StatsResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    success: Success = True
    generated_at: datetime = Field(description="When these figures were read (UTC).")
    window_start: datetime = Field(description="Start of the first minute of the per-minute lists (UTC).")
    products_finished_last_15m: list[int] = Field(
        description="Products finished (succeeded or failed) per clock minute, oldest first; "
        "the last entry is the current, still running minute.",
        min_length=WINDOW_MINUTES,
        max_length=WINDOW_MINUTES,
    )
    products_failed_last_15m: list[int] = Field(
        description="Of those, the products that failed, per minute.",
        min_length=WINDOW_MINUTES,
        max_length=WINDOW_MINUTES,
    )
    running_jobs: int = Field(ge=0, description="Jobs running now, on every instance.")
    queued_jobs: int = Field(ge=0, description="Jobs waiting for a free slot.")
    quotas: dict[str, Any] = Field(
        default_factory=dict,
        description="Per external service (Sheets, Apps Script, LLM…): usage against its limit "
        "and recent 429 answers. `limit` is this instance's part of the quota, which it shares "
        "with `shared_by` instances in all. Keys and shape are open; clients should render what "
        "they find.",
    )
    accounts: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Quota usage per account (a Google service account or OAuth user, an LLM key at "
        "its endpoint): `service`, `alias`, the `collections` that used it, and `buckets` (each "
        "shaped as in `quotas`; with Redis `shared_by` is `redis` and usage counts every instance). "
        "An admin key also sees `account` and `project`; a collection key sees only the accounts "
        "its collections used, by alias.",
    )


@router.get(
    "/stats",
    response_model=StatsResponse,
    summary="Service statistics",
    response_description="Throughput, job counts and quota usage, as of `generated_at`.",
)
async def get_stats(services: ServicesDep, access: Access) -> StatsResponse:
    """Throughput over the last 15 minutes, running and queued jobs, and quota usage. Products
    and jobs are those of the collections the API key may use; quotas are the instance's, and
    per account those of the accounts the key's collections use."""
    repo = StatsRepository(services.store.db)
    now = utcnow()
    throughput = await repo.throughput(WINDOW_MINUTES, now=now, collections=access.collections)
    jobs = await repo.job_counts(access.collections)
    return StatsResponse(
        generated_at=now,
        window_start=throughput.window_start,
        products_finished_last_15m=throughput.finished,
        products_failed_last_15m=throughput.failed,
        running_jobs=jobs[JobStatus.RUNNING],
        queued_jobs=jobs[JobStatus.QUEUED],
        quotas=services.backends.quota_totals(),
        accounts=services.backends.quota_usage(access.collections, reveal=access.is_admin),
    )
