"""The application factory: one ASGI app serving REST, Socket.IO and the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import socketio
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from wipsvc.adapters.base import PageFetcher
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.api.deps import AppRuntime, NotStarted, app_runtime, get_access, single_query_values
from wipsvc.api.errors import install_error_handlers
from wipsvc.api.hosts import guard_hosts
from wipsvc.api.limits import ActiveJobCap, HeadSizeLimit, RateLimiter, install_limits
from wipsvc.api.request_log import RequestLog
from wipsvc.api.routes import all_jobs, collections, deliveries, health, jobs, metrics, schedules, stats, wip
from wipsvc.auth import check_bind
from wipsvc.config import Settings
from wipsvc.jobs.scheduler import Clock
from wipsvc.pipeline.retry import RetryPolicy
from wipsvc.realtime.server import Realtime
from wipsvc.services import Services
from wipsvc.store.tables import utcnow
from wipsvc.tasks import cancel_and_wait
from wipsvc.web import include_dashboard
from wipsvc.web.docs import include_docs

log = logging.getLogger(__name__)

DESCRIPTION = """
wipsvc turns work-in-progress products (a SKU and a product-page URL each) into finished
rows of a collection's sheet, in the background: the row is added, the page scraped and
its product data extracted, descriptions written, the sheet's cleaning run, and the
product marked `ready`.

Start a job with `POST /api/{collection}/wip/process`; follow it with
`GET /api/{collection}/wip/jobs/{job_id}` or live over Socket.IO (event `wip_job_progress`).

Keys: a collection key uses its collections; an admin key (`wipsvc keys create --admin`) reaches
every collection, may change what a collection connects to (its operator settings) and reads
`/metrics`. Two answers can come from any path, before it is reached, in the same error shape:
400 `host_not_allowed` for a `Host` outside the allow-list (see `WIPSVC_ALLOWED_HOSTS`), and 431
`headers_too_large` for a request line and headers over `WIPSVC_MAX_HEADER_BYTES`.
"""


def operation_id(route: APIRoute) -> str:
    """Operation ids are the handlers' names (`start_job`, `list_products`): what generated
    clients name their functions."""
    return route.name


class _Lifespan:
    """Starts the app's runtime when the server starts and ends it when the server stops.

    Everything it uses is given to it up front, and it builds the Socket.IO server (if enabled)
    right away, since that is mounted before the app starts. What it builds on start-up is one
    :class:`AppRuntime`: on the app's state for the request dependencies, and kept here for the
    Socket.IO server, which reads the services through :meth:`services`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        fetcher: PageFetcher | None,
        retry: RetryPolicy | None,
        google_sheets: GoogleSheetsBackend | None,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._fetcher, self._retry, self._google_sheets = fetcher, retry, google_sheets
        self._clock = clock
        self._runtime: AppRuntime | None = None
        self.realtime = Realtime(settings, self.services) if settings.socketio_enabled else None

    def services(self) -> Services:
        if self._runtime is None:
            raise NotStarted("the app has not started: its lifespan builds the runtime")
        return self._runtime.services

    @contextlib.asynccontextmanager
    async def __call__(self, app: FastAPI) -> AsyncIterator[None]:
        settings, realtime = self._settings, self.realtime
        # Before anything starts (and before the server binds): never serve open to a network.
        await check_bind(settings)
        services = await Services.start(
            settings,
            fetcher=self._fetcher,
            retry=self._retry,
            google_sheets=self._google_sheets,
            clock=self._clock,
        )
        self._runtime = app.state.runtime = AppRuntime(
            services=services,
            job_start_limiter=RateLimiter(settings.job_starts_per_minute),
            active_job_cap=ActiveJobCap(settings.max_active_jobs_per_collection),
        )
        # Unwound in reverse: the revocation watcher, the relay, Socket.IO, then the services.
        async with contextlib.AsyncExitStack() as running:
            running.push_async_callback(services.stop)
            if realtime is not None:
                services.metrics.count_socket_clients(realtime.client_count)
                running.push_async_callback(realtime.close)
                running.callback(services.bus.subscribe(realtime.relay))
                running.callback(services.bus.subscribe_notices(realtime.relay_notice))
                watcher = asyncio.create_task(realtime.watch_revocations(settings.socket_key_recheck_seconds))
                running.push_async_callback(cancel_and_wait, watcher)
            yield


def create_api(
    settings: Settings,
    *,
    fetcher: PageFetcher | None = None,
    retry: RetryPolicy | None = None,
    google_sheets: GoogleSheetsBackend | None = None,
    clock: Clock = utcnow,
) -> tuple[FastAPI, Realtime | None]:
    """The FastAPI app and, if enabled, the Socket.IO server bound to the same services.

    ``fetcher``, ``retry`` and ``google_sheets`` replace the defaults built from ``settings``
    (tests inject fakes or fast backoff through them); ``clock`` is the recurring schedules' time."""
    lifespan = _Lifespan(settings, fetcher=fetcher, retry=retry, google_sheets=google_sheets, clock=clock)
    api = FastAPI(
        title="wipsvc",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # One schema per model: generated clients keep every response model.
        separate_input_output_schemas=False,
        docs_url=None,  # served from vendored files instead of a CDN (see include_docs)
        redoc_url=None,
        openapi_tags=[
            {"name": "jobs", "description": "Start, follow, cancel, retry and delete background jobs."},
            {"name": "wip products", "description": "The products waiting to be processed."},
            {"name": "collections", "description": "Per-collection sheet, columns and backends."},
            {"name": "schedules", "description": "Recurring schedules: jobs made at the times a cron gives."},
            {"name": "notifications", "description": "Word when a job ends: targets and delivery log."},
            {"name": "health", "description": "Probes and service statistics."},
        ],
    )
    install_error_handlers(api)
    install_limits(api, settings)  # added before CORS, so CORS headers also reach 413 answers
    if settings.cors_origins:
        api.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
    api.add_middleware(RequestLog)  # added last, so outermost: every answer has its request id
    api.include_router(health.router)
    # Every /api route needs an API key (when keys exist) and takes each query parameter once;
    # set here so no route can forget it.
    routers = (
        stats.router,
        all_jobs.router,
        collections.router,
        deliveries.router,
        jobs.router,
        wip.router,
        schedules.router,
    )
    for router in routers:
        api.include_router(router, dependencies=[Depends(get_access), Depends(single_query_values)])
    api.include_router(metrics.router)
    include_dashboard(api)
    include_docs(api)
    return api, lifespan.realtime


def create_app(
    settings: Settings, *, fetcher: PageFetcher | None = None, retry: RetryPolicy | None = None
) -> Any:
    """The ASGI app to serve (FastAPI, with Socket.IO mounted at /socket.io when enabled)."""
    api, realtime = create_api(settings, fetcher=fetcher, retry=retry)
    return outermost_app(settings, api, realtime)


def outermost_app(settings: Settings, api: FastAPI, realtime: Realtime | None) -> Any:
    """Socket.IO mounted beside the API when enabled, and the `Host` and head-size checks around both."""
    # No on_startup/on_shutdown here, so that FastAPI's own lifespan runs.
    app: Any = api if realtime is None else socketio.ASGIApp(realtime.server, other_asgi_app=api)

    async def keys_exist() -> bool:
        return await app_runtime(api).services.store.keys.any_exist()

    return guard_hosts(HeadSizeLimit(app, settings.max_header_bytes), settings, keys_exist)
