"""Fixtures of the integration tests: a store opened on each database the test runs on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from wipsvc.store import Store


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """The store on ``database_url`` (the test runs once on SQLite and once on PostgreSQL)."""
    opened = await Store.open(database_url)
    yield opened
    await opened.close()
