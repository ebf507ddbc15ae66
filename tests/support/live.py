"""A real wipsvc server (uvicorn) on 127.0.0.1 at an ephemeral port, inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import httpx

from tests.support.server_process import TERMINAL
from wipsvc.adapters.base import PageFetcher
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.api.deps import app_runtime
from wipsvc.app import create_api, outermost_app
from wipsvc.client.api import ApiClient
from wipsvc.config import Settings
from wipsvc.embedded import EmbeddedServer
from wipsvc.jobs.scheduler import Clock
from wipsvc.pipeline.retry import RetryPolicy
from wipsvc.server_options import uvicorn_options
from wipsvc.services import Services
from wipsvc.store.tables import utcnow


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: never read the developer's .env; short intervals; loopback shop allowed."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "scrape_allowed_hosts": ["127.0.0.1"],
        "claim_interval_seconds": 0.2,
        "lease_seconds": 5.0,
        "workers_per_job": 2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


class LiveServer:
    def __init__(
        self,
        settings: Settings,
        *,
        fetcher: PageFetcher | None = None,
        retry: RetryPolicy | None = None,
        google_sheets: GoogleSheetsBackend | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.api, realtime = create_api(
            settings,
            fetcher=fetcher,
            retry=retry
            or RetryPolicy(
                max_attempts=settings.step_max_attempts,
                quota_wait=settings.quota_wait_seconds,
                sleep=no_sleep,
            ),
            google_sheets=google_sheets,
            clock=clock,
        )
        self._server = EmbeddedServer(
            outermost_app(settings, self.api, realtime), options=uvicorn_options(settings)
        )
        self.url = self._server.url

    @property
    def services(self) -> Services:
        return app_runtime(self.api).services

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10, trust_env=False)

    async def start(self) -> LiveServer:
        await self._server.start()
        return self

    async def stop(self) -> None:
        await self._server.stop()

    async def __aenter__(self) -> LiveServer:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


class Started(NamedTuple):
    job_id: str
    wip_ids: list[int]


async def start_job(
    client: httpx.AsyncClient, collection: str, products: Sequence[tuple[str, str]]
) -> Started:
    """Create the (sku, url) products and start a job of them, through the typed client (any
    refusal raises its ``ApiError``)."""
    api = ApiClient.over(client)
    wip_ids = await api.create_products(collection, products)
    started = await api.start_job(collection, wip_ids)
    return Started(started.job_id, wip_ids)


async def wait_for_job(
    client: httpx.AsyncClient, collection: str, job_id: str, timeout: float = 30
) -> dict[str, Any]:
    """Poll the job until it ends; returns its final `job` object."""
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/api/{collection}/wip/jobs/{job_id}")
            response.raise_for_status()
            job: dict[str, Any] = response.json()["job"]
            if job["status"] in TERMINAL:
                return job
            await asyncio.sleep(0.05)


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait until ``condition()`` holds, checking every 20 ms; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def until_processed(
    client: httpx.AsyncClient, collection: str, job_id: str, count: int, timeout: float = 30
) -> None:
    """Wait until the job has processed at least ``count`` products."""
    async with asyncio.timeout(timeout):
        while True:
            job = (await client.get(f"/api/{collection}/wip/jobs/{job_id}")).json()["job"]
            if job["processed_products"] >= count:
                return
            await asyncio.sleep(0.02)


def _no_sleep_policy(settings: Settings) -> RetryPolicy:
    """The service's retry policy from ``settings``, its backoff not slept."""
    return RetryPolicy(
        max_attempts=settings.step_max_attempts, quota_wait=settings.quota_wait_seconds, sleep=no_sleep
    )


class ManualClock:
    """A clock that stands still until the test moves it (recurring schedules go by it)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
