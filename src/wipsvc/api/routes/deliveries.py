"""Notifications: a collection's targets (set by an operator), its delivery log, send again."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Path, Query, status

from wipsvc.api.deps import Access, CollectionName, ServicesDep, existing_collection
from wipsvc.api.errors import ApiError, error_responses
from wipsvc.api.notification_schemas import (
    SECRET_MASK,
    DeliveriesResponse,
    DeliveryOut,
    DeliveryResponse,
    TargetOut,
    TargetsIn,
    TargetsResponse,
)
from wipsvc.domain.errors import StepError
from wipsvc.notify import signing
from wipsvc.services import Services
from wipsvc.store import NotFound
from wipsvc.store.outbox_repo import Delivery, Target

router = APIRouter(
    prefix="/api/collections", tags=["notifications"], responses=error_responses(401, 404, 422)
)


def _target_out(target: Target, *, reveal: bool = False) -> TargetOut:
    if target.kind == "webhook":
        secret = target.secret if reveal else SECRET_MASK
        return TargetOut(
            id=target.id, kind="webhook", url=target.address, secret=secret, events=target.events
        )
    return TargetOut(id=target.id, kind="email", recipients=target.address.split(","), events=target.events)


def _delivery_out(delivery: Delivery) -> DeliveryOut:
    view = DeliveryOut.model_validate(delivery, from_attributes=True)
    # When it is tried next means something only while it is pending.
    return view if delivery.status == "pending" else view.model_copy(update={"next_attempt_at": None})


@router.get(
    "/{name}/notifications",
    response_model=TargetsResponse,
    summary="List a collection's notification targets",
    response_description="The targets, webhook secrets masked.",
)
async def get_notification_targets(
    name: CollectionName, services: ServicesDep, access: Access
) -> TargetsResponse:
    """Where the collection's job endings are announced. Webhook secrets are masked."""
    await existing_collection(name, services, access)
    return TargetsResponse(targets=[_target_out(t) for t in await services.store.outbox.targets(name)])


@router.put(
    "/{name}/notifications",
    response_model=TargetsResponse,
    summary="Replace a collection's notification targets (operators only)",
    response_description="The targets as stored, each webhook's secret in full (this once).",
    responses=error_responses(400, 403, 413),
)
async def set_notification_targets(
    name: CollectionName, body: TargetsIn, services: ServicesDep, access: Access
) -> TargetsResponse:
    """Replace the targets: emails (sent through the WIPSVC_SMTP_* server) and webhooks (signed
    per Standard Webhooks, sent through the same address policy as every outbound call). They
    reach outside the service, so only an admin key (or the local caller of an open service)
    may set them. The answer shows each webhook's secret in full, this once."""
    await existing_collection(name, services, access)
    if not access.is_admin:
        raise ApiError(403, "operator_only", "only an admin key may set notification targets")
    rows: list[dict[str, Any]] = []
    for index, target in enumerate(body.targets):
        if target.kind == "webhook":
            assert target.url is not None
            await _check_webhook_url(target.url, index, services)
            secret = target.secret or signing.new_secret()
            rows.append({"kind": "webhook", "address": target.url, "secret": secret, "events": target.events})
        else:
            address = ",".join(target.recipients)
            rows.append({"kind": "email", "address": address, "secret": None, "events": target.events})
    stored = await services.store.outbox.replace_targets(name, rows)
    return TargetsResponse(targets=[_target_out(t, reveal=True) for t in stored])


async def _check_webhook_url(url: str, index: int, services: Services) -> None:
    field = f"targets[{index}].url"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ApiError(422, "validation_error", f"{field}: not a URL", {"field": field}) from None
    allowed = {host.lower() for host in services.settings.scrape_allowed_hosts}
    if parsed.scheme != "https" and not (parsed.scheme == "http" and parsed.host.lower() in allowed):
        message = f"{field}: use https (plain http only for a host on WIPSVC_SCRAPE_ALLOWED_HOSTS)"
        raise ApiError(422, "validation_error", message, {"field": field})
    try:
        await services.backends.guard.vet(url)
    except StepError as error:
        raise ApiError(422, "validation_error", f"{field}: {error.message}", {"field": field}) from None


@router.get(
    "/{name}/deliveries",
    response_model=DeliveriesResponse,
    summary="The delivery log of a collection's notifications",
    response_description="Each notification owed, its status and every attempt, newest first.",
)
async def list_deliveries(
    name: CollectionName,
    services: ServicesDep,
    access: Access,
    job_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] = None,
    delivery_status: Annotated[
        Literal["pending", "delivered", "failed"] | None, Query(alias="status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveriesResponse:
    """Newest first: each notification owed, its status and every delivery attempt."""
    await existing_collection(name, services, access)
    found = await services.store.outbox.deliveries(name, limit=limit, job_id=job_id, status=delivery_status)
    return DeliveriesResponse(deliveries=[_delivery_out(d) for d in found])


@router.post(
    "/{name}/deliveries/{delivery_id}/send-again",
    response_model=DeliveryResponse,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a notification again",
    response_description="The delivery, pending again: it is sent within moments.",
)
async def send_delivery_again(
    name: CollectionName,
    delivery_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    services: ServicesDep,
    access: Access,
) -> DeliveryResponse:
    """Owe the notification again, now, with a fresh allowance of attempts (same `message_id`,
    so receivers that already have it can drop it)."""
    await existing_collection(name, services, access)
    try:
        delivery = await services.store.outbox.send_again(name, delivery_id)
    except NotFound as error:
        raise ApiError(404, "not_found", str(error)) from None
    if services.notifications is not None:
        services.notifications.wake()
    return DeliveryResponse(delivery=_delivery_out(delivery))
