"""Shared fixtures: databases (SQLite and the machine's PostgreSQL), the sample shop, live servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.netguard import LoopbackOnlyTransport
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import SampleShop

POSTGRES_ADMIN_DSN = os.environ.get("WIPSVC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'wipsvc.db'}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards."""
    name = f"wipsvc_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


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
