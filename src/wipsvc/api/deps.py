"""Dependencies as `Annotated` aliases that read the running app's runtime (:class:`AppRuntime`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.applications import Starlette

from wipsvc.api.errors import ApiError
from wipsvc.auth import Principal, Unauthorized, arrived_via_loopback, authenticate
from wipsvc.collection import COLLECTION_NAME_PATTERN
from wipsvc.services import Services
from wipsvc.store import CollectionRecord

if TYPE_CHECKING:  # api/limits.py imports this module: its types are named here for the checker only
    from wipsvc.api.limits import ActiveJobCap, RateLimiter

RESERVED_NAMES = frozenset({"collections", "healthz", "readyz", "docs"})


@dataclass(frozen=True, slots=True)
class AppRuntime:
    """What a running app serves with: built once when it starts (its lifespan, in app.py), read by
    the routes through the typed dependencies below."""

    services: Services
    job_start_limiter: RateLimiter
    active_job_cap: ActiveJobCap


class NotStarted(RuntimeError):
    """A request reached the app before its lifespan started it."""


def app_runtime(app: Starlette) -> AppRuntime:
    runtime = getattr(app.state, "runtime", None)
    if not isinstance(runtime, AppRuntime):
        raise NotStarted("the app has not started: its lifespan builds the runtime")
    return runtime


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def` dependency
# in its thread pool, a thread hop per request that shows in the REST latency tail under load.
async def get_runtime(request: Request) -> AppRuntime:
    return app_runtime(request.app)


RuntimeDep = Annotated[AppRuntime, Depends(get_runtime)]


async def get_services(runtime: RuntimeDep) -> Services:
    return runtime.services


ServicesDep = Annotated[Services, Depends(get_services)]

CollectionName = Annotated[
    str,
    Path(
        pattern=COLLECTION_NAME_PATTERN,
        description="Collection name: lower-case letters, digits, `-` and `_`.",
        examples=["sinks"],
    ),
]


class HeaderedApiError(ApiError):
    """An `ApiError` whose answer carries headers (`WWW-Authenticate`, `Retry-After`)."""

    def __init__(
        self, status_code: int, code: str, message: str, details: Any = None, *, headers: dict[str, str]
    ) -> None:
        super().__init__(status_code, code, message, details)
        self.headers = headers


# Declared as security schemes so that OpenAPI documents them and /docs offers "Authorize".
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key from `wipsvc keys create`, sent as `Authorization: Bearer <key>`.",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="The same API key, sent as `X-API-Key: <key>` instead.",
)


async def get_access(
    request: Request,
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """The caller, from its API key; 401 without a valid one (unless the service runs open)."""
    presented = bearer.credentials if bearer else header_key
    try:
        return await authenticate(
            services.store.keys,
            presented,
            client=request.client.host if request.client else "unknown",
            via_loopback=arrived_via_loopback(request.scope.get("server")),
        )
    except Unauthorized as error:
        raise HeaderedApiError(
            401, "unauthorized", str(error), headers={"WWW-Authenticate": 'Bearer realm="wipsvc"'}
        ) from None


Access = Annotated[Principal, Depends(get_access)]


async def single_query_values(request: Request) -> None:
    """422 for a query parameter of the route given more than once. Every one of ours takes one
    value, and the framework would silently keep the last (`?status=ready&status=error` read as
    `error`). Names the route does not take are ignored, as they are when given once."""
    names = [name for name, _ in request.query_params.multi_items()]
    if len(set(names)) == len(names):
        return
    route = request.scope.get("route")
    declared = _query_names(route.dependant) if isinstance(route, APIRoute) else set()
    repeated = [name for name in dict.fromkeys(names) if name in declared and names.count(name) > 1]
    if repeated:
        raise RequestValidationError(
            [
                {"type": "repeated", "loc": ("query", name), "msg": "given more than once; takes one value"}
                for name in repeated
            ]
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def ensure_visible(access: Principal, collection: str) -> None:
    """404 for a collection outside the key's reach, worded exactly like a missing one."""
    if not access.may_see(collection):
        raise ApiError(404, "not_found", f"collection '{collection}' not found")


async def allowed_collection_name(collection: CollectionName, access: Access) -> str:
    ensure_visible(access, collection)
    return collection


# A collection name the caller may use, whether or not the collection exists yet.
AllowedCollectionName = Annotated[str, Depends(allowed_collection_name)]


async def existing_collection(
    collection: CollectionName, services: ServicesDep, access: Access
) -> CollectionRecord:
    ensure_visible(access, collection)
    record = await services.store.collections.get(collection)
    if record is None:
        raise ApiError(404, "not_found", f"collection '{collection}' not found")
    return record


ExistingCollection = Annotated[CollectionRecord, Depends(existing_collection)]


def check_name(name: str) -> None:
    if name in RESERVED_NAMES:
        raise ApiError(422, "validation_error", f"'{name}' is a reserved name")
