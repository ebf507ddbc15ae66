"""Quotas per account, and one account's quota shared exactly by several instances.

    python bench/cluster.py [--products 40] [--scale 0.1]

A latency profile where the Sheets write quota binds: pages answer in 50 ms, no LLM, the Python
cleaning rules, each Sheets request 0.3 s, and write coalescing off, so that every product costs
three write requests and Google's 60 writes a minute per user set the pace (20 products a
minute per account). The fake Sheets counts its quota per user, as Google does. Every time is
multiplied by ``--scale`` (the quota's minute too) and reported back in unscaled time.

1. **one account**: one instance, two collections whose jobs run at once, both on one service
   account; 2. **two accounts**: the same with the second collection on a service account of its
   own. The second should finish about twice as fast, never over either account's quota.
3. **three instances, one account**: three ``wipsvc`` processes on one PostgreSQL and one Redis
   (``WIPSVC_REDIS_URL``: the buckets live there), a collection's job started through each, all
   on one service account. The most writes the fake saw in any 60 s window, per account, and
   the 429s it answered, are printed for every scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/cluster.py` from the repo root: the fakes live in tests/

from tests.fakes.google_oauth import FakeGoogleOAuth  # noqa: E402
from tests.fakes.server import ThreadedServer  # noqa: E402
from tests.fakes.sheets import FakeSheets  # noqa: E402
from tests.support.databases import scratch_postgres, sqlalchemy_url  # noqa: E402
from tests.support.windows import most_in_window  # noqa: E402

from wipsvc.collection import DEFAULT_COLUMNS  # noqa: E402

QUOTA = 60  # Sheets writes per minute per user
PAGE, SHEETS = 0.05, 0.3  # unscaled seconds
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def page_app(scale: float) -> Starlette:
    async def product(request: Request) -> HTMLResponse:
        n = request.path_params["n"]
        await asyncio.sleep(PAGE * scale)
        offer = f'{{"@type": "Offer", "price": "{100 + int(n)}.00", "priceCurrency": "GBP"}}'
        ld = (
            f'{{"@context": "https://schema.org", "@type": "Product", "name": "Sink {n}", "offers": {offer}}}'
        )
        return HTMLResponse(
            f'<html><head><title>Sink {n}</title><script type="application/ld+json">{ld}</script></head>'
            f"<body><h1>Sink {n}</h1></body></html>"
        )

    return Starlette(routes=[Route("/products/{n}", product)])


@dataclass
class Outcome:
    name: str
    seconds: float  # unscaled, from the first job's start to the last job's end
    products: int
    per_account: dict[str, int]  # most writes in any quota window, per account
    throttled: int


class Instance:
    """``bench/service.py`` in its own process, with the given environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.url = ""
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Instance:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "service.py"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **self.env},
        )
        assert self._process.stdout is not None
        self.url = (await self._process.stdout.readline()).decode().strip()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.close()
        await self._process.wait()


async def run_scenario(
    name: str, *, accounts: int, instances: int, collections: int, products: int, scale: float, workdir: Path
) -> Outcome:
    run = uuid.uuid4().hex[:8]  # fresh accounts: no Redis state of an earlier run applies
    database = contextlib.AsyncExitStack()  # the scratch PostgreSQL database several instances share
    with (
        FakeGoogleOAuth() as oauth,
        FakeSheets(
            oauth, write_quota=QUOTA, read_quota=QUOTA, quota_window=60 * scale, latency=SHEETS * scale
        ) as sheets,
        ThreadedServer(page_app(scale)) as shop,
    ):
        credentials = workdir / f"credentials-{run}"
        credentials.mkdir()
        for n in range(accounts):
            oauth.write_service_account(
                credentials / f"sa{n}.json",
                client_email=f"bench-{run}-{n}@project-{n}.iam.gserviceaccount.com",
                project_id=f"project-{n}",
            )
        if instances > 1:
            dsn = await database.enter_async_context(scratch_postgres(POSTGRES_ADMIN, "wipsvc_cluster"))
            database_url = sqlalchemy_url(dsn)
        else:
            database_url = f"sqlite+aiosqlite:///{workdir / name.replace(' ', '-')}.db"
        env = {
            "WIPSVC_DATABASE_URL": database_url,
            "WIPSVC_LOG_LEVEL": "warning",
            "WIPSVC_SCRAPE_ALLOWED_HOSTS": "127.0.0.1",
            "WIPSVC_SHEETS_API_URL": sheets.url,
            "WIPSVC_CREDENTIALS_DIR": str(credentials),
            "WIPSVC_LLM_API_KEY": "",
            "OPENAI_API_KEY": "",
            "WIPSVC_QUOTA_PERIOD_SECONDS": str(60 * scale),
            "WIPSVC_RATE_LIMIT_BACKOFF_SECONDS": str(1 * scale),
            "WIPSVC_RATE_LIMIT_MAX_BACKOFF_SECONDS": str(32 * scale),
            "WIPSVC_SHEETS_COALESCE": "false",
            "WIPSVC_MAX_RUNNING_JOBS": "8",
        }
        if instances > 1:
            env["WIPSVC_REDIS_URL"] = REDIS_URL
        sids = []
        header = sorted(DEFAULT_COLUMNS, key=lambda column: DEFAULT_COLUMNS[column])
        for _ in range(collections):
            sid = sheets.add_spreadsheet()
            sheets.set_rows(sid, "Sheet1", [header])
            sids.append(sid)
        async with database:
            started = await _run_jobs(env, instances, sids, accounts, shop.url, products)
        writes: dict[str, list[float]] = {}
        for request in sheets.requests:
            if request.kind == "write" and request.status == 200:
                writes.setdefault(request.subject.split("@")[0], []).append(request.at)
        per_account = {account: most_in_window(times, 60 * scale) for account, times in writes.items()}
        return Outcome(
            name,
            started["seconds"] / scale,
            products * collections,
            per_account,
            sheets.count(status=429),
        )


async def _run_jobs(
    env: dict[str, str], instances: int, sids: list[str], accounts: int, shop: str, products: int
) -> dict[str, Any]:
    async with contextlib_instances(env, instances) as servers:
        clients = [httpx.AsyncClient(base_url=s.url, timeout=60, trust_env=False) for s in servers]
        try:
            job_urls = []
            for index, sid in enumerate(sids):
                client = clients[index % len(clients)]
                name = f"bench{index}"
                sheet = {
                    "backend": "google",
                    "spreadsheet_id": sid,
                    "credentials_file": f"sa{index % accounts}.json",
                }
                (await client.put(f"/api/collections/{name}", json={"sheet": sheet})).raise_for_status()
                items = [{"sku": f"C{index}-{n:04}", "url": f"{shop}/products/{n}"} for n in range(products)]
                response = await client.post(f"/api/{name}/wip", json={"products": items})
                response.raise_for_status()
                job_urls.append((client, name, response.json()["wip_ids"]))
            started = []
            for client, name, ids in job_urls:  # each job started through its own instance
                response = await client.post(f"/api/{name}/wip/process", json={"wip_ids": ids})
                response.raise_for_status()
                started.append((client, response.json()["status_url"]))
            jobs = []
            for client, url in started:
                while True:
                    job = (await client.get(url)).json()["job"]
                    if job["status"] in ("completed", "failed", "cancelled"):
                        break
                    await asyncio.sleep(0.1)
                assert job["successful_products"] == products, job
                jobs.append(job)
        finally:
            for client in clients:
                await client.aclose()
    first = min(datetime.fromisoformat(job["started_at"]) for job in jobs)
    last = max(datetime.fromisoformat(job["completed_at"]) for job in jobs)
    return {"seconds": (last - first).total_seconds()}


class contextlib_instances:
    """Start ``count`` instances (the first alone: it creates the schema), stop them all."""

    def __init__(self, env: dict[str, str], count: int) -> None:
        self._instances = [Instance({**env, "WIPSVC_INSTANCE_ID": f"bench-{n}"}) for n in range(count)]

    async def __aenter__(self) -> list[Instance]:
        await self._instances[0].__aenter__()
        await asyncio.gather(*(instance.__aenter__() for instance in self._instances[1:]))
        return self._instances

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(instance.__aexit__() for instance in self._instances))


def report(outcome: Outcome) -> None:
    rate = outcome.products / outcome.seconds * 60
    print(f"\n== {outcome.name} ==")
    print(f"  {outcome.products} products in {outcome.seconds:.0f} s unscaled: {rate:.1f} products/min")
    for account, most in sorted(outcome.per_account.items()):
        print(f"  account {account.split('-')[-1]}: most writes in any 60 s window {most} (quota {QUOTA})")
    print(f"  429s received: {outcome.throttled}")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=40, help="products per collection")
    parser.add_argument("--scale", type=float, default=0.1, help="time scale (the quota's minute too)")
    args = parser.parse_args()
    print(f"{args.products} products per collection; time scale {args.scale}; {os.cpu_count()} CPUs")
    wall = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        common = {"products": args.products, "scale": args.scale, "workdir": Path(tmp)}
        one = await run_scenario(
            "two collections, one account", accounts=1, instances=1, collections=2, **common
        )
        two = await run_scenario(
            "two collections, two accounts", accounts=2, instances=1, collections=2, **common
        )
        three = await run_scenario(
            "three instances (PostgreSQL + Redis), three collections, one account",
            accounts=1,
            instances=3,
            collections=3,
            **common,
        )
    for outcome in (one, two, three):
        report(outcome)
    print("\n== ratios ==")
    print(f"  two accounts / one account, products per minute: {one.seconds / two.seconds:.2f}")
    print(f"  three instances: most writes in any 60 s window {max(three.per_account.values())} of {QUOTA}")
    print(f"  wall time: {time.monotonic() - wall:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
