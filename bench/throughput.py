"""Throughput of the seed's design against the default design, side by side, on the protocol fakes.

    python bench/throughput.py [--products 100] [--scale 1.0] [--seed-scale 0.02]

Each design gets the real service (``bench/service.py``: ``create_app`` under uvicorn, in its own
process) and its own fakes: Google Sheets (Google's quotas: 60 reads and 60 writes a minute),
OAuth, Apps Script API, an OpenAI-compatible LLM and a shop; both run at once. Latencies
(unscaled): page 1 s, LLM extraction 6 s, LLM descriptions 6 s, Apps Script 3 s, each Sheets
request 0.3 s; page and LLM times vary by up to ±25% per product (fixed per SKU). Every time —
latencies, quota window, coalescing window, backoff, the seed's 20 s delay — is multiplied by the
design's scale, and results are converted back to unscaled time. The default design runs in real
time; the seed at 1/50 of it, or it would take an hour. Our own code's time is not scaled, so it
weighs 50 times more in the seed's run: the seed's model rate (without it) is printed too.

The default design's ETA is judged at every progress event the service recorded (read from its
database after the run) against the time actually left until the job's ``completed_at``. The
run ends with a PASS/FAIL line per goal: at least 0.9 of the true external bound, 100 times the
seed, 0 429s, the ETA within 25% from 10% to 90% done.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/throughput.py` from the repo root: the fakes live in tests/

from tests.fakes import openai_api as behaviours  # noqa: E402
from tests.fakes.apps_script import FakeAppsScript  # noqa: E402
from tests.fakes.google_oauth import FakeGoogleOAuth  # noqa: E402
from tests.fakes.openai_api import FakeOpenAI, RecordedRequest  # noqa: E402
from tests.fakes.server import ThreadedServer  # noqa: E402
from tests.fakes.sheets import FakeSheets  # noqa: E402
from tests.support.windows import most_in_window  # noqa: E402

from wipsvc.collection import DEFAULT_COLUMNS  # noqa: E402
from wipsvc.config import Settings  # noqa: E402

# Unscaled seconds. One product's critical path: append, page, extraction, descriptions, write,
# Apps Script, write.
PAGE, LLM_EXTRACT, LLM_DESCRIBE, APPS_SCRIPT, SHEETS = 1.0, 6.0, 6.0, 3.0, 0.3
PRODUCT_LATENCY = SHEETS + PAGE + LLM_EXTRACT + LLM_DESCRIBE + SHEETS + APPS_SCRIPT + SHEETS
SEED_DELAY = 20.0
QUOTA = 60  # Sheets reads and writes per minute per user
APPS_SCRIPT_CONCURRENCY = 30  # Google's executions at once per user (the service's default too)
LLM_PER_MINUTE = 500  # the service's default LLM request limit
COALESCE_WINDOW_MS = Settings.model_fields["sheets_coalesce_window_ms"].default


def jitter(n: int, salt: float) -> float:
    """A fixed factor in [0.75, 1.25), mean 1, per product: pages and LLM answers vary in time
    (identical latencies would keep a job's products in lockstep waves, which nothing real does)."""
    return 0.75 + 0.5 * ((n * salt) % 1.0)


def latency(n: int) -> float:
    """Product n's external latency on its critical path (unscaled)."""
    varying = (jitter(n, 0.618) - 1) * PAGE + (jitter(n, 0.414) - 1) * (LLM_EXTRACT + LLM_DESCRIBE)
    return PRODUCT_LATENCY + varying


def ideal_makespan(products: int, workers: int, gap: float) -> float:
    """An engine that costs nothing itself: products in order, each to the first free worker."""
    free = [0.0] * workers
    for n in range(products):
        worker = min(range(workers), key=lambda w: free[w])
        start = free[worker] + (gap if n >= workers else 0.0)
        free[worker] = start + latency(n)
    return max(free)


def drawn(n: int) -> tuple[float, float, float]:
    """Product n's page, extraction and description latencies as the fakes draw them (unscaled)."""
    llm = jitter(n, 0.414)
    return PAGE * jitter(n, 0.618), LLM_EXTRACT * llm, LLM_DESCRIBE * llm


@dataclass
class Bound:
    """The true external bound of a job: what no engine could beat against these services."""

    makespan: float  # seconds from the job's start to its last product's end
    binding: str
    parts: dict[str, float]


def true_bound(products: int, apps_script_concurrency: int, llm_per_minute: int) -> Bound:
    """Each product's own path — its row appended while its page is read and extracted, then the
    descriptions, a write, Apps Script and a last write — with Google's Apps Script concurrency
    as a FIFO queue of ``apps_script_concurrency`` servers, arrivals in order of readiness. The
    Sheets write quota, with every write of an instant batched into one request, costs a job
    nothing until it needs more than a minute's quota of request instants: it binds when the
    writes' phases (3 per product, at most one request per product and phase) cannot fit the
    minutes the job lasts (three phases: three requests at the least, so not below a minute's
    quota of 3). The LLM's requests per minute bind when a job's 2 requests per product exceed
    what its minutes allow. The Sheets latencies, Apps Script's and the critical path are the
    fakes' own; pages and LLM answers are the per-SKU draws the fakes made (``drawn``)."""
    ready = []
    for n in range(products):
        page, extract, describe = drawn(n)
        ready.append(max(SHEETS, page + extract) + describe + SHEETS)
    servers = [0.0] * apps_script_concurrency
    finish = []
    for at in sorted(ready):
        server = min(range(apps_script_concurrency), key=lambda s: servers[s])
        end = max(at, servers[server]) + APPS_SCRIPT
        servers[server] = end
        finish.append(end + SHEETS)
    path = max(finish)
    # Requests a job needs if every write instant were one request per product and phase: the
    # quota binds only when even the batched requests (one per phase at least) cannot fit.
    write_phases = 3
    minutes_writes = max(0, math.ceil(write_phases / QUOTA) - 1) * 60.0
    minutes_llm = max(0, math.ceil(2 * products / llm_per_minute) - 1) * 60.0
    parts = {
        f"critical path + Apps Script queue ({apps_script_concurrency} at once)": path,
        f"Sheets writes {QUOTA}/min, batched": minutes_writes + SHEETS,
        f"LLM {llm_per_minute} requests/min, 2 per product": minutes_llm
        + max(sum(drawn(n)[1:]) for n in range(products)),
    }
    binding = max(parts, key=lambda name: parts[name])
    return Bound(parts[binding], binding, parts)


@dataclass
class Design:
    name: str
    scale: float
    env: dict[str, str]
    workers: int
    delay: float = 0.0
    polls: list[tuple[float, int, float | None]] = field(default_factory=list)
    elapsed: float = 0.0
    job: dict[str, Any] = field(default_factory=dict)
    sheets_reads: int = 0
    sheets_writes: int = 0
    throttled: int = 0
    max_writes_per_window: int = 0
    # (when, processed, eta_seconds) of every progress event of the job, from the service's database
    events: list[tuple[datetime, int, float | None]] = field(default_factory=list)


def page_app(scale: float) -> Starlette:
    async def product(request: Request) -> HTMLResponse:
        n = request.path_params["n"]
        await asyncio.sleep(PAGE * jitter(int(n), 0.618) * scale)
        # Structured data gives title and price; the LLM has to find brand, GTIN and the rest.
        price = 100 + int(n)
        offer = f'{{"@type": "Offer", "price": "{price}.00", "priceCurrency": "GBP"}}'
        product = f'"@type": "Product", "name": "Sink {n}", "offers": {offer}'
        ld = f'{{"@context": "https://schema.org", {product}}}'
        text = " ".join(
            f"Sink {n} is made of brushed steel by Kelso, gtin 5012345{int(n):06}." for _ in range(8)
        )
        return HTMLResponse(
            f'<!DOCTYPE html><html><head><title>Sink {n}</title><script type="application/ld+json">{ld}'
            f"</script></head><body><main><h1>Bench sink {n}</h1><p>{text}</p></main></body></html>"
        )

    return Starlette(routes=[Route("/products/{n}", product)])


Runner = Callable[[Design, httpx.AsyncClient, str, str, str, str, int], Awaitable[None]]


async def run_design(design: Design, products: int, workdir: Path, runner: Runner | None = None) -> None:
    """Start the fakes and the service for ``design``, then ``runner`` (by default one job of
    ``products`` products, see ``run_job``) against them; records the fakes' counts."""
    scale = design.scale
    with (
        FakeGoogleOAuth() as oauth,
        FakeSheets(
            oauth, read_quota=QUOTA, write_quota=QUOTA, quota_window=60 * scale, latency=SHEETS * scale
        ) as sheets,
        FakeOpenAI() as llm,
        FakeAppsScript(latency=APPS_SCRIPT * scale) as script,
        ThreadedServer(page_app(scale)) as shop,
    ):
        for n in range(products):
            sku, factor = f"SKU: BENCH-{n:04}\n", jitter(n, 0.414) * scale
            llm.when(_for(sku, "ExtractedFields"), behaviours.delay(LLM_EXTRACT * factor))
            llm.when(_for(sku, None), behaviours.delay(LLM_DESCRIBE * factor))
        sid = sheets.add_spreadsheet()
        header = sorted(DEFAULT_COLUMNS, key=lambda name: DEFAULT_COLUMNS[name])
        sheets.set_rows(sid, "Sheet1", [header])
        service_account = oauth.write_service_account(workdir / f"{design.name}-sa.json")
        user = oauth.write_authorized_user(workdir / f"{design.name}-user.json")
        env = {
            "WIPSVC_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / design.name}.db",
            "WIPSVC_LOG_LEVEL": "warning",
            "WIPSVC_SCRAPE_ALLOWED_HOSTS": "127.0.0.1",
            "WIPSVC_SHEETS_API_URL": sheets.url,
            "WIPSVC_APPS_SCRIPT_API_URL": script.url,
            "WIPSVC_GOOGLE_CREDENTIALS_FILE": str(service_account),
            "WIPSVC_CREDENTIALS_DIR": str(workdir),  # the collection names its OAuth file in it
            "WIPSVC_LLM_BASE_URL": llm.base_url,
            "WIPSVC_LLM_API_KEY": llm.api_key,
            "WIPSVC_QUOTA_PERIOD_SECONDS": str(60 * scale),
            "WIPSVC_RATE_LIMIT_BACKOFF_SECONDS": str(1 * scale),
            "WIPSVC_RATE_LIMIT_MAX_BACKOFF_SECONDS": str(32 * scale),
            # The service's default window, on the bench's time scale like every other latency.
            "WIPSVC_SHEETS_COALESCE_WINDOW_MS": str(COALESCE_WINDOW_MS * scale),
            **design.env,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bench" / "service.py"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
        )
        assert process.stdout is not None and process.stdin is not None
        url = (await process.stdout.readline()).decode().strip()
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as client:
                await (runner or run_job)(
                    design, client, sid, user.name, script.script_id, shop.url, products
                )
        finally:
            process.stdin.close()
            await process.wait()
        design.events = progress_events(workdir / f"{design.name}.db")
        design.max_writes_per_window = most_in_window(
            [r.at for r in sheets.requests if r.kind == "write" and r.status == 200], 60 * scale
        )
        design.sheets_reads = sheets.count(kind="read", status=200)
        design.sheets_writes = sheets.count(kind="write", status=200)
        design.throttled = sheets.count(status=429) + sum(
            1 for r in llm.requests if r.outcome == "rate_limit"
        )


def progress_events(database: Path) -> list[tuple[datetime, int, float | None]]:
    """Every progress event the service recorded (its ``wip_job_progress`` payloads), in order."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute("SELECT payload FROM job_events ORDER BY job_id, seq").fetchall()
    events = []
    for (text,) in rows:
        payload = json.loads(text)
        stamped = datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
        events.append((stamped, int(payload["processed"]), payload.get("eta_seconds")))
    return events


def _for(sku: str, schema: str | None) -> Callable[[RecordedRequest], bool]:
    """Matches one product's LLM requests (of one schema, or any)."""
    return lambda r: sku in r.user_text and (schema is None or r.schema_name == schema)


async def run_job(
    design: Design, client: httpx.AsyncClient, sid: str, user: str, script_id: str, shop: str, products: int
) -> None:
    await configure(client, sid, user, script_id)
    ids = await create_products(client, shop, range(products))
    started = time.monotonic()
    response = await client.post("/api/bench/wip/process", json={"wip_ids": ids})
    response.raise_for_status()
    job_url = response.json()["status_url"]
    while True:
        job = (await client.get(job_url)).json()["job"]
        now = time.monotonic() - started
        if not design.polls or design.polls[-1][1] != job["processed_products"]:
            design.polls.append((now, job["processed_products"], job.get("eta_seconds")))
        if job["status"] in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(0.02)
    design.elapsed = job_seconds(job) or now
    design.job = job


async def configure(client: httpx.AsyncClient, sid: str, user: str, script_id: str) -> None:
    """The collection `bench`: the fake Google sheet and Apps Script, the fake LLM by default."""
    config = {
        "sheet": {"backend": "google", "spreadsheet_id": sid},
        "cleaning": {"backend": "apps_script_api", "script_id": script_id, "oauth_credentials_file": user},
    }
    (await client.put("/api/collections/bench", json=config)).raise_for_status()


async def create_products(client: httpx.AsyncClient, shop: str, numbers: range) -> list[int]:
    """Products BENCH-nnnn of `bench`, one per shop page (the fakes' latencies are per SKU)."""
    items = [{"sku": f"BENCH-{n:04}", "url": f"{shop}/products/{n}"} for n in numbers]
    response = await client.post("/api/bench/wip", json={"products": items})
    response.raise_for_status()
    ids: list[int] = response.json()["wip_ids"]
    return ids


def job_seconds(job: dict[str, Any]) -> float | None:
    if job.get("started_at") and job.get("completed_at"):
        return (
            datetime.fromisoformat(job["completed_at"]) - datetime.fromisoformat(job["started_at"])
        ).total_seconds()
    return None


def report(design: Design, products: int, bound: Bound | None = None) -> float:
    minutes = design.elapsed / design.scale / 60
    rate = products / minutes
    makespan = ideal_makespan(products, design.workers, design.delay)
    writes = design.sheets_writes / products
    if bound is None:
        bounds = {
            f"{design.workers} workers x ~{PRODUCT_LATENCY:.1f} s per product (12 s of it LLM)": (
                products / makespan * 60
            ),
            f"Sheets writes {QUOTA}/min / {writes:.2f} per product": QUOTA / writes,
            "LLM 500 requests/min / 2 per product": 250.0,
        }
    else:
        bounds = {name: products / seconds * 60 for name, seconds in bound.parts.items()}
    binding = min(bounds, key=lambda name: bounds[name])
    job = design.job
    print(f"\n== {design.name} (time scale {design.scale}) ==")
    print(
        f"  job: {job['status']}, {job['successful_products']}/{products} succeeded, "
        f"{job['failed_products']} failed"
    )
    print(f"  time: {design.elapsed:.1f} s scaled = {design.elapsed / design.scale:.1f} s unscaled")
    print(f"  products per minute (unscaled): {rate:.2f}")
    print(
        f"  Sheets requests per product: {(design.sheets_reads + design.sheets_writes) / products:.2f} "
        f"({writes:.2f} writes, {design.sheets_reads / products:.2f} reads); "
        f"most writes in any 60 s window: {design.max_writes_per_window}"
    )
    print(f"  429s received: {design.throttled}")
    label = "bound" if bound is None else "true external bound"
    for name, value in bounds.items():
        print(f"  {label} {'*' if name == binding else ' '} {value:7.2f}/min  {name}")
    print(f"  binding bound: {bounds[binding]:.2f}/min; measured/bound = {rate / bounds[binding]:.3f}")
    design.job["_bound"] = bounds[binding]
    return rate


@dataclass
class EtaError:
    median: float
    worst: float
    marks: dict[float, float]  # progress mark -> signed error of the event nearest to it
    trace: list[tuple[float, int, float, float]]  # (s since start, processed, eta, actual left)


def eta_errors(design: Design, products: int) -> EtaError | None:
    """The job's ``eta_seconds`` at every progress event (as the service stamped it) against
    the time that was actually left then: the job's ``completed_at`` less the event's
    timestamp. Relative error, signed (+ = too long); the median and worst over the events
    with 10% to 90% of the products processed."""
    if not design.job.get("completed_at") or not design.job.get("started_at"):
        return None
    ended = datetime.fromisoformat(design.job["completed_at"])
    began = datetime.fromisoformat(design.job["started_at"])
    errors: list[tuple[float, float]] = []
    trace = []
    for at, done, eta in design.events:
        left = (ended - at).total_seconds()
        if eta is None or left <= 0:
            continue
        trace.append(((at - began).total_seconds(), done, eta, left))
        if 0.1 <= done / products <= 0.9:
            errors.append((done / products, (eta - left) / left))
    if not errors:
        return None
    middle = [abs(error) for _, error in errors]
    marks = {
        mark: min(errors, key=lambda pair: abs(pair[0] - mark))[1] for mark in (0.1, 0.25, 0.5, 0.75, 0.9)
    }
    return EtaError(statistics.median(middle), max(middle), marks, trace)


def print_eta(error: EtaError | None, trace: bool) -> None:
    if error is None:
        print("  ETA error: no progress event between 10% and 90% done")
        return
    shown = ", ".join(f"{int(m * 100)}% done: {e * 100:+.0f}%" for m, e in error.marks.items())
    print(
        f"  ETA error vs actual time left, every event 10-90% done: median {error.median * 100:.1f}%, "
        f"worst {error.worst * 100:.1f}% (signed, + = too long: {shown})"
    )
    if trace:
        print("      s  done    eta   left  error")
        for at, done, eta, left in error.trace:
            print(f"  {at:5.2f}  {done:4d}  {eta:5.1f}  {left:5.2f}  {(eta - left) / left * 100:+5.0f}%")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--scale", type=float, default=1.0, help="time scale of the default design")
    parser.add_argument("--seed-scale", type=float, default=0.02, help="time scale of the seed's design")
    parser.add_argument("--polls", type=Path, help="write the default design's polls (s, done, eta) here")
    parser.add_argument("--no-seed", action="store_true", help="run the default design only")
    parser.add_argument(
        "--eta-trace", action="store_true", help="print the ETA and the actual time left at every event"
    )
    args = parser.parse_args()
    defaults = Settings(_env_file=None)
    seed = Design(
        "seed",
        args.seed_scale,
        {
            "WIPSVC_WORKERS_PER_JOB": "1",
            "WIPSVC_PRODUCT_DELAY_SECONDS": str(SEED_DELAY * args.seed_scale),
            "WIPSVC_SHEETS_COALESCE": "false",
        },
        workers=1,
        delay=SEED_DELAY,
    )
    default = Design("default", args.scale, {}, workers=defaults.workers_per_job or defaults.max_batch)
    print(
        f"{args.products} products per design; machine: {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        wall = time.monotonic()
        designs = [default] if args.no_seed else [seed, default]
        await asyncio.gather(*(run_design(design, args.products, Path(tmp)) for design in designs))
        wall = time.monotonic() - wall
    if args.polls is not None:
        args.polls.write_text(
            json.dumps({"elapsed": default.elapsed, "polls": default.polls, "job": default.job})
        )
    bound = true_bound(args.products, APPS_SCRIPT_CONCURRENCY, LLM_PER_MINUTE)
    seed_model = args.products / ideal_makespan(args.products, 1, SEED_DELAY) * 60
    seed_rate = seed_model
    if not args.no_seed:
        seed_rate = report(seed, args.products)
        print(f"  (the seed's model, without our own code's time: {seed_model:.2f}/min)")
    default_rate = report(default, args.products, bound)
    eta = eta_errors(default, args.products)
    print_eta(eta, args.eta_trace)
    print("\n== ratios ==")
    print(
        f"  default / seed:  {default_rate / seed_rate:.1f}  "
        f"(against the seed's model rate: {default_rate / seed_model:.1f})"
    )
    bound_ratio = default_rate / default.job["_bound"]
    print(
        f"  default / true external bound: {bound_ratio:.3f}  "
        f"(bound {bound.makespan:.1f} s for the job, {args.products / bound.makespan * 60:.0f}/min: "
        f"{bound.binding})"
    )
    print("\n== goals ==")
    versus_seed = default_rate / (seed_model if args.no_seed else max(seed_rate, seed_model))
    goals = [
        (f"default / true external bound {bound_ratio:.3f} >= 0.9", bound_ratio >= 0.9),
        (
            f"default / seed {versus_seed:.1f} >= 100 (the seed's faster rate: model or measured)",
            versus_seed >= 100,
        ),
        (
            f"self-inflicted 429s {default.throttled + seed.throttled} == 0",
            default.throttled + seed.throttled == 0,
        ),
        (
            f"ETA worst error 10-90% done {eta.worst * 100:.1f}% <= 25%" if eta else "ETA: no events",
            eta is not None and eta.worst <= 0.25,
        ),
    ]
    for text, met in goals:
        print(f"  {'PASS' if met else 'FAIL'}  {text}")
    print(f"  wall time: {wall:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
