"""WIP products: create, list, inspect, reset, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from wipsvc.api.deps import AllowedCollectionName, ExistingCollection, ServicesDep, check_name
from wipsvc.api.errors import error_responses
from wipsvc.api.schemas import (
    CreateProductsRequest,
    CreateProductsResponse,
    DeleteResponse,
    WipProduct,
    WipProductListResponse,
    WipProductResponse,
)
from wipsvc.domain.statuses import WipStatus
from wipsvc.store import ProductRecord

router = APIRouter(prefix="/api/{collection}/wip", tags=["wip products"], responses=error_responses(401, 422))
_HELD = error_responses(
    409, examples={409: ("conflict", "WIP product 3 is in active job ce672290-…; cancel it first")}
)

WipId = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CreateProductsResponse,
    summary="Create products",
    response_description="The products are created, `pending`; their ids in the order given.",
    responses=error_responses(
        400, 404, 409, 413, examples={409: ("conflict", "SKUs already exist in collection 'sinks': ABC123")}
    ),
)
async def create_products(
    body: CreateProductsRequest, collection: AllowedCollectionName, services: ServicesDep
) -> CreateProductsResponse:
    """Create WIP products (SKU + product-page URL). The collection is created on first use
    with the embedded default backends. SKUs must be new in the collection."""
    check_name(collection)
    await services.store.collections.ensure(collection)
    ids = await services.store.collections.create_products(
        collection, [(product.sku, str(product.url)) for product in body.products]
    )
    return CreateProductsResponse(wip_ids=ids, collection_name=collection)


@router.get(
    "",
    response_model=WipProductListResponse,
    summary="List products",
    response_description="One page of the collection's products, oldest first, with the number matching.",
    responses=error_responses(404),
)
async def list_products(
    collection: ExistingCollection,
    services: ServicesDep,
    status: Annotated[WipStatus | None, Query(description="Only products in this status.")] = None,
    search: Annotated[
        str | None,
        # No NUL: PostgreSQL text cannot hold it, and the query would fail with a 500.
        Query(max_length=100, pattern=r"^[^\x00]*$", description="Part of the SKU or URL."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> WipProductListResponse:
    """The collection's WIP products, oldest first."""
    products, total = await services.store.collections.list_products(
        collection.name, status=status, search=search, limit=limit, offset=offset
    )
    return WipProductListResponse(
        products=[product_view(p) for p in products], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{wip_id}",
    response_model=WipProductResponse,
    summary="Get a product",
    response_description="The product with its extracted data, descriptions and sheet row.",
    responses=error_responses(404),
)
async def get_product(
    wip_id: WipId, collection: ExistingCollection, services: ServicesDep
) -> WipProductResponse:
    """One WIP product: status, extracted data, descriptions, sheet row and last error."""
    return WipProductResponse(
        product=product_view(await services.store.collections.get_product(collection.name, wip_id))
    )


@router.post(
    "/{wip_id}/reset",
    response_model=WipProductResponse,
    summary="Reset a product to pending",
    response_description="The product, back to `pending` with its error cleared.",
    responses=error_responses(404) | _HELD,
)
async def reset_product(
    wip_id: WipId, collection: ExistingCollection, services: ServicesDep
) -> WipProductResponse:
    """Put a stuck or failed product back to `pending` (409 while a job holds it)."""
    product = await services.store.collections.reset_product(collection.name, wip_id)
    return WipProductResponse(product=product_view(product))


@router.delete(
    "/{wip_id}",
    response_model=DeleteResponse,
    summary="Delete a product",
    response_description="The product is deleted; finished jobs' results and its sheet row keep it.",
    responses=error_responses(404) | _HELD,
)
async def delete_product(
    wip_id: WipId, collection: ExistingCollection, services: ServicesDep
) -> DeleteResponse:
    """Delete a product that no queued or running job holds (409 otherwise: cancel the job first).
    Its row in the sheet is left as it is."""
    deleted = await services.store.lifecycle.delete_product(collection.name, wip_id)
    return DeleteResponse.of(f"WIP product {wip_id} deleted.", deleted)


def product_view(product: ProductRecord) -> WipProduct:
    return WipProduct.model_validate(product, from_attributes=True)
