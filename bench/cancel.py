"""Signals between instances: how soon a cancel sent to one instance stops a job another runs, and
how soon a job queued at a busy instance starts on an idle one; with Redis (pub/sub) and without
(PostgreSQL `LISTEN`/`NOTIFY`).

    python bench/cancel.py [--rounds 10]

Two `wipsvc serve` processes on one PostgreSQL (a fresh database per mode). One instance holds a
long job, so that it is at its cap (`WIPSVC_MAX_RUNNING_JOBS=1`): that is the *busy* one, the
other the *idle* one. Each round submits a job through the busy instance (it starts on the idle
one), waits for its first product, and cancels it through the busy instance; then once more
with the cancel sent to the idle instance itself (a local cancel, for reference). A job's worker
waits a minute between products (`WIPSVC_PRODUCT_DELAY_SECONDS=60`), so a cancel stops it at
once: the time measured is the signal's path, from the moment the request is sent to the moment
a Socket.IO client of the idle instance receives the job's `cancelled` (or `started`) event.

Without the signals the owner would see the cancel at its next lease renewal (every third of
`WIPSVC_LEASE_SECONDS`: 5 s by default), and a job queued at a busy instance would start at the
idle one's next claim round (`WIPSVC_CLAIM_INTERVAL_SECONDS`: 2 s by default); both are set to
30 s here, so that only the signals can explain what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import socketio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/cancel.py` from the repo root: the fakes live in tests/

from tests.support.cluster import REDIS_URL, Cluster  # noqa: E402
from tests.support.paced_shop import PacedShop  # noqa: E402
from tests.support.server_process import server_env  # noqa: E402

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
FALLBACK = 30.0  # the renewal interval and the claim interval here


class Events:
    """When a Socket.IO client received each job's events, by (job id, status)."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient()
        self._waiting: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.sio.on("wip_job_progress", self._received)

    def _future(self, key: tuple[str, str]) -> asyncio.Future[float]:
        return self._waiting.setdefault(key, asyncio.get_running_loop().create_future())

    async def _received(self, payload: dict[str, Any]) -> None:
        future = self._future((str(payload["job_id"]), str(payload["status"])))
        if not future.done():
            future.set_result(time.monotonic())

    async def at(self, job_id: str, status: str) -> float:
        return await asyncio.wait_for(self._future((job_id, status)), FALLBACK / 2)


async def _submit(client: httpx.AsyncClient, collection: str, shop: PacedShop, prefix: str) -> str:
    products = [{"sku": sku, "url": url} for sku, url in shop.products(prefix, 3)]
    created = await client.post(f"/api/{collection}/wip", json={"products": products})
    created.raise_for_status()
    started = await client.post(f"/api/{collection}/wip/process", json={"wip_ids": created.json()["wip_ids"]})
    started.raise_for_status()
    return str(started.json()["job_id"])


async def _owner(dsn: str, job_id: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(int(FALLBACK / 2 / 0.01)):
            owner = await conn.fetchval("SELECT owner FROM wip_jobs WHERE job_id = $1", job_id)
            if owner:
                return str(owner)
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    raise RuntimeError(f"job {job_id} never started")


async def run_mode(mode: str, rounds: int, shop: PacedShop, workdir: Path) -> dict[str, list[float]]:
    database = f"wipsvc_cancel_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    dsn = f"{POSTGRES_ADMIN.rsplit('/', 1)[0]}/{database}"
    extra: dict[str, object] = {"redis_url": REDIS_URL} if mode == "redis" else {}
    env = server_env(
        database_url=dsn.replace("postgresql://", "postgresql+asyncpg://"),
        scrape_allowed_hosts="127.0.0.1",
        workers_per_job=1,
        max_running_jobs=1,
        product_delay_seconds=60,
        lease_seconds=FALLBACK * 3,
        claim_interval_seconds=FALLBACK,
        log_level="warning",
        **extra,
    )
    try:
        with Cluster(["a", "b"], env, workdir / mode) as cluster:
            return await _measure(cluster, dsn, rounds, shop)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def _measure(cluster: Cluster, dsn: str, rounds: int, shop: PacedShop) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"start": [], "across": [], "local": []}
    config = {"sheet": {"backend": "local"}, "cleaning": {"backend": "python"}, "llm": {"enabled": False}}
    async with httpx.AsyncClient(base_url=cluster["a"].url, timeout=10, trust_env=False) as client:
        for collection in ("hold", "bench"):
            (await client.put(f"/api/collections/{collection}", json=config)).raise_for_status()
        hold = await _submit(client, "hold", shop, f"H{uuid.uuid4().hex[:6]}")
    busy = cluster[await _owner(dsn, hold)]
    idle = cluster.other_than(await _owner(dsn, hold))
    events = Events()
    await events.sio.connect(idle.url, transports=["websocket"])
    try:
        async with (
            httpx.AsyncClient(base_url=busy.url, timeout=10, trust_env=False) as via_busy,
            httpx.AsyncClient(base_url=idle.url, timeout=10, trust_env=False) as via_idle,
        ):
            for number in range(rounds * 2):
                across = number % 2 == 0
                sent = time.monotonic()
                job_id = await _submit(via_busy, "bench", shop, f"B{number}-{uuid.uuid4().hex[:6]}")
                figures["start"].append(await events.at(job_id, "started") - sent)
                await events.at(job_id, "processing")
                canceller = via_busy if across else via_idle
                sent = time.monotonic()
                response = await canceller.post(f"/api/bench/wip/jobs/{job_id}/cancel")
                response.raise_for_status()
                figures["across" if across else "local"].append(await events.at(job_id, "cancelled") - sent)
    finally:
        await events.sio.disconnect()
    return figures


def _line(name: str, seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return f"  {name:<44} median {statistics.median(ms):6.1f} ms  p90 {p90:6.1f} ms  max {ms[-1]:6.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10, help="cancels of each kind per mode")
    args = parser.parse_args()
    print(f"{args.rounds} rounds per mode; {os.cpu_count()} CPUs")
    results = {}
    with PacedShop() as shop, tempfile.TemporaryDirectory() as tmp:
        for mode in ("redis", "postgres"):
            (Path(tmp) / mode).mkdir()
            results[mode] = await run_mode(mode, args.rounds, shop, Path(tmp))
    for mode, figures in results.items():
        channel = "Redis pub/sub" if mode == "redis" else "PostgreSQL LISTEN/NOTIFY"
        print(f"\n== signals over {channel} ==")
        print(_line("cancel sent to the other instance", figures["across"]))
        print(_line("cancel sent to the owner itself (reference)", figures["local"]))
        print(_line("job queued at the busy instance, started", figures["start"]))
        ratio = statistics.median(figures["across"]) / statistics.median(figures["local"])
        print(f"  across / local (medians): {ratio:.2f}")
    print(
        f"\nwithout the signals: up to {FALLBACK:g} s here (renewal, claim interval); 5 s and 2 s by default"
    )


if __name__ == "__main__":
    asyncio.run(main())
