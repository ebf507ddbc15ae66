"""Fixtures of the unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.clocks import LoopClock


@pytest.fixture
async def clock() -> AsyncIterator[LoopClock]:
    """The running loop's clock, moved by the test (``await clock.advance(seconds)``)."""
    fake = LoopClock(asyncio.get_running_loop())
    yield fake
    fake.restore()
