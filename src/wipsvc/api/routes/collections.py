"""Collections: their sheet, column mapping, cleaning and LLM settings; the local sheet as CSV;
deleting one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from wipsvc.adapters.csv_export import sheet_as_csv
from wipsvc.api.deps import (
    Access,
    CollectionName,
    ServicesDep,
    check_name,
    ensure_visible,
    existing_collection,
)
from wipsvc.api.errors import ApiError, error_responses
from wipsvc.api.schemas import Collection, CollectionListResponse, CollectionResponse, DeleteResponse
from wipsvc.collection import CollectionConfig
from wipsvc.collection_access import OperatorOnly, UnusableSetting, check_reach, merge_settings
from wipsvc.store import CollectionRecord

router = APIRouter(prefix="/api/collections", tags=["collections"], responses=error_responses(401))
_NAMED = error_responses(404, 422)
_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"example": "sku,url,title\nABC123,https://shop.example/p/1,Sink\n"}}}
}


@router.get(
    "",
    response_model=CollectionListResponse,
    summary="List collections",
    response_description="The collections the API key may use, by name, with product counts.",
)
async def list_collections(services: ServicesDep, access: Access) -> CollectionListResponse:
    """Every collection the API key may use, with its product counts by status."""
    counts = await services.store.collections.product_counts()
    records = [r for r in await services.store.collections.all() if access.may_see(r.name)]
    return CollectionListResponse(collections=[_view(r, counts.get(r.name, {})) for r in records])


@router.get(
    "/{name}",
    response_model=CollectionResponse,
    summary="Get a collection",
    response_description="The collection's configuration and product counts.",
    responses=_NAMED,
)
async def get_collection(name: CollectionName, services: ServicesDep, access: Access) -> CollectionResponse:
    """A collection's sheet, column mapping, cleaning and LLM settings, and its product counts."""
    collection = await existing_collection(name, services, access)
    counts = await services.store.collections.product_counts()
    return CollectionResponse(collection=_view(collection, counts.get(name, {})))


@router.put(
    "/{name}",
    response_model=CollectionResponse,
    summary="Create or replace a collection's configuration",
    response_description="The collection as stored.",
    responses=error_responses(400, 403, 404, 413, 422),
)
async def put_collection(
    name: CollectionName, config: CollectionConfig, services: ServicesDep, access: Access
) -> CollectionResponse:
    """Create or replace a collection's configuration. Jobs already running keep the
    backends they opened; new jobs use the new configuration.

    What the collection connects to or reads — `sheet.spreadsheet_id`, `sheet.credentials_file`,
    `cleaning.script_id`, `cleaning.function`, `cleaning.oauth_credentials_file`,
    `cleaning.webapp_url` and `cleaning.webapp_secret` — only an admin key (or, while no key
    exists, a local caller) may change: other keys keep the stored values when they omit these
    fields or send them unchanged, and get 403 `operator_only` when they send other values.
    The masked secret of a GET stands for the stored one. Credential files are named relative
    to `WIPSVC_CREDENTIALS_DIR`; a name outside it or missing, or a web-app URL the address
    policy refuses, is a 422."""
    check_name(name)
    ensure_visible(access, name)
    stored = await services.store.collections.get(name)
    stored_config = stored.config if stored is not None else None
    try:
        config = merge_settings(config, stored_config, is_admin=access.is_admin)
        await check_reach(
            config,
            stored_config,
            credentials_dir=services.settings.credentials_dir,
            vet_url=services.backends.guard.vet,
        )
    except OperatorOnly as error:
        raise ApiError(403, "operator_only", str(error), {"fields": error.fields}) from None
    except UnusableSetting as error:
        raise ApiError(422, "validation_error", str(error), {"field": error.field}) from None
    record = await services.store.collections.put(name, config)
    counts = await services.store.collections.product_counts()
    return CollectionResponse(collection=_view(record, counts.get(name, {})))


@router.get(
    "/{name}/sheet.csv",
    response_class=Response,
    summary="Export the embedded worksheet as CSV",
    response_description="The worksheet, header row first.",
    responses={**_CSV, **_NAMED},
)
async def export_sheet(name: CollectionName, services: ServicesDep, access: Access) -> Response:
    """The collection's embedded worksheet as CSV, header row first. A cell starting with
    `=`, `+`, `-`, `@`, tab or CR gets a leading `'`, so that no spreadsheet program opening
    the file runs it as a formula."""
    collection = await existing_collection(name, services, access)
    rows = await services.store.collections.sheet_rows(name, collection.config.sheet.worksheet)
    return Response(
        sheet_as_csv(rows, collection.config.columns.values()),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.delete(
    "/{name}",
    response_model=DeleteResponse,
    summary="Delete a collection",
    response_description="The collection is deleted with its products, jobs and embedded worksheet rows.",
    responses=_NAMED
    | error_responses(409, examples={409: ("conflict", "collection 'sinks' has active jobs: ce672290-…")}),
)
async def delete_collection(name: CollectionName, services: ServicesDep, access: Access) -> DeleteResponse:
    """Delete a collection with everything wipsvc keeps for it: products, jobs with their
    history, and the rows of its embedded worksheet. Refused (409) while one of its jobs is
    queued or running. A Google sheet is never touched, and API keys naming the collection keep
    the name."""
    ensure_visible(access, name)
    deleted = await services.store.lifecycle.delete_collection(name)
    return DeleteResponse.of(f"Collection '{name}' deleted.", deleted)


def _view(record: CollectionRecord, counts: dict[str, int]) -> Collection:
    return Collection.model_validate(record, from_attributes=True).model_copy(
        update={"product_counts": counts}
    )
