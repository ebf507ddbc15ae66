"""API fuzzing: Schemathesis against the app's own OpenAPI schema.

Every operation gets a bounded number of generated requests, valid and invalid (positive
and negative generation modes), sent with a valid API key to the real server on
127.0.0.1. Checks: no 5xx, every status code documented, responses of the documented
content type and schema, invalid data rejected with 4xx, and no operation answering
without the key.

Generated products point at any URL and generated collections at any Sheets, Apps Script
or web-app address, and jobs do run: so pages are never fetched (the fetcher refuses),
vendor base URLs go to a closed port on loopback, and a socket guard fails any connection
or DNS lookup beyond loopback made by this process while the module runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fakes.server import ThreadedServer
from tests.support.live import make_settings
from wipsvc.adapters.base import FetchedPage
from wipsvc.app import create_api, create_app
from wipsvc.auth import create_key
from wipsvc.config import Settings
from wipsvc.domain.errors import StepError
from wipsvc.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# Per operation and mode; WIPSVC_FUZZ_EXAMPLES=500 makes a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("WIPSVC_FUZZ_EXAMPLES", "25"))
CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
# The schema's own examples, so that the examples phase meets data that exists.
EXAMPLE_COLLECTION = "sinks"
EXAMPLE_JOB_ID = "ce672290-f093-4801-b4a1-078f10ab0801"
POSTGRES_ADMIN_DSN = os.environ.get("WIPSVC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


class RefusingFetcher:
    """Fetches nothing: fuzzed product URLs may point anywhere."""

    async def fetch(self, url: str) -> FetchedPage:
        raise StepError("page fetching is switched off while fuzzing")

    async def aclose(self) -> None:
        pass


def _loopback(host: object) -> bool:
    if host in ("localhost", "127.0.0.1", "::1", None):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


@pytest.fixture(scope="module")
def socket_guard() -> Iterator[list[str]]:
    """Fail any connection or DNS lookup beyond loopback made by this process; list the attempts."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        if isinstance(address, tuple) and not _loopback(address[0]):
            attempts.append(str(address))
            raise ConnectionRefusedError(f"test network guard: {address} is beyond loopback")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host.decode() if isinstance(host, bytes) else host):
            attempts.append(f"resolve {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, "test network guard: no DNS beyond loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield attempts


async def _seed(database_url: str) -> str:
    """An API key (the service is closed to anyone without one once a key exists), the example
    collection with products, and a job under the example job id."""
    store = await Store.open(database_url)
    try:
        # ---- API key: the caller every generated request is sent as. ----
        key = (await create_key(store.keys, None, label="schemathesis")).key
        await store.collections.ensure(EXAMPLE_COLLECTION)
        ids = await store.collections.create_products(
            EXAMPLE_COLLECTION,
            [(f"ABC{n}", f"https://shop.example/products/abc{n}") for n in range(1, 6)],
        )
        await store.jobs.create(EXAMPLE_JOB_ID, EXAMPLE_COLLECTION, ids[:3])
    finally:
        await store.close()
    return key


def _settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        max_batch=20,
        sheets_api_url=CLOSED_PORT,
        apps_script_api_url=CLOSED_PORT,
        llm_base_url=f"{CLOSED_PORT}/v1",
        # Out of the way, so that generated job starts reach the code behind the limits.
        job_starts_per_minute=1_000_000,
        max_active_jobs_per_collection=100_000,
    )


def _openapi() -> dict[str, Any]:
    """The app's schema, built without starting anything (no database is opened)."""
    api, _ = create_api(_settings("sqlite+aiosqlite:///schema-only.db"))
    return api.openapi()


# Loaded at import: Schemathesis makes one test per operation at collection time. (Its lazy
# `from_fixture` loader reads `Node._nodeid`, which pytest 9 no longer has.) The fixture
# below checks that the running server serves this very schema.
OPENAPI = _openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False  # no proxy between the test and 127.0.0.1
        yield http


@contextlib.contextmanager
def _serve(database_url: str, session: requests.Session) -> Iterator[tuple[str, str]]:
    """(base URL, API key) of the real app served by uvicorn on 127.0.0.1."""
    key = asyncio.run(_seed(database_url))
    with ThreadedServer(create_app(_settings(database_url), fetcher=RefusingFetcher())) as server:
        served = session.get(f"{server.url}/openapi.json", timeout=10)
        assert served.json() == OPENAPI, "the running app serves another schema than the one fuzzed"
        yield server.url, key


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def sqlite_api(
    tmp_path_factory: pytest.TempPathFactory, socket_guard: list[str], session: requests.Session
) -> Iterator[tuple[str, str]]:
    database = Path(tmp_path_factory.mktemp("fuzz")) / "wipsvc.db"
    with _serve(f"sqlite+aiosqlite:///{database}", session) as served:
        yield served
    assert socket_guard == [], f"the service tried to reach beyond loopback: {socket_guard}"


@pytest.fixture(scope="module")
def postgres_api(socket_guard: list[str], session: requests.Session) -> Iterator[tuple[str, str]]:
    """The same on a fresh database of the machine's PostgreSQL (it differs: 32-bit ids, no NUL in text)."""
    name = f"wipsvc_fuzz_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        with _serve(f"{base}/{name}", session) as served:
            yield served
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert socket_guard == [], f"the service tried to reach beyond loopback: {socket_guard}"


CHECKS: list[Callable[..., bool | None]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


def _call(case: schemathesis.Case[Any], api: tuple[str, str], session: requests.Session) -> None:
    url, key = api
    case.call_and_validate(
        base_url=url, session=session, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS, timeout=15
    )


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_honours_its_schema_on_sqlite(
    case: schemathesis.Case[Any], sqlite_api: tuple[str, str], session: requests.Session
) -> None:
    _call(case, sqlite_api, session)


@pytest.mark.postgres
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_honours_its_schema_on_postgres(
    case: schemathesis.Case[Any], postgres_api: tuple[str, str], session: requests.Session
) -> None:
    _call(case, postgres_api, session)


# What the fuzzer found first, as fixed cases: values the database cannot hold must be refused
# with 422, never reach a query (500). PostgreSQL's ids are 32-bit and its text holds no NUL.
BEYOND_THE_DATABASE = [
    ("POST", f"/api/{EXAMPLE_COLLECTION}/wip/process", {"wip_ids": [2**31]}),
    ("POST", f"/api/{EXAMPLE_COLLECTION}/wip/process", {"wip_ids": [2**63]}),
    ("POST", f"/api/{EXAMPLE_COLLECTION}/wip/process", {"wip_ids": [2**64 + 1]}),
    ("GET", f"/api/{EXAMPLE_COLLECTION}/wip?search=a%00b", None),
    ("GET", f"/api/{EXAMPLE_COLLECTION}/wip/jobs/a%00b", None),
    ("POST", f"/api/{EXAMPLE_COLLECTION}/wip/jobs/%00/cancel", None),
    ("POST", f"/api/{EXAMPLE_COLLECTION}/wip/jobs/%00/retry", None),
    ("GET", f"/api/{EXAMPLE_COLLECTION}/wip/{2**31}", None),
]


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_values_the_database_cannot_hold_are_refused(
    database: str, request: pytest.FixtureRequest, session: requests.Session
) -> None:
    url, key = request.getfixturevalue(f"{database}_api")
    for method, path, body in BEYOND_THE_DATABASE:
        response = session.request(
            method, url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=15
        )
        assert response.status_code == 422, (method, path, body, response.text)
        assert response.json()["error"]["code"] == "validation_error"
