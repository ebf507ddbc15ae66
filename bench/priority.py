"""An urgent job started while a large normal job runs, on the protocol fakes of
``bench/throughput.py`` (Google's quotas and latencies, the real service in its own process).

    python bench/priority.py [--normal 100] [--urgent 5] [--after 5] [--scale 1.0] [--llm-per-minute N]

Three runs, each on fresh fakes and a fresh service:

1. alone: the ``--urgent`` products' job with nothing else running — its time alone;
2. urgent: a ``--normal``-product job starts; ``--after`` seconds later the small job starts with
   ``"priority": "urgent"`` (same collection, so it also runs beyond ``WIPSVC_JOBS_PER_COLLECTION=1``);
3. first come: the same, the small job at normal priority, with the cap at 2 so that it runs
   beside the large one too — what the small job would get without priority.

Each small job's time is from its start request to its end (created_at to completed_at), against
its time alone and against what was left of the large job when it started. Goal: the urgent job
within 1.5x its time alone. Times are unscaled (``--scale`` shortens every latency and the quota
window alike).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # the setup of throughput.py, whatever the working directory

from throughput import PRODUCT_LATENCY, Design, configure, create_products, run_design  # noqa: E402

GOAL = 1.5


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = (await client.get(f"/api/bench/wip/jobs/{job_id}")).json()["job"]
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)


async def start(client: httpx.AsyncClient, ids: list[int], priority: str | None) -> str:
    body: dict[str, Any] = {"wip_ids": ids} | ({"priority": priority} if priority else {})
    response = await client.post("/api/bench/wip/process", json=body)
    response.raise_for_status()
    return str(response.json()["job_id"])


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


class Scenario:
    """One run: a job of ``large`` products first, then one of ``small`` products ``after`` seconds
    later. Without a large job, a one-product job runs first (and ends), so that the small job
    alone does not pay for the service's first calls (tokens, spreadsheet metadata) when the
    small job beside a large one would not. The small job's products are the same in every run
    (the fakes' latencies are per product)."""

    def __init__(self, large: int, small: int, after: float, priority: str | None, *, products: int) -> None:
        self.large, self.small, self.after, self.priority = large, small, after, priority
        self.first_small = products
        self.small_job: dict[str, Any] = {}
        self.large_job: dict[str, Any] = {}

    async def __call__(
        self, design: Design, client: httpx.AsyncClient, sid: str, user: str, script: str, shop: str, _: int
    ) -> None:
        await configure(client, sid, user, script)
        large = None
        if self.large:
            large = await start(client, await create_products(client, shop, range(self.large)), None)
        else:
            warm_up = self.first_small + self.small
            await finished(
                client,
                await start(client, await create_products(client, shop, range(warm_up, warm_up + 1)), None),
            )
        small_ids = await create_products(
            client, shop, range(self.first_small, self.first_small + self.small)
        )
        await asyncio.sleep(self.after * design.scale if large else 0)
        small = await start(client, small_ids, self.priority)
        self.small_job = await finished(client, small)
        if large is not None:
            self.large_job = await finished(client, large)

    def small_seconds(self, scale: float) -> float:
        return seconds(self.small_job["created_at"], self.small_job["completed_at"]) / scale

    def large_left(self, scale: float) -> float:
        """What was left of the large job when the small one started."""
        return seconds(self.small_job["created_at"], self.large_job["completed_at"]) / scale


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--normal", type=int, default=100, help="products of the large normal job")
    parser.add_argument("--urgent", type=int, default=5, help="products of the small job")
    parser.add_argument("--after", type=float, default=5.0, help="seconds (unscaled) before the small job")
    parser.add_argument("--scale", type=float, default=1.0, help="time scale of latencies and quotas")
    parser.add_argument(
        "--llm-per-minute",
        type=int,
        help="WIPSVC_LLM_REQUESTS_PER_MINUTE (default: the service's, 500); e.g. 100 makes that quota bind",
    )
    args = parser.parse_args()
    print(
        f"{args.normal}-product normal job, {args.urgent}-product job {args.after:g} s later; "
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
        f"one product's path alone ~{PRODUCT_LATENCY:.1f} s"
    )
    total = args.normal + args.urgent + 1  # with the warm-up product
    runs = {
        "alone": (Scenario(0, args.urgent, 0, "urgent", products=args.normal), {}),
        "urgent": (Scenario(args.normal, args.urgent, args.after, "urgent", products=args.normal), {}),
        "first come": (
            Scenario(args.normal, args.urgent, args.after, None, products=args.normal),
            {"WIPSVC_JOBS_PER_COLLECTION": "2"},
        ),
    }
    common = {"WIPSVC_LOG_LEVEL": "warning"}
    if args.llm_per_minute:
        common["WIPSVC_LLM_REQUESTS_PER_MINUTE"] = str(args.llm_per_minute)
        print(f"LLM requests per minute: {args.llm_per_minute} (2 per product)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (scenario, env) in runs.items():
            design = Design(name.replace(" ", "-"), args.scale, common | env, workers=0)
            await run_design(design, total, Path(tmp), runner=scenario)
            for job in (scenario.small_job, scenario.large_job):
                if job and (job["status"] != "completed" or job["failed_products"]):
                    failed = job["failed_products"]
                    print(f"  warning: {name}: job {job['job_id']} {job['status']}, {failed} failed")

    alone = runs["alone"][0].small_seconds(args.scale)
    print(f"\n  small job alone:                 {alone:6.1f} s")
    for name in ("urgent", "first come"):
        scenario = runs[name][0]
        took, left = scenario.small_seconds(args.scale), scenario.large_left(args.scale)
        print(
            f"  small job, {name + ':':<12}          {took:6.1f} s = {took / alone:.2f}x alone, "
            f"{took / left:.2f}x the large job's remaining {left:.1f} s"
        )
    ratio = runs["urgent"][0].small_seconds(args.scale) / alone
    print(f"\n  urgent / alone: {ratio:.2f} (goal <= {GOAL}): {'met' if ratio <= GOAL else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
