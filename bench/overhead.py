"""What our own code costs per product: the engine with no-op backends, then the whole pipeline on
the embedded defaults, on SQLite and on PostgreSQL; SAQ's no-op jobs on the same PostgreSQL as a
reference.

    python bench/overhead.py [--small 100] [--large 1000] [--runs 15] [--builtin 200]
                             [--postgres postgresql://postgres@127.0.0.1:5432/test] [--saq-jobs 2000]

The real service (``create_app`` under uvicorn, in this process so that its store and event bus can
be timed and its SQL counted) runs each job. **No-op backends** (``bench/noop_backends.py``): every
step answers at once, nothing is parsed; what is left is the engine: the ledger, checkpoints,
events, leases. ``--runs`` rounds of jobs (1 product and the small size three times each, then the
large size) on one service warmed up by a job first, the run of median CPU of each size counting,
to see whether the cost per product stays flat: the whole run's CPU per product, and the marginal
one (the whole run less the 1-product job's, over the products beyond the first); then once more
at the large size while a client asks for the job's status every 20 ms (its latency is printed),
and the CPU of reading the ended job's 1,000 results as a poll does and as it did.
**Built-in backends**: the sample shop's demo pages (local, no latency), the local sheet in the
service's database, structured-data extraction, template descriptions, Python cleaning, no quotas.
PostgreSQL runs use a scratch database (created and dropped here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path

import httpx
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncConnection

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/overhead.py` from the repo root: the helpers live in tests/

from counters import SqlCounter, Timings  # noqa: E402
from noop_backends import NoopFetcher, noop_backends  # noqa: E402
from saq_reference import saq_noop_jobs_per_second  # noqa: E402
from tests.support.databases import scratch_postgres, sqlalchemy_url  # noqa: E402
from tests.support.live import LiveServer, make_settings  # noqa: E402

from wipsvc.adapters.base import Backends, PageFetcher  # noqa: E402
from wipsvc.adapters.scraper import SafeFetcher  # noqa: E402
from wipsvc.cli import tune_gc_for_serving  # noqa: E402
from wipsvc.demo.shop import DEMO_PAGES, SampleShop  # noqa: E402
from wipsvc.store import CollectionRecord, ProgressEvent, Store, ledger, ledger_results  # noqa: E402

TERMINAL_EVENTS = {"completed", "failed", "cancelled"}


# The poller is a process of its own, as a client is: its HTTP parsing does not share the
# service's event loop. It asks every 20 ms until the job has ended, then 20 times more, and prints
# the latencies (seconds) as JSON.
POLLER = """
import json, sys, time, httpx
base, url = sys.argv[1], sys.argv[2]
latencies, after = {"running": [], "ended": []}, 0
with httpx.Client(base_url=base, timeout=120, trust_env=False) as client:
    while after < 20:
        started = time.perf_counter()
        response = client.get(url)
        took = time.perf_counter() - started
        response.raise_for_status()
        ended = response.json()["job"]["status"] in ("completed", "failed", "cancelled")
        latencies["ended" if ended else "running"].append(took)
        after += ended
        time.sleep(0.02)
print(json.dumps(latencies))
"""


async def poll_status(base_url: str, url: str) -> dict[str, list[float]]:
    poller = await asyncio.create_subprocess_exec(
        sys.executable, "-c", POLLER, base_url, url, stdout=asyncio.subprocess.PIPE
    )
    output, _ = await poller.communicate()
    if poller.returncode != 0:
        raise RuntimeError(f"the status poller failed ({poller.returncode})")
    latencies: dict[str, list[float]] = json.loads(output)
    return latencies


async def run_jobs(
    database_url: str,
    sizes: Sequence[int],
    *,
    noop: bool,
    shop: SampleShop,
    poll: bool = False,
    warm_up: int = 0,
) -> list[dict[str, float]]:
    """One service on ``database_url`` runs a job of each of ``sizes`` products in turn, after a
    ``warm_up`` job whose figures are dropped; returns each job's figures."""
    settings = make_settings(
        database_url,
        socketio_enabled=True,
        workers_per_job=None,  # the default: as many products at once as the batch holds
        max_batch=max(100, warm_up, *sizes),
        sheets_write_per_minute=None,
        sheets_read_per_minute=None,
        llm_requests_per_minute=None,
        apps_script_max_concurrent=None,
        sheets_coalesce=False,
        job_starts_per_minute=10_000,  # a client's start quota: dozens of jobs run here in a minute
    )
    fetcher: PageFetcher = (
        NoopFetcher()
        if noop
        else SafeFetcher(
            timeout=10, max_bytes=5_000_000, max_redirects=5, allowed_hosts=["127.0.0.1"], user_agent="bench"
        )
    )
    figures: list[dict[str, float]] = []
    try:
        async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
            services = server.services
            if noop:
                assert isinstance(fetcher, NoopFetcher)
                noop_fetcher = fetcher

                async def open_noop(_: CollectionRecord) -> Backends:
                    return noop_backends(noop_fetcher)

                services.backends.open = open_noop  # type: ignore[method-assign,assignment]
            job = OneJob(server, client, noop=noop, shop=shop)
            (await client.put("/api/collections/overhead", json={})).raise_for_status()
            if warm_up:
                await job.run(warm_up)
            for size in sizes:
                figures.append(await job.run(size, poll=poll))
    finally:
        await fetcher.aclose()
    return figures


class OneJob:
    """Runs one job after another on a service, each timed and counted on its own."""

    def __init__(
        self, server: LiveServer, client: httpx.AsyncClient, *, noop: bool, shop: SampleShop
    ) -> None:
        self._server, self._client, self._noop, self._shop = server, client, noop, shop
        self._timings, self._sql = Timings(), SqlCounter()
        services = server.services
        self._sql.attach(services.store.engine.sync_engine)
        # Instance attributes shadow the methods: only this benchmark's service is timed.
        self._timings.wrap(services.store.jobs, "store: job ledger")
        self._timings.wrap(services.store.collections, "store: local sheet and products")
        self._timings.wrap(services.bus, "events: publish")
        self._ended: dict[str, asyncio.Event] = {}
        self._jobs = 0
        services.bus.subscribe(self._on_event)

    async def _on_event(self, event: ProgressEvent) -> None:
        if event.payload["status"] in TERMINAL_EVENTS:
            self._ended.setdefault(event.job_id, asyncio.Event()).set()

    async def run(self, products: int, *, poll: bool = False) -> dict[str, float]:
        client, timings, sql = self._client, self._timings, self._sql
        self._jobs += 1
        if self._noop:
            items = [
                {"sku": f"OVH-{self._jobs:03}-{n:05}", "url": f"http://127.0.0.1/noop/{n}"}
                for n in range(products)
            ]
        else:
            good = [page for page in DEMO_PAGES if page.markup != "none"]
            items = [
                {"sku": f"OVH-{self._jobs:03}-{n:05}", "url": self._shop.url_for(good[n % len(good)])}
                for n in range(products)
            ]
        ids = (await client.post("/api/overhead/wip", json={"products": items})).json()["wip_ids"]
        for label in list(timings.seconds):
            timings.seconds[label], timings.calls[label] = 0.0, 0
        sql.reset()
        latencies: dict[str, list[float]] = {}
        cpu = time.process_time()
        response = await client.post("/api/overhead/wip/process", json={"wip_ids": ids})
        status_url, job_id = response.json()["status_url"], response.json()["job_id"]
        poller = asyncio.create_task(poll_status(self._server.url, status_url)) if poll else None
        # Told by the event bus: no polling weighs in the figures.
        await self._ended.setdefault(job_id, asyncio.Event()).wait()
        cpu = time.process_time() - cpu
        statements, commits = sql.statements, sql.commits
        if poller is not None:
            latencies = await poller
        job = (await client.get(status_url)).json()["job"]
        assert job["successful_products"] == products, job
        read_costs = await results_read_costs(self._server.services.store, job_id) if poll else {}
        started, completed = (datetime.fromisoformat(job[key]) for key in ("started_at", "completed_at"))
        elapsed = (completed - started).total_seconds()
        figures = {
            "products per second": products / elapsed,
            "ms per product (wall)": elapsed / products * 1000,
            "ms CPU per product (whole process)": cpu / products * 1000,
        }
        if not poll:  # the status requests' own reads would count too
            figures["SQL statements per product"] = statements / products
            figures["transactions per product"] = commits / products
        for label, seconds in sorted(timings.seconds.items()):
            figures[f"ms per product awaiting {label}"] = seconds / products * 1000
            figures[f"  calls per product to {label}"] = timings.calls[label] / products
        figures.update(read_costs)
        everything = sorted(latency for kind in latencies.values() for latency in kind)
        for label, kind in (
            ("", everything),
            (" while running", latencies.get("running")),
            (" once ended", latencies.get("ended")),
        ):
            if kind:
                ordered = sorted(kind)
                figures[f"status request{label} p50 ms"] = statistics.median(ordered) * 1000
                figures[f"status request{label} p90 ms"] = ordered[int(0.9 * (len(ordered) - 1))] * 1000
                figures[f"status requests{label}"] = len(ordered)
        return figures


async def results_read_costs(store: Store, job_id: str) -> dict[str, float]:
    """The CPU (ms, median of 20) of a running job's results as a poll reads them — joined from the
    JSON kept on the ledger rows — and as they were read before: rebuilt from each row's columns and
    serialised. Measured on the ended job's ledger, once the service is idle."""
    costs: dict[str, float] = {}
    async with store.db.read() as conn:
        for label, read in (
            ("kept JSON joined", lambda: ledger_results.results_json_of(conn, job_id)),
            ("rebuilt from rows", lambda: _rebuilt(conn, job_id)),
        ):
            spent = []
            for _ in range(20):
                cpu = time.process_time()
                await read()
                spent.append(time.process_time() - cpu)
            costs[f"ms CPU to read all results, {label}"] = statistics.median(spent) * 1000
    return costs


async def _rebuilt(conn: AsyncConnection, job_id: str) -> bytes:
    return to_json(await ledger.results_of(conn, job_id))


async def on_database(
    label: str, kind: str, admin_dsn: str, go: Callable[[str], Awaitable[list[dict[str, float]]]]
) -> list[dict[str, float]]:
    if kind == "SQLite":
        with tempfile.TemporaryDirectory() as tmp:
            runs = await go(f"sqlite+aiosqlite:///{tmp}/overhead.db")
    else:
        async with scratch_postgres(admin_dsn, "wipsvc_bench") as dsn:
            runs = await go(sqlalchemy_url(dsn))
    for figures in runs:
        summary = ", ".join(f"{name.strip()} {value:.2f}" for name, value in figures.items())
        print(f"-- {label}: {summary}", flush=True)
    return runs


async def noop_sizes(
    kind: str, admin_dsn: str, shop: SampleShop, round_of_sizes: Sequence[int], rounds: int
) -> dict[int, tuple[dict[str, float], list[float]]]:
    """``rounds`` rounds of no-op jobs of ``round_of_sizes`` products, on one warmed-up service,
    so that a moment of load elsewhere on the machine falls on every size alike: for each size,
    the figures of the run of median CPU and every run's whole CPU (ms)."""
    plan = list(round_of_sizes) * rounds

    async def go(url: str) -> list[dict[str, float]]:
        return await run_jobs(url, plan, noop=True, shop=shop, warm_up=100)

    label = f"no-op, {kind}, rounds of {'/'.join(map(str, round_of_sizes))}"
    every = await on_database(label, kind, admin_dsn, go)
    chosen: dict[int, tuple[dict[str, float], list[float]]] = {}
    for size in dict.fromkeys(round_of_sizes):
        results = [figures for planned, figures in zip(plan, every, strict=True) if planned == size]
        spent = sorted(figures["ms CPU per product (whole process)"] * size for figures in results)
        median = statistics.median_low(spent)
        figures = next(f for f in results if f["ms CPU per product (whole process)"] * size == median)
        chosen[size] = figures, spent
    return chosen


def print_table(results: dict[str, dict[str, float]]) -> None:
    columns = list(results)
    labels = list(dict.fromkeys(label for figures in results.values() for label in figures))
    width = max(len(label) for label in labels)
    print(f"{'':{width}}  " + "  ".join(f"{column:>17}" for column in columns))
    for label in labels:
        values = (results[column].get(label, float("nan")) for column in columns)
        print(f"{label:{width}}  " + "  ".join(f"{value:17.2f}" for value in values))


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=100, help="products of the small no-op job")
    parser.add_argument("--large", type=int, default=1000, help="products of the large no-op job")
    parser.add_argument(
        "--builtin", type=int, default=200, help="products with the built-in backends (0: skip)"
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--saq-jobs", type=int, default=2000, help="SAQ's no-op jobs (0: skip SAQ)")
    parser.add_argument(
        "--runs",
        type=int,
        default=15,
        help="rounds of no-op jobs (1 and small products three times each, then large); the median counts",
    )
    parser.add_argument("--no-poll", dest="poll", action="store_false", help="skip the polled run")
    args = parser.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)  # embedded defaults: no LLM
    # The collector as `wipsvc serve` sets it: without it, a full collection walking every object
    # of the loaded libraries (100-150 ms) fell in the large job and not in the small one.
    tune_gc_for_serving()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    noop: dict[str, dict[str, float]] = {}
    one_off: dict[str, float] = {}  # ms CPU of a whole 1-product job (median run), per database
    spent: dict[str, list[float]] = {}  # every run's whole CPU (ms)
    builtin: dict[str, dict[str, float]] = {}
    async with SampleShop() as shop:
        for kind in ("SQLite", "PostgreSQL"):
            # The small jobs three times a round: their CPU is a few dozen ms, where a few ms of
            # noise weigh; the median of three times as many runs steadies them.
            round_of_sizes = (1, args.small) * 3 + (args.large,)
            sized = await noop_sizes(kind, args.postgres, shop, round_of_sizes, args.runs)
            one_off[kind] = sized[1][0]["ms CPU per product (whole process)"]
            for size in (args.small, args.large):
                figures, spent[f"{kind}, {size}"] = sized[size]
                whole = figures["ms CPU per product (whole process)"] * size
                # Less the 1-product job (a run's one-off costs and one product), per product beyond it.
                figures["ms CPU per product, marginal"] = (whole - one_off[kind]) / (size - 1)
                noop[f"{kind}, {size}"] = figures

            async def polled(url: str) -> list[dict[str, float]]:
                return await run_jobs(url, [args.large], noop=True, shop=shop, poll=True, warm_up=args.small)

            if args.poll:
                label = f"{kind}, {args.large}, polled"
                [noop[label]] = await on_database(f"no-op, {label}", kind, args.postgres, polled)

            async def real(url: str) -> list[dict[str, float]]:
                return await run_jobs(url, [args.builtin], noop=False, shop=shop)

            if args.builtin > 0:
                label = f"{kind}, {args.builtin}"
                [builtin[label]] = await on_database(f"built-in, {label}", kind, args.postgres, real)
    print("\n== no-op backends: the engine's own cost ==")
    print_table(noop)
    if builtin:
        print("\n== built-in backends on the demo pages (no goal) ==")
        print_table(builtin)
    print("\n== ratios ==")
    for kind in ("SQLite", "PostgreSQL"):
        small, large = noop[f"{kind}, {args.small}"], noop[f"{kind}, {args.large}"]
        ratio = large["ms CPU per product (whole process)"] / small["ms CPU per product (whole process)"]
        print(f"{kind}: CPU per product at {args.large} / at {args.small}, whole run: {ratio:.2f}")
        marginal = large["ms CPU per product, marginal"] / small["ms CPU per product, marginal"]
        verdict = "met" if abs(marginal - 1) <= 0.10 else "not met"
        print(
            f"{kind}: marginal CPU per product at {args.large} / at {args.small}: {marginal:.2f} "
            f"(a 1-product job's run: {one_off[kind]:.1f} ms CPU; goal within 10%: {verdict})"
        )
        between = (
            large["ms CPU per product (whole process)"] * args.large
            - small["ms CPU per product (whole process)"] * args.small
        ) / (args.large - args.small)
        print(f"  {kind}: CPU per product from {args.small} to {args.large} products: {between:.2f} ms")
        for size in (args.small, args.large):
            runs = ", ".join(f"{cpu:.0f}" for cpu in spent[f"{kind}, {size}"])
            print(f"  {kind}, {size} products: whole CPU of each run, ms: {runs}")
    if args.saq_jobs > 0:
        async with scratch_postgres(args.postgres, "wipsvc_bench") as dsn:
            saq_rate = await saq_noop_jobs_per_second(dsn, args.saq_jobs)
        if saq_rate is not None:
            ours = noop[f"PostgreSQL, {args.large}"]["products per second"]
            print(f"SAQ on the same PostgreSQL: {saq_rate:.0f} no-op jobs/s ({args.saq_jobs} jobs)")
            print(f"wipsvc no-op products/s / SAQ no-op jobs/s (PostgreSQL): {ours / saq_rate:.2f}")
    print(
        "(awaiting = wall time until the call returned, summed over calls: with products in flight at once "
        "it includes waiting for the loop, connections and locks)"
    )


if __name__ == "__main__":
    asyncio.run(main())
