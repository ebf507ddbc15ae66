"""Request and response models of the REST API (the seed's shapes, plus additive fields)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StrictInt, field_validator

from wipsvc.collection import CollectionConfig
from wipsvc.jobs.models import ItemStatus, JobStatus, WipStatus

if TYPE_CHECKING:
    from wipsvc.store.lifecycle_repo import Deleted

JOB_ID_EXAMPLE = "ce672290-f093-4801-b4a1-078f10ab0801"
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors ----------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code.", examples=["conflict"])
    message: str = Field(examples=["products already in an active job: 3, 4"])
    details: dict[str, Any] | list[Any] | None = Field(None, examples=[{"busy": {"3": JOB_ID_EXAMPLE}}])


class ErrorResponse(BaseModel):
    success: Literal[False] = False
    error: ErrorBody


# -- jobs ------------------------------------------------------------------------------------


# Ids are 32-bit in the database (PostgreSQL `integer`): a larger one must be refused here,
# not reach a query (asyncpg and sqlite3 raise on out-of-range parameters: a 500).
MAX_WIP_ID = 2**31 - 1


class ProcessRequest(_Strict):
    wip_ids: list[StrictInt] = Field(
        min_length=1,
        description="WIP product ids of this collection, no duplicates.",
        examples=[[1, 2, 3, 4, 5]],
        # The validator's rules, stated in the schema for clients and schema-driven tests.
        json_schema_extra={
            "uniqueItems": True,
            "items": {"type": "integer", "minimum": 1, "maximum": MAX_WIP_ID},
        },
    )

    @field_validator("wip_ids")
    @classmethod
    def _no_duplicates(cls, ids: list[int]) -> list[int]:
        duplicates = sorted(wip_id for wip_id, count in Counter(ids).items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate wip_ids: {', '.join(map(str, duplicates))}")
        if any(i < 1 for i in ids):
            raise ValueError("wip_ids must be positive")
        if any(i > MAX_WIP_ID for i in ids):
            raise ValueError(f"wip_ids must be at most {MAX_WIP_ID}")
        return ids


class ProcessResponse(BaseModel):
    success: Literal[True] = True
    job_id: str = Field(examples=[JOB_ID_EXAMPLE])
    total_products: int = Field(examples=[5])
    message: str = Field(
        examples=["Background processing started for 5 products. Use the job_id to track progress."]
    )
    status_url: str = Field(examples=[f"/api/sinks/wip/jobs/{JOB_ID_EXAMPLE}"])


class ProductResult(BaseModel):
    """One product's outcome in a job (the seed's fields, then ours)."""

    wip_id: int = Field(examples=[1])
    sku: str = Field(examples=["ABC123"])
    row_num: int | None = Field(examples=[150])
    success: bool
    extracted_fields: list[str] = Field(examples=[["title", "price", "description"]])
    duration: float | None = Field(description="Seconds spent on the product.", examples=[45.2])
    status: ItemStatus = Field(description="succeeded, failed or skipped (never started).")
    step: str | None = Field(
        None,
        description="The last step completed: a failed product failed at the step after it, `error_step`.",
        examples=["complete"],
    )
    error: str | None = None
    error_step: str | None = Field(None, description="The step a failed product failed at.", examples=[None])
    attempts: int = Field(0, description="Times the product was started (more after a resume).")
    generator: str | None = Field(None, description="What wrote the descriptions: template or llm.")
    token_usage: dict[str, int] | None = None


class Job(BaseModel):
    job_id: str = Field(examples=[JOB_ID_EXAMPLE])
    collection_name: str = Field(examples=["sinks"])
    status: JobStatus
    total_products: int = Field(examples=[5])
    processed_products: int = Field(examples=[2])
    successful_products: int = Field(examples=[2])
    failed_products: int = Field(examples=[0])
    results: list[ProductResult]
    error: str | None = None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    wip_ids: list[int] = Field(examples=[[1, 2, 3, 4, 5]])
    eta_seconds: float | None = Field(None, description="Estimated seconds left; null until known.")
    cancel_requested: bool = False
    retry_of: str | None = Field(None, description="The job whose failed products this job re-runs.")
    token_usage: dict[str, int] | None = Field(None, description="LLM tokens used by the job.")


class JobResponse(BaseModel):
    success: Literal[True] = True
    job: Job


class JobListResponse(BaseModel):
    success: Literal[True] = True
    jobs: list[Job]
    count: int


class JobPageResponse(BaseModel):
    success: Literal[True] = True
    jobs: list[Job] = Field(description="Jobs of the API key's collections, newest first.")
    total: int = Field(description="Jobs matching the filters in all.", examples=[42])
    limit: int = Field(examples=[50])
    offset: int = Field(examples=[0])


class CancelResponse(BaseModel):
    success: Literal[True] = True
    message: str = Field(examples=["Cancellation requested: products in flight will finish."])
    job: Job


# -- WIP products ----------------------------------------------------------------------------


class NewProduct(_Strict):
    sku: str = Field(pattern=SKU_PATTERN, examples=["ABC123"])
    url: AnyHttpUrl = Field(examples=["https://shop.example/products/abc123"])

    @field_validator("url")
    @classmethod
    def _reasonable_url(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(url)) > 2048:
            raise ValueError("URL longer than 2048 characters")
        if url.username or url.password:
            raise ValueError("URLs with credentials are not accepted")
        return url


class CreateProductsRequest(_Strict):
    products: list[NewProduct] = Field(min_length=1, max_length=1000)

    @field_validator("products")
    @classmethod
    def _unique_skus(cls, products: list[NewProduct]) -> list[NewProduct]:
        counts = Counter(product.sku for product in products)
        duplicates = sorted(sku for sku, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate SKUs: {', '.join(duplicates)}")
        return products


class CreateProductsResponse(BaseModel):
    success: Literal[True] = True
    wip_ids: list[int] = Field(examples=[[1, 2]])
    collection_name: str = Field(examples=["sinks"])


class WipProduct(BaseModel):
    wip_id: int = Field(examples=[1])
    collection_name: str = Field(examples=["sinks"])
    sku: str = Field(examples=["ABC123"])
    url: str = Field(examples=["https://shop.example/products/abc123"])
    status: WipStatus
    row_num: int | None = None
    extracted: dict[str, Any] | None = Field(None, description="Extracted fields.")
    sources: dict[str, str] | None = Field(None, description="Where each extracted field came from.")
    descriptions: dict[str, Any] | None = None
    error: str | None = Field(None, description="The last error.")
    active_job_id: str | None = None
    created_at: datetime
    updated_at: datetime


class WipProductResponse(BaseModel):
    success: Literal[True] = True
    product: WipProduct


class WipProductListResponse(BaseModel):
    success: Literal[True] = True
    products: list[WipProduct]
    total: int
    limit: int
    offset: int


# -- collections -----------------------------------------------------------------------------


class Collection(BaseModel):
    name: str = Field(examples=["sinks"])
    config: CollectionConfig
    product_counts: dict[str, int] = Field(default_factory=dict, examples=[{"pending": 3, "ready": 12}])
    created_at: datetime
    updated_at: datetime


class CollectionResponse(BaseModel):
    success: Literal[True] = True
    collection: Collection


class CollectionListResponse(BaseModel):
    success: Literal[True] = True
    collections: list[Collection]


# -- deletion --------------------------------------------------------------------------------


class DeletedCounts(BaseModel):
    products: int = Field(0, description="WIP products deleted.", examples=[0])
    jobs: int = Field(0, description="Jobs deleted, with their ledgers and events.", examples=[1])
    sheet_rows: int = Field(
        0,
        description="Rows of the embedded worksheet deleted (a Google sheet is never touched).",
        examples=[0],
    )


class DeleteResponse(BaseModel):
    success: Literal[True] = True
    message: str = Field(examples=["Job ce672290-f093-4801-b4a1-078f10ab0801 deleted."])
    deleted: DeletedCounts

    @classmethod
    def of(cls, message: str, deleted: Deleted) -> DeleteResponse:
        counts = DeletedCounts(products=deleted.products, jobs=deleted.jobs, sheet_rows=deleted.sheet_rows)
        return cls(message=message, deleted=counts)


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    status: Literal["ready"] = "ready"
    database: Literal["ok"] = "ok"
    running_jobs: int = 0
