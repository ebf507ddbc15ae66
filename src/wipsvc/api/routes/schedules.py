"""Recurring schedules of a collection: create, list, pause, resume, delete, and the fires log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from wipsvc.api.deps import ExistingCollection, ServicesDep
from wipsvc.api.errors import error_responses
from wipsvc.api.schedule_schemas import (
    FireOut,
    FiresResponse,
    ScheduleDeletedResponse,
    ScheduleIn,
    ScheduleListResponse,
    ScheduleOut,
    ScheduleResponse,
    Selector,
)
from wipsvc.domain.statuses import WipStatus
from wipsvc.store.schedules_repo import FireRecord, ScheduleRecord

router = APIRouter(
    prefix="/api/{collection}/schedules", tags=["schedules"], responses=error_responses(401, 404, 422)
)

ScheduleId = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]


def schedule_view(schedule: ScheduleRecord) -> ScheduleOut:
    return ScheduleOut(
        id=schedule.id,
        collection_name=schedule.collection_name,
        cron=schedule.cron,
        timezone=schedule.timezone,
        selector=Selector(statuses=[WipStatus(value) for value in schedule.statuses]),
        paused=schedule.paused,
        next_fire_at=None if schedule.paused else schedule.next_fire_at,
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )


def fire_view(fire: FireRecord) -> FireOut:
    return FireOut(
        due_at=fire.due_at,
        fired_at=fire.fired_at,
        outcome=fire.outcome,
        job_ids=fire.job_ids,
        products=fire.products,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleResponse,
    summary="Create a recurring schedule",
    response_description="The schedule, with its first due time.",
    responses=error_responses(400, 413),
)
async def create_schedule(
    body: ScheduleIn, collection: ExistingCollection, services: ServicesDep
) -> ScheduleResponse:
    """Process the collection's products at the times a cron expression gives, read in a time
    zone. Each fire takes the products in the selector's statuses (default `pending`) that no
    active job holds, oldest first, as jobs of at most `WIPSVC_MAX_BATCH` products; with nothing
    to take it makes no job and logs a `skipped` fire. A due time fires once however many
    instances run. 422 `invalid_cron` or `invalid_timezone` for an expression or zone that
    cannot be read."""
    schedule = await services.schedule_service.create(
        collection.name, body.cron, body.timezone, body.selector.statuses
    )
    return ScheduleResponse(schedule=schedule_view(schedule))


@router.get(
    "",
    response_model=ScheduleListResponse,
    summary="List a collection's schedules",
    response_description="The schedules, oldest first.",
)
async def list_schedules(collection: ExistingCollection, services: ServicesDep) -> ScheduleListResponse:
    """The collection's recurring schedules, oldest first."""
    schedules = [schedule_view(s) for s in await services.schedule_service.of_collection(collection.name)]
    return ScheduleListResponse(schedules=schedules, count=len(schedules))


@router.get(
    "/{schedule_id}",
    response_model=ScheduleResponse,
    summary="Get a schedule",
    response_description="The schedule.",
)
async def get_schedule(
    schedule_id: ScheduleId, collection: ExistingCollection, services: ServicesDep
) -> ScheduleResponse:
    """One recurring schedule."""
    return ScheduleResponse(
        schedule=schedule_view(await services.schedule_service.get(collection.name, schedule_id))
    )


@router.get(
    "/{schedule_id}/fires",
    response_model=FiresResponse,
    summary="A schedule's fires log",
    response_description="What each due time did, newest first.",
)
async def list_schedule_fires(
    schedule_id: ScheduleId,
    collection: ExistingCollection,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Most fires to return.")] = 50,
) -> FiresResponse:
    """Each due time handled: the jobs it made, or why it made none (`skipped`, `missed`)."""
    fires = await services.schedule_service.fires(collection.name, schedule_id, limit=limit)
    return FiresResponse(fires=[fire_view(fire) for fire in fires])


@router.post(
    "/{schedule_id}/pause",
    response_model=ScheduleResponse,
    summary="Pause a schedule",
    response_description="The schedule, paused.",
)
async def pause_schedule(
    schedule_id: ScheduleId, collection: ExistingCollection, services: ServicesDep
) -> ScheduleResponse:
    """Stop firing until resumed (the jobs it already made go on)."""
    return ScheduleResponse(
        schedule=schedule_view(await services.schedule_service.pause(collection.name, schedule_id))
    )


@router.post(
    "/{schedule_id}/resume",
    response_model=ScheduleResponse,
    summary="Resume a schedule",
    response_description="The schedule, with its next due time after now.",
)
async def resume_schedule(
    schedule_id: ScheduleId, collection: ExistingCollection, services: ServicesDep
) -> ScheduleResponse:
    """Fire again from the next due time after now; the due times passed while paused are not made up."""
    return ScheduleResponse(
        schedule=schedule_view(await services.schedule_service.resume(collection.name, schedule_id))
    )


@router.delete(
    "/{schedule_id}",
    response_model=ScheduleDeletedResponse,
    summary="Delete a schedule",
    response_description="The schedule and its fires log are deleted; the jobs it made stay.",
)
async def delete_schedule(
    schedule_id: ScheduleId, collection: ExistingCollection, services: ServicesDep
) -> ScheduleDeletedResponse:
    """Delete a schedule and its fires log. The jobs it made are left as they are."""
    await services.schedule_service.delete(collection.name, schedule_id)
    return ScheduleDeletedResponse(message=f"Schedule {schedule_id} deleted.")
