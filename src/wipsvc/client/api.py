"""A small typed async client for wipsvc's public REST API.

It speaks only HTTP to a running server (never the store), so it works against any
deployment. Failures become one of two exceptions: ``ApiError`` when the server answered
with an error (its ``{"success": false, "error": {code, message, details}}`` shape), and
``ServiceUnreachable`` when it could not be reached at all.
(Over 300 lines: one short method per REST endpoint, in one class so that every call is found there.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from wipsvc.api.schemas import (
    CancelResponse,
    CollectionListResponse,
    CreateProductsResponse,
    DeleteResponse,
    Job,
    JobListResponse,
    JobPageResponse,
    JobResponse,
    ProcessResponse,
    WipProduct,
    WipProductListResponse,
    WipProductResponse,
)

# httpx is imported where a request is made: `wipsvc --help` and the commands that open the
# database instead of calling a server do not need it.
if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "WIPSVC_URL"
API_KEY_ENV = "WIPSVC_API_KEY"
# The list endpoint's largest page, and the create endpoint's largest batch.
PRODUCT_PAGE_SIZE = 500
CREATE_BATCH_SIZE = 1000


class ClientError(Exception):
    """The server refused the request or could not be reached (exit code 3)."""


class ServiceUnreachable(ClientError):
    pass


class ApiError(ClientError):
    def __init__(self, status_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} [{self.code}, HTTP {self.status_code}]"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    url: str = DEFAULT_URL
    api_key: str | None = None

    @classmethod
    def from_env(cls, url: str | None = None) -> ClientConfig:
        """``url`` if given, else ``WIPSVC_URL``, else the default; the key from ``WIPSVC_API_KEY``."""
        resolved = url or os.environ.get(URL_ENV) or DEFAULT_URL
        return cls(url=resolved.rstrip("/"), api_key=os.environ.get(API_KEY_ENV) or None)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def _segment(value: str) -> str:
    # Names come from the command line; never let one change the path it is put in.
    return quote(value, safe="")


def _error_from(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return ApiError(
            response.status_code,
            str(error.get("code", "error")),
            str(error.get("message", response.reason_phrase)),
            error.get("details"),
        )
    # Not our error shape: a proxy, or not a wipsvc server at all.
    text = response.text.strip()[:200] or response.reason_phrase
    return ApiError(response.status_code, "http_error", text)


class ApiClient:
    def __init__(
        self, config: ClientConfig, *, timeout: float = 30.0, http: httpx.AsyncClient | None = None
    ) -> None:
        """``http``, if given, is used as it is (its base URL and headers) and left open."""
        import httpx

        self.config = config
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(base_url=config.url, headers=config.headers, timeout=timeout)

    @classmethod
    def over(cls, http: httpx.AsyncClient) -> Self:
        """A typed client speaking through an HTTP client that already has the server's base URL."""
        return cls(ClientConfig(url=str(http.base_url).rstrip("/")), http=http)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        import httpx

        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(method, path, json=json, params=clean_params)
        except httpx.TransportError as error:
            detail = str(error) or type(error).__name__
            raise ServiceUnreachable(f"cannot reach wipsvc at {self.config.url}: {detail}") from error
        if response.is_error:
            raise _error_from(response)
        return response

    # -- products --------------------------------------------------------------------------

    async def create_products(self, collection: str, products: Sequence[tuple[str, str]]) -> list[int]:
        """Create (sku, url) products; returns their wip_ids in order."""
        ids: list[int] = []
        for start in range(0, len(products), CREATE_BATCH_SIZE):
            batch = products[start : start + CREATE_BATCH_SIZE]
            response = await self._request(
                "POST",
                f"/api/{_segment(collection)}/wip",
                json={"products": [{"sku": sku, "url": url} for sku, url in batch]},
            )
            ids.extend(CreateProductsResponse.model_validate(response.json()).wip_ids)
        return ids

    async def list_products(
        self,
        collection: str,
        *,
        status: str | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> WipProductListResponse:
        response = await self._request(
            "GET",
            f"/api/{_segment(collection)}/wip",
            params={"status": status, "search": search, "limit": limit, "offset": offset},
        )
        return WipProductListResponse.model_validate(response.json())

    async def all_products(self, collection: str, *, status: str | None = None) -> list[WipProduct]:
        """Every product of the collection, paging through the list endpoint."""
        products: list[WipProduct] = []
        while True:
            page = await self.list_products(
                collection, status=status, limit=PRODUCT_PAGE_SIZE, offset=len(products)
            )
            products.extend(page.products)
            if not page.products or len(products) >= page.total:
                return products

    async def reset_product(self, collection: str, wip_id: int) -> WipProduct:
        response = await self._request("POST", f"/api/{_segment(collection)}/wip/{wip_id}/reset")
        return WipProductResponse.model_validate(response.json()).product

    async def delete_product(self, collection: str, wip_id: int) -> DeleteResponse:
        response = await self._request("DELETE", f"/api/{_segment(collection)}/wip/{wip_id}")
        return DeleteResponse.model_validate(response.json())

    # -- jobs ------------------------------------------------------------------------------

    async def start_job(
        self,
        collection: str,
        wip_ids: Sequence[int],
        *,
        priority: str | None = None,
        run_at: str | None = None,
    ) -> ProcessResponse:
        body: dict[str, Any] = {"wip_ids": list(wip_ids)}
        if priority is not None:  # without it, the seed's request as it was
            body["priority"] = priority
        if run_at is not None:
            body["run_at"] = run_at
        response = await self._request("POST", f"/api/{_segment(collection)}/wip/process", json=body)
        return ProcessResponse.model_validate(response.json())

    async def change_priority(self, collection: str, job_id: str, priority: str) -> Job:
        response = await self._request(
            "PATCH",
            f"/api/{_segment(collection)}/wip/jobs/{_segment(job_id)}",
            json={"priority": priority},
        )
        return JobResponse.model_validate(response.json()).job

    async def get_job(self, collection: str, job_id: str) -> Job:
        response = await self._request("GET", f"/api/{_segment(collection)}/wip/jobs/{_segment(job_id)}")
        return JobResponse.model_validate(response.json()).job

    async def list_jobs(self, collection: str, *, limit: int = 10, status: str | None = None) -> list[Job]:
        response = await self._request(
            "GET", f"/api/{_segment(collection)}/wip/jobs", params={"limit": limit, "status": status}
        )
        return JobListResponse.model_validate(response.json()).jobs

    async def cancel_job(self, collection: str, job_id: str) -> CancelResponse:
        response = await self._request(
            "POST", f"/api/{_segment(collection)}/wip/jobs/{_segment(job_id)}/cancel"
        )
        return CancelResponse.model_validate(response.json())

    async def retry_job(self, collection: str, job_id: str, *, products: str = "failed") -> ProcessResponse:
        """A new job of the finished job's `failed`, `skipped` or `unfinished` (both) products."""
        response = await self._request(
            "POST",
            f"/api/{_segment(collection)}/wip/jobs/{_segment(job_id)}/retry",
            params={"products": products},
        )
        return ProcessResponse.model_validate(response.json())

    async def delete_job(self, collection: str, job_id: str) -> DeleteResponse:
        response = await self._request("DELETE", f"/api/{_segment(collection)}/wip/jobs/{_segment(job_id)}")
        return DeleteResponse.model_validate(response.json())

    async def all_jobs(
        self, *, collection: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> JobPageResponse:
        """Jobs of every collection the key may use (or of one), newest first."""
        response = await self._request(
            "GET",
            "/api/jobs",
            params={"collection": collection, "status": status, "limit": limit, "offset": offset},
        )
        return JobPageResponse.model_validate(response.json())

    async def find_job(self, job_id: str) -> Job:
        """A job whose collection is not known: ask each collection in turn (a job id is unique)."""
        for name in await self.collection_names():
            try:
                return await self.get_job(name, job_id)
            except ApiError as error:
                if error.status_code != 404:
                    raise
        raise ApiError(404, "not_found", f"job {job_id} not found in any collection")

    # -- collections -----------------------------------------------------------------------

    async def collection_names(self) -> list[str]:
        # Only the names: a collection's configuration is the server's business.
        response = await self._request("GET", "/api/collections")
        return [str(item["name"]) for item in response.json().get("collections", [])]

    async def collections(self) -> CollectionListResponse:
        response = await self._request("GET", "/api/collections")
        return CollectionListResponse.model_validate(response.json())

    async def delete_collection(self, name: str) -> DeleteResponse:
        response = await self._request("DELETE", f"/api/collections/{_segment(name)}")
        return DeleteResponse.model_validate(response.json())

    async def deliveries(self, collection: str, **filters: Any) -> list[dict[str, Any]]:
        path = f"/api/collections/{_segment(collection)}/deliveries"
        found: list[dict[str, Any]] = (await self._request("GET", path, params=filters)).json()["deliveries"]
        return found

    async def send_again(self, collection: str, delivery_id: int) -> dict[str, Any]:
        path = f"/api/collections/{_segment(collection)}/deliveries/{delivery_id}/send-again"
        delivery: dict[str, Any] = (await self._request("POST", path)).json()["delivery"]
        return delivery

    # -- schedules -------------------------------------------------------------------------

    async def schedules(self, collection: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (
            await self._request("GET", f"/api/{_segment(collection)}/schedules")
        ).json()["schedules"]
        return found

    async def create_schedule(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._request("POST", f"/api/{_segment(collection)}/schedules", json=body)
        schedule: dict[str, Any] = response.json()["schedule"]
        return schedule

    async def schedule_action(self, collection: str, schedule_id: int, action: str) -> dict[str, Any]:
        """``pause`` or ``resume`` a schedule; returns it as it is now."""
        path = f"/api/{_segment(collection)}/schedules/{schedule_id}/{_segment(action)}"
        schedule: dict[str, Any] = (await self._request("POST", path)).json()["schedule"]
        return schedule

    async def delete_schedule(self, collection: str, schedule_id: int) -> dict[str, Any]:
        path = f"/api/{_segment(collection)}/schedules/{schedule_id}"
        answer: dict[str, Any] = (await self._request("DELETE", path)).json()
        return answer

    async def schedule_fires(self, collection: str, schedule_id: int, *, limit: int) -> list[dict[str, Any]]:
        path = f"/api/{_segment(collection)}/schedules/{schedule_id}/fires"
        fires: list[dict[str, Any]] = (await self._request("GET", path, params={"limit": limit})).json()[
            "fires"
        ]
        return fires

    async def sheet_csv(self, collection: str) -> str:
        response = await self._request("GET", f"/api/collections/{_segment(collection)}/sheet.csv")
        return response.text
