"""Shared fixtures: databases (SQLite and the machine's PostgreSQL), the sample shop, live servers."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.databases import scratch_postgres, sqlalchemy_url
from tests.support.netguard import LoopbackOnlyTransport
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import SampleShop

pytest_plugins = ["tests.support.google_fakes"]

POSTGRES_ADMIN_DSN = os.environ.get("WIPSVC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("WIPSVC_TEST_REDIS", "redis://127.0.0.1:6379/15")
# CI sets it: there a server that cannot be reached fails its tests instead of skipping them.
REQUIRE_SERVICES = os.environ.get("WIPSVC_REQUIRE_SERVICES", "") not in ("", "0")

# No test may read or write the user's real data folder: every default database lands here
# (child processes inherit it).
TEST_DATA_DIR = tempfile.mkdtemp(prefix="wipsvc-test-data-")
os.environ["WIPSVC_DATA_DIR"] = TEST_DATA_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(TEST_DATA_DIR, ignore_errors=True)


# The servers some tests need, by marker: (name, URL of the server, default port).
SERVICES = {
    "postgres": ("PostgreSQL", POSTGRES_ADMIN_DSN, 5432),
    "redis": ("Redis", REDIS_TEST_URL, 6379),
}
# Fixtures that reach a server: a test using one carries its marker even if it does not say so.
SERVICE_FIXTURES = {"postgres_url": "postgres", "postgres_api": "postgres", "redis_url": "redis"}


@functools.cache
def unreachable(marker: str) -> str | None:
    """Why the server behind ``marker`` cannot be used, or None when it accepts connections."""
    name, url, default_port = SERVICES[marker]
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or default_port)
    try:
        socket.create_connection(address, timeout=3).close()
    except OSError as error:
        return f"{name} at {address[0]}:{address[1]} is not reachable ({error.strerror or error})"
    return None


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for marker, (name, _, _) in SERVICES.items():
        reason = unreachable(marker)
        if reason is None:
            lines.append(f"{name}: reachable, its tests run")
        elif REQUIRE_SERVICES:
            lines.append(f"{reason}: its tests will FAIL (WIPSVC_REQUIRE_SERVICES is set)")
        else:
            lines.append(f"{reason}: its tests will be skipped")
    return lines


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            if fixture in SERVICE_FIXTURES:
                item.add_marker(SERVICE_FIXTURES[fixture])


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in SERVICES:
        if item.get_closest_marker(marker) is None or (reason := unreachable(marker)) is None:
            continue
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason}, and WIPSVC_REQUIRE_SERVICES requires it", pytrace=False)
        pytest.skip(f"{reason}: start it to run these tests (see README, Development)")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'wipsvc.db'}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards."""
    async with scratch_postgres(POSTGRES_ADMIN_DSN, "wipsvc_test") as dsn:
        yield sqlalchemy_url(dsn)


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis; tests share it, so each keeps to names of its own."""
    return REDIS_TEST_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def shop() -> Iterator[SampleShop]:
    with SampleShop() as running:
        yield running


@pytest.fixture
def guard() -> LoopbackOnlyTransport:
    return LoopbackOnlyTransport()


@pytest.fixture
async def fetcher(guard: LoopbackOnlyTransport) -> AsyncIterator[SafeFetcher]:
    """The real scraper, allowed to reach the loopback shop and nothing beyond it."""
    fetcher = SafeFetcher(
        timeout=10,
        max_bytes=2_000_000,
        max_redirects=5,
        allowed_hosts=["127.0.0.1"],
        user_agent="wipsvc-test",
        transport=guard,
    )
    yield fetcher
    await fetcher.aclose()
    assert guard.violations == []
