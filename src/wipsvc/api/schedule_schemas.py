"""Request and response models of the recurring schedules' endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wipsvc.api.schemas import JOB_ID_EXAMPLE, Success
from wipsvc.domain.schedules import FireOutcome
from wipsvc.domain.statuses import WipStatus


class Selector(BaseModel):
    """Which products a fire takes: those of the collection in one of `statuses`, in no active job."""

    model_config = ConfigDict(extra="forbid")

    statuses: list[WipStatus] = Field(
        default_factory=lambda: [WipStatus.PENDING],
        min_length=1,
        max_length=len(WipStatus),
        description="WIP statuses to take (default: `pending`).",
        examples=[["pending", "error"]],
    )

    @field_validator("statuses")
    @classmethod
    def _no_duplicates(cls, statuses: list[WipStatus]) -> list[WipStatus]:
        if len(set(statuses)) != len(statuses):
            raise ValueError("statuses are repeated")
        return statuses


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str = Field(
        min_length=1,
        max_length=120,
        pattern=r"^[ -~]+$",
        description="When to fire: 5 fields (minute hour day month weekday), or 6 with seconds last, or "
        "an alias such as `@daily`. Due times must be `WIPSVC_SCHEDULE_MIN_INTERVAL_SECONDS` apart.",
        examples=["0 6 * * 1-5"],
    )
    timezone: str = Field(
        "UTC",
        min_length=1,
        max_length=64,
        description="The IANA time zone the cron is read in.",
        examples=["Europe/Paris"],
    )
    selector: Selector = Field(default_factory=Selector, description="Which products each fire takes.")


class ScheduleOut(BaseModel):
    id: int = Field(description="The schedule's id.", examples=[1])
    collection_name: str = Field(description="The collection it takes products of.", examples=["sinks"])
    cron: str = Field(description="When it fires, read in `timezone`.", examples=["0 6 * * 1-5"])
    timezone: str = Field(description="The IANA time zone of the cron.", examples=["Europe/Paris"])
    selector: Selector = Field(description="Which products each fire takes.")
    paused: bool = Field(description="A paused schedule does not fire; resuming skips the times passed.")
    next_fire_at: datetime | None = Field(description="Its next due time (UTC); null while paused.")
    created_at: datetime = Field(description="When it was created (UTC).")
    updated_at: datetime = Field(description="When it last changed: created, paused, resumed or fired (UTC).")


class ScheduleResponse(BaseModel):
    success: Success = True
    schedule: ScheduleOut = Field(description="The schedule.")


class ScheduleListResponse(BaseModel):
    success: Success = True
    schedules: list[ScheduleOut] = Field(description="The collection's schedules, oldest first.")
    count: int = Field(description="Schedules in `schedules`.", examples=[1])


class FireOut(BaseModel):
    due_at: datetime = Field(description="The due time this fire was for (UTC).")
    fired_at: datetime = Field(description="When it was handled (UTC).")
    outcome: FireOutcome = Field(
        description="`fired` (jobs made), `skipped` (nothing to process: no job) or `missed` (the service "
        "was down longer than `WIPSVC_SCHEDULE_MISSED_FIRE_GRACE_SECONDS` past it: no job)."
    )
    job_ids: list[str] = Field(
        description="The jobs made, each of at most WIPSVC_MAX_BATCH products.", examples=[[JOB_ID_EXAMPLE]]
    )
    products: int = Field(description="Products taken.", examples=[42])


class FiresResponse(BaseModel):
    success: Success = True
    fires: list[FireOut] = Field(description="The schedule's fires, newest first.")


class ScheduleDeletedResponse(BaseModel):
    success: Success = True
    message: str = Field(description="What was deleted, for people.", examples=["Schedule 1 deleted."])
