"""Request and response models of the REST API (the seed's shapes, plus additive fields).

Kept in one module although it is long: together they are the OpenAPI document's schemas, one
per model, and reading them side by side is how their shapes and descriptions stay consistent.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, field_validator

from wipsvc.collection import CollectionConfig
from wipsvc.domain.priority import Priority
from wipsvc.domain.statuses import ItemStatus, JobStatus, WipStatus
from wipsvc.text import check_text

if TYPE_CHECKING:
    from wipsvc.store.lifecycle_repo import Deleted

JOB_ID_EXAMPLE = "ce672290-f093-4801-b4a1-078f10ab0801"
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$"


# Every successful answer says so; errors answer `{"success": false, "error": …}` instead.
Success = Annotated[
    Literal[True],
    Field(description="Always true in a successful answer (errors have the `ErrorResponse` shape)."),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors ----------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code.", examples=["conflict"])
    message: str = Field(
        description="What went wrong, for people.", examples=["products already in an active job: 3, 4"]
    )
    details: dict[str, Any] | list[Any] | None = Field(
        None,
        description="Machine-readable particulars, e.g. the products already busy, or the validation errors.",
        examples=[{"busy": {"3": JOB_ID_EXAMPLE}}],
    )


class ErrorResponse(BaseModel):
    success: Literal[False] = Field(False, description="Always false in an error answer.")
    error: ErrorBody = Field(description="The error.")


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

    priority: Priority = Field(
        Priority.NORMAL,
        description="Optional. `urgent` jobs are claimed first and their calls get quota tokens first "
        "(then `normal`, then `low`); waiting raises a job's priority over time.",
        examples=["urgent"],
    )

    run_at: AwareDatetime | None = Field(
        None,
        description="Run the job at this time instead of now (ISO 8601 with a UTC offset): it is "
        "`scheduled` until then, holding its products, and queued once that time has come. At most "
        "60 s in the past and `WIPSVC_SCHEDULE_MAX_AHEAD_DAYS` ahead.",
        examples=["2026-12-01T09:00:00+01:00"],
    )


class PriorityChange(_Strict):
    priority: Priority = Field(description="The job's new priority.", examples=["urgent"])


class ProcessResponse(BaseModel):
    success: Success = True
    job_id: str = Field(description="The new job's id.", examples=[JOB_ID_EXAMPLE])
    total_products: int = Field(description="Products in the job.", examples=[5])
    message: str = Field(
        description="What happens next, for people.",
        examples=["Background processing started for 5 products. Use the job_id to track progress."],
    )
    status_url: str = Field(
        description="Where to follow the job over REST.", examples=[f"/api/sinks/wip/jobs/{JOB_ID_EXAMPLE}"]
    )


class ProductResult(BaseModel):
    """One product's outcome in a job (the seed's fields, then ours)."""

    wip_id: int = Field(description="The WIP product.", examples=[1])
    sku: str = Field(description="Its SKU.", examples=["ABC123"])
    row_num: int | None = Field(description="Its row in the sheet, once added.", examples=[150])
    success: bool = Field(description="Whether it succeeded.")
    extracted_fields: list[str] = Field(
        description="The product fields extracted from its page.",
        examples=[["title", "price", "description"]],
    )
    duration: float | None = Field(description="Seconds spent on the product.", examples=[45.2])
    status: ItemStatus = Field(description="succeeded, failed or skipped (never started).")
    step: str | None = Field(
        None,
        description="The last step completed: a failed product failed at the step after it, `error_step`.",
        examples=["complete"],
    )
    error: str | None = Field(None, description="Why it failed.")
    error_step: str | None = Field(None, description="The step a failed product failed at.", examples=[None])
    attempts: int = Field(0, description="Times the product was started (more after a resume).")
    generator: str | None = Field(None, description="What wrote the descriptions: template or llm.")
    token_usage: dict[str, int] | None = Field(None, description="LLM tokens used for this product.")


class Job(BaseModel):
    job_id: str = Field(description="The job's id.", examples=[JOB_ID_EXAMPLE])
    collection_name: str = Field(description="The collection the job belongs to.", examples=["sinks"])
    status: JobStatus = Field(
        description="scheduled (given a `run_at`, not yet due), queued, running, completed, failed (a "
        "fatal job-level error) or cancelled."
    )
    total_products: int = Field(description="Products in the job.", examples=[5])
    processed_products: int = Field(
        description="Products finished so far, succeeded or failed.", examples=[2]
    )
    successful_products: int = Field(description="Products that succeeded.", examples=[2])
    failed_products: int = Field(
        description="Products that failed (a job with failed products still ends `completed`).", examples=[0]
    )
    results: list[ProductResult] = Field(description="One entry per finished product, in the job's order.")
    error: str | None = Field(None, description="The fatal error of a `failed` job.")
    created_at: datetime | None = Field(description="When the job was queued (UTC).")
    started_at: datetime | None = Field(description="When it first started running (UTC).")
    completed_at: datetime | None = Field(description="When it ended (UTC).")
    wip_ids: list[int] = Field(description="The job's products, in order.", examples=[[1, 2, 3, 4, 5]])
    eta_seconds: float | None = Field(None, description="Estimated seconds left; null until known.")
    cancel_requested: bool = Field(
        False, description="Cancellation was asked for; a running job ends after the products in flight."
    )
    retry_of: str | None = Field(None, description="The job whose failed products this job re-runs.")
    priority: Priority = Field(
        Priority.NORMAL, description="urgent, normal or low: the order of claims and of quota tokens."
    )
    token_usage: dict[str, int] | None = Field(None, description="LLM tokens used by the job.")
    run_at: datetime | None = Field(None, description="When a scheduled job is (or was) queued (UTC).")
    schedule_id: int | None = Field(None, description="The recurring schedule that made the job.")


class JobResponse(BaseModel):
    success: Success = True
    job: Job = Field(description="The job.")


class JobListResponse(BaseModel):
    success: Success = True
    jobs: list[Job] = Field(description="Jobs, newest first.")
    count: int = Field(description="Jobs in `jobs`.")


class JobPageResponse(BaseModel):
    success: Success = True
    jobs: list[Job] = Field(description="Jobs of the API key's collections, newest first.")
    total: int = Field(description="Jobs matching the filters in all.", examples=[42])
    limit: int = Field(description="Most jobs per page, as asked.", examples=[50])
    offset: int = Field(description="Jobs skipped, as asked.", examples=[0])


class CancelResponse(BaseModel):
    success: Success = True
    message: str = Field(
        description="What happened, for people.",
        examples=["Cancellation requested: products in flight will finish."],
    )
    job: Job = Field(description="The job as it is now.")


# -- WIP products ----------------------------------------------------------------------------


class NewProduct(_Strict):
    sku: str = Field(
        description="The product's SKU, new in the collection.", pattern=SKU_PATTERN, examples=["ABC123"]
    )
    url: AnyHttpUrl = Field(
        description="The product page (http or https).", examples=["https://shop.example/products/abc123"]
    )

    @field_validator("url", mode="before")
    @classmethod
    def _no_control_characters(cls, url: Any) -> Any:
        return check_text(url) if isinstance(url, str) else url

    @field_validator("url")
    @classmethod
    def _reasonable_url(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(url)) > 2048:
            raise ValueError("URL longer than 2048 characters")
        if url.username or url.password:
            raise ValueError("URLs with credentials are not accepted")
        return url


class CreateProductsRequest(_Strict):
    products: list[NewProduct] = Field(
        description="The products to create, SKUs unique.", min_length=1, max_length=1000
    )

    @field_validator("products")
    @classmethod
    def _unique_skus(cls, products: list[NewProduct]) -> list[NewProduct]:
        counts = Counter(product.sku for product in products)
        duplicates = sorted(sku for sku, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate SKUs: {', '.join(duplicates)}")
        return products


class CreateProductsResponse(BaseModel):
    success: Success = True
    wip_ids: list[int] = Field(description="The new products' ids, in the order given.", examples=[[1, 2]])
    collection_name: str = Field(description="The collection they belong to.", examples=["sinks"])


class WipProduct(BaseModel):
    wip_id: int = Field(description="The product's id (unique across collections).", examples=[1])
    collection_name: str = Field(description="The collection it belongs to.", examples=["sinks"])
    sku: str = Field(description="Its SKU, unique in the collection.", examples=["ABC123"])
    url: str = Field(description="Its product page.", examples=["https://shop.example/products/abc123"])
    status: WipStatus = Field(description="pending, extracting, generating, cleaning, ready or error.")
    row_num: int | None = Field(None, description="Its row in the sheet, once added.")
    extracted: dict[str, Any] | None = Field(None, description="Extracted fields.")
    sources: dict[str, str] | None = Field(None, description="Where each extracted field came from.")
    descriptions: dict[str, Any] | None = Field(
        None, description="Generated descriptions: body_html, features, care_instructions."
    )
    error: str | None = Field(None, description="The last error.")
    active_job_id: str | None = Field(None, description="The queued or running job holding it, if any.")
    created_at: datetime = Field(description="When it was created (UTC).")
    updated_at: datetime = Field(description="When it last changed (UTC).")


class WipProductResponse(BaseModel):
    success: Success = True
    product: WipProduct = Field(description="The product.")


class WipProductListResponse(BaseModel):
    success: Success = True
    products: list[WipProduct] = Field(description="One page of products, oldest first.")
    total: int = Field(description="Products matching the filters in all.")
    limit: int = Field(description="Most products per page, as asked.")
    offset: int = Field(description="Products skipped, as asked.")


# -- collections -----------------------------------------------------------------------------


class Collection(BaseModel):
    name: str = Field(description="The collection's name.", examples=["sinks"])
    config: CollectionConfig = Field(description="Its sheet, column mapping, cleaning and LLM settings.")
    product_counts: dict[str, int] = Field(
        description="Its products by status.", default_factory=dict, examples=[{"pending": 3, "ready": 12}]
    )
    created_at: datetime = Field(description="When it was created (UTC).")
    updated_at: datetime = Field(description="When its configuration last changed (UTC).")


class CollectionResponse(BaseModel):
    success: Success = True
    collection: Collection = Field(description="The collection.")


class CollectionListResponse(BaseModel):
    success: Success = True
    collections: list[Collection] = Field(description="Collections by name.")


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
    success: Success = True
    message: str = Field(
        description="What was deleted, for people.",
        examples=["Job ce672290-f093-4801-b4a1-078f10ab0801 deleted."],
    )
    deleted: DeletedCounts = Field(description="What was deleted, by kind.")

    @classmethod
    def of(cls, message: str, deleted: Deleted) -> DeleteResponse:
        counts = DeletedCounts(products=deleted.products, jobs=deleted.jobs, sheet_rows=deleted.sheet_rows)
        return cls(message=message, deleted=counts)


class HealthResponse(BaseModel):
    status: Literal["ok"] = Field("ok", description="Always `ok`: the process answers.")


class ReadyResponse(BaseModel):
    status: Literal["ready"] = Field("ready", description="Always `ready` in this answer (503 otherwise).")
    database: Literal["ok"] = Field("ok", description="The database answered.")
    running_jobs: int = Field(0, description="Jobs this instance is running.")
