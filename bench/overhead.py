"""What our own code costs per product: the whole pipeline on embedded defaults, nothing external.

    python bench/overhead.py [--products 200] [--postgres postgresql://postgres@127.0.0.1:5432/test]

The real service (``create_app`` under uvicorn, in this process so that its store and event bus can
be timed) runs a job on the built-in sample shop (local pages, no latency), with the embedded
defaults: the local sheet in the service's database, structured-data extraction, template
descriptions, Python cleaning, and no quotas. Once on SQLite and once on a scratch PostgreSQL
database (created and dropped here). Prints products per second and, per product, the time spent
awaiting the store (job ledger, local sheet) and publishing events, and the process's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/overhead.py` from the repo root: the helpers live in tests/

from tests.support.live import LiveServer, make_settings  # noqa: E402

from wipsvc.adapters.scraper import SafeFetcher  # noqa: E402
from wipsvc.demo.shop import DEMO_PAGES, SampleShop  # noqa: E402


class Timings:
    """Wall time spent awaiting an object's coroutine methods, by label."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, label: str) -> None:
        for name in dir(owner):
            method = getattr(owner, name)
            if name.startswith("_") or not asyncio.iscoroutinefunction(method):
                continue
            setattr(owner, name, self._timed(method, label))

    def _timed(self, method: Callable[..., Awaitable[Any]], label: str) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        return timed


async def run(database_url: str, products: int, shop: SampleShop, workers: int) -> dict[str, float]:
    settings = make_settings(
        database_url,
        socketio_enabled=True,
        workers_per_job=workers,
        max_batch=max(100, products),
        sheets_write_per_minute=None,
        sheets_read_per_minute=None,
        llm_requests_per_minute=None,
        apps_script_max_concurrent=None,
        sheets_coalesce=False,
    )
    fetcher = SafeFetcher(
        timeout=10, max_bytes=5_000_000, max_redirects=5, allowed_hosts=["127.0.0.1"], user_agent="bench"
    )
    timings = Timings()
    good = [page for page in DEMO_PAGES if page.markup != "none"]
    items = [{"sku": f"OVH-{n:05}", "url": shop.url_for(good[n % len(good)])} for n in range(products)]
    try:
        async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
            services = server.services
            # Instance attributes shadow the methods: only this benchmark's service is timed.
            timings.wrap(services.store.jobs, "store: job ledger")
            timings.wrap(services.store.collections, "store: local sheet and products")
            timings.wrap(services.bus, "events: publish")
            (await client.put("/api/collections/overhead", json={})).raise_for_status()
            ids = (await client.post("/api/overhead/wip", json={"products": items})).json()["wip_ids"]
            for label in list(timings.seconds):
                timings.seconds[label], timings.calls[label] = 0.0, 0
            cpu = time.process_time()
            response = await client.post("/api/overhead/wip/process", json={"wip_ids": ids})
            status_url = response.json()["status_url"]
            while (job := (await client.get(status_url)).json()["job"])["status"] == "running" or (
                job["status"] == "queued"
            ):
                await asyncio.sleep(0.5)  # rarely: our polling must not weigh in the figures
            cpu = time.process_time() - cpu
    finally:
        await fetcher.aclose()
    started, completed = (datetime.fromisoformat(job[key]) for key in ("started_at", "completed_at"))
    elapsed = (completed - started).total_seconds()
    figures = {
        "products per second": products / elapsed,
        "ms per product (wall)": elapsed / products * 1000,
        "ms CPU per product (whole process)": cpu / products * 1000,
    }
    for label, seconds in sorted(timings.seconds.items()):
        figures[f"ms per product awaiting {label}"] = seconds / products * 1000
        figures[f"  calls per product to {label}"] = timings.calls[label] / products
    assert job["successful_products"] == products, job
    return figures


async def with_postgres(admin_dsn: str, products: int, shop: SampleShop, workers: int) -> dict[str, float]:
    name = f"wipsvc_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        return await run(f"{base}/{name}", products, shop, workers)
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)  # embedded defaults: no LLM
    print(f"{args.products} products per run; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    results: dict[str, dict[str, float]] = {}
    async with SampleShop() as shop:
        # One worker: each product's own cost, nothing overlapping. 32: the default's concurrency.
        for workers in (1, 32):
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite+aiosqlite:///{tmp}/overhead.db"
                results[f"SQLite, {workers} w"] = await run(url, args.products, shop, workers)
            results[f"PostgreSQL, {workers} w"] = await with_postgres(
                args.postgres, args.products, shop, workers
            )
    columns = list(results)
    labels = list(dict.fromkeys(label for figures in results.values() for label in figures))
    width = max(len(label) for label in labels)
    print(f"{'':{width}}  " + "  ".join(f"{column:>15}" for column in columns))
    for label in labels:
        values = (results[column].get(label, float("nan")) for column in columns)
        print(f"{label:{width}}  " + "  ".join(f"{value:15.2f}" for value in values))
    print(
        "(awaiting = wall time until the call returned, summed over calls: with 32 workers it "
        "includes waiting for the loop, connections and locks)"
    )


if __name__ == "__main__":
    asyncio.run(main())
