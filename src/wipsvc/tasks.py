"""Ending a background task the one way every owner of a task does: cancel it, then wait until it
has run its clean-up, so that no task outlives what owns it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end; its cancellation is not raised here."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
