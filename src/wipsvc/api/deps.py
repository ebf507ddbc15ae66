"""Dependencies as `Annotated` aliases that read the running app's services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from wipsvc.api.errors import ApiError
from wipsvc.collection import COLLECTION_NAME_PATTERN
from wipsvc.services import Services
from wipsvc.store import CollectionRecord

RESERVED_NAMES = frozenset({"collections", "healthz", "readyz", "docs"})


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

CollectionName = Annotated[
    str,
    Path(
        pattern=COLLECTION_NAME_PATTERN,
        description="Collection name: lower-case letters, digits, `-` and `_`.",
        examples=["sinks"],
    ),
]


async def existing_collection(collection: CollectionName, services: ServicesDep) -> CollectionRecord:
    record = await services.store.collections.get(collection)
    if record is None:
        raise ApiError(404, "not_found", f"collection '{collection}' not found")
    return record


ExistingCollection = Annotated[CollectionRecord, Depends(existing_collection)]


def check_name(name: str) -> None:
    if name in RESERVED_NAMES:
        raise ApiError(422, "validation_error", f"'{name}' is a reserved name")
