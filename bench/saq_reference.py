"""A reference for the engine's own cost: SAQ's no-op jobs per second on PostgreSQL.

SAQ (``pip install -e '.[bench]'``) is a small asyncio job queue; a no-op job costs it its own
bookkeeping only (enqueue, dequeue, status updates), as a no-op product costs wipsvc its ledger.
Its worker runs with its default concurrency (10). Without SAQ installed this says so and returns
None.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from typing import Any


async def saq_noop_jobs_per_second(dsn: str, jobs: int) -> float | None:
    """Enqueue ``jobs`` no-op jobs on the PostgreSQL at ``dsn``, then time one worker doing them."""
    if importlib.util.find_spec("saq") is None or importlib.util.find_spec("psycopg") is None:
        print("SAQ is not installed (pip install -e '.[bench]'): its reference figure is skipped")
        return None
    from saq import Queue, Worker

    # Its worker warns that it cancels its own housekeeping tasks when stopped: not news here.
    logging.getLogger("saq").setLevel(logging.ERROR)

    done = 0
    all_done = asyncio.Event()

    async def noop(ctx: Any) -> None:
        return None

    async def counted(ctx: Any) -> None:
        nonlocal done
        done += 1
        if done >= jobs:
            all_done.set()

    queue = Queue.from_url(dsn)
    await queue.connect()
    try:
        for start in range(0, jobs, 500):
            await asyncio.gather(*(queue.enqueue("noop") for _ in range(start, min(jobs, start + 500))))
        worker = Worker(queue, functions=[("noop", noop)], after_process=counted)
        started = time.perf_counter()
        running = asyncio.create_task(worker.start())
        await all_done.wait()
        elapsed = time.perf_counter() - started
        await worker.stop()
        await running
    finally:
        await queue.disconnect()
    return jobs / elapsed
