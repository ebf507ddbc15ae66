"""Load: 500 Socket.IO clients and a steady stream of job-status requests during a 100-product job.

    .venv/bin/python bench/load.py [--clients 500] [--client-procs 4] [--rate 50] [--products 100]

The service is `wipsvc serve` in its own process (SQLite, one API key). In this process run the
fakes it works against: Google's token endpoint, Google Sheets and a shop whose pages take
``--page-latency`` seconds, so that the job lasts about a minute. The load comes from separate
processes: ``--client-procs`` processes hold ``--clients`` python-socketio AsyncClients between
them (websocket transport, authenticated with the key), and one process sends
``GET /api/{collection}/wip/jobs/{id}`` at ``--rate`` requests a second on a fixed schedule
(open loop: a slow answer does not delay the next request, so queueing shows in the figures).

Printed: event delivery latency (p50/p99/max, from the event's ``timestamp`` — stamped when the
product's completion is committed — to the moment a client has it), whether every client got
every event, REST latency (p50/p99/max) and errors, and the server's peak memory (VmHWM) and
CPU time. Everything runs on 127.0.0.1 and stops by itself within ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import httpx
import socketio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/load.py` from the repo root: the helpers live in tests/

from tests.fakes.google_oauth import FakeGoogleOAuth  # noqa: E402
from tests.fakes.sheets import FakeSheets  # noqa: E402
from tests.support.paced_shop import PacedShop  # noqa: E402
from tests.support.server_process import ServerProcess, free_port, server_env  # noqa: E402

from wipsvc.auth import create_key  # noqa: E402
from wipsvc.collection import DEFAULT_COLUMNS, column_index  # noqa: E402
from wipsvc.store import Store  # noqa: E402

COLLECTION = "load"
WORKSHEET = "Sheet1"
SA_EMAIL = "wipsvc-load@fake-project.iam.gserviceaccount.com"
EVENT = "wip_job_progress"
TARGET_EVENT_P99_MS = 100.0
TARGET_REST_P99_MS = 50.0


# -- figures --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values_ms: list[float]) -> str:
    if not values_ms:
        return "no samples"
    return (
        f"p50 {percentile(values_ms, 50):7.1f} ms   p99 {percentile(values_ms, 99):7.1f} ms   "
        f"max {max(values_ms):7.1f} ms   mean {statistics.fmean(values_ms):6.1f} ms"
    )


def proc_status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def _parse_timestamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# -- load processes ---------------------------------------------------------------------------------


def socketio_clients(url: str, key: str, count: int, ready: Connection, stop: EventType) -> None:
    """A process holding ``count`` Socket.IO clients; sends back its latencies when ``stop`` is set."""
    asyncio.run(_socketio_clients(url, key, count, ready, stop))


async def _socketio_clients(url: str, key: str, count: int, pipe: Connection, stop: EventType) -> None:
    latencies: list[float] = []  # ms, from the event's timestamp to its arrival here
    by_seq: dict[int, list[float]] = {}  # the same, per event
    received: list[dict[int, int]] = [{} for _ in range(count)]  # per client: seq -> times received
    errors: list[str] = []
    clients: list[socketio.AsyncClient] = []

    def handler(index: int) -> Any:
        def on_event(data: dict[str, Any]) -> None:
            latency = (time.time() - _parse_timestamp(data["timestamp"])) * 1000
            latencies.append(latency)
            by_seq.setdefault(data["seq"], []).append(latency)
            seqs = received[index]
            seqs[data["seq"]] = seqs.get(data["seq"], 0) + 1

        return on_event

    async def connect(index: int) -> None:
        client = socketio.AsyncClient(reconnection=False)
        client.on(EVENT, handler(index))
        try:
            await client.connect(url, transports=["websocket"], auth={"api_key": key}, wait_timeout=30)
            clients.append(client)
        except Exception as error:
            errors.append(f"connect: {type(error).__name__}: {error}")

    # In batches, as a crowd of browsers would arrive, not all in one instant.
    for start in range(0, count, 25):
        await asyncio.gather(*(connect(i) for i in range(start, min(count, start + 25))))
    pipe.send({"connected": len(clients), "errors": list(errors)})
    while not stop.is_set():
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # the last events in flight
    disconnected = sum(1 for client in clients if not client.connected)
    await asyncio.gather(*(client.disconnect() for client in clients), return_exceptions=True)
    pipe.send(
        {
            "latencies": latencies,
            "by_seq": by_seq,
            "received": received,
            "errors": errors,
            "dropped": disconnected,
        }
    )


def rest_load(url: str, key: str, path: str, rate: float, ready: Connection, stop: EventType) -> None:
    """A process sending GET ``path`` at ``rate`` a second until ``stop`` is set."""
    asyncio.run(_rest_load(url, key, path, rate, ready, stop))


async def _rest_load(url: str, key: str, path: str, rate: float, pipe: Connection, stop: EventType) -> None:
    latencies: list[float] = []
    sent_at: list[float] = []  # seconds since the first request, per latency
    errors: dict[str, int] = {}
    tasks: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10, limits=limits, trust_env=False
    ) as client:

        async def one() -> None:
            started = time.perf_counter()
            try:
                response = await client.get(path)
                await response.aread()
                if response.status_code != 200:
                    errors[f"HTTP {response.status_code}"] = errors.get(f"HTTP {response.status_code}", 0) + 1
                    return
            except httpx.HTTPError as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                return
            latencies.append((time.perf_counter() - started) * 1000)
            sent_at.append(started - began)

        began = time.perf_counter()
        await one()  # a warm connection before the clock starts
        latencies.clear()
        sent_at.clear()
        pipe.send({"ready": True})
        began, sent = time.perf_counter(), 0
        while not stop.is_set():
            due = began + sent / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.gather(*tasks)
    pipe.send({"latencies": latencies, "sent_at": sent_at, "errors": errors, "sent": sent})


# -- the run --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def fakes(page_latency: tuple[float, float], products: int, workdir: Path) -> Iterator[dict[str, Any]]:
    with (
        FakeGoogleOAuth() as oauth,
        FakeSheets(oauth, read_quota=1_000_000, write_quota=1_000_000, latency=0.02) as sheets,
        PacedShop(latency=page_latency, seed=1) as shop,
    ):
        credentials = oauth.write_service_account(workdir / "service-account.json", client_email=SA_EMAIL)
        spreadsheet_id = sheets.add_spreadsheet(worksheets=[WORKSHEET], shared_with=[SA_EMAIL])
        header = [name for name, _ in sorted(DEFAULT_COLUMNS.items(), key=lambda item: column_index(item[1]))]
        sheets.set_rows(spreadsheet_id, WORKSHEET, [header])
        yield {
            "sheets_url": sheets.url,
            "credentials": credentials,
            "spreadsheet_id": spreadsheet_id,
            "products": shop.products("LD", products),
        }


async def _make_key(database_url: str) -> str:
    store = await Store.open(database_url)
    try:
        return (await create_key(store.keys, None, label="bench/load.py")).key
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.max_seconds
    context = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="wipsvc-load-") as tmp,
        fakes(args.page_latency, args.products, Path(tmp)) as fake,
    ):
        workdir = Path(tmp)
        database_url = f"sqlite+aiosqlite:///{workdir / 'wipsvc.db'}"
        key = asyncio.run(_make_key(database_url))
        env = server_env(
            database_url=database_url,
            scrape_allowed_hosts="127.0.0.1",
            sheets_api_url=fake["sheets_url"],
            google_credentials_file=fake["credentials"],
            workers_per_job=args.workers,
            sheets_write_per_minute=1_000_000,
            sheets_read_per_minute=1_000_000,
            log_level="warning",
        )
        server = ServerProcess(env, port=free_port(), cwd=workdir, log_path=workdir / "server.log")
        server.start()
        procs: list[BaseProcess] = []
        stop = context.Event()
        try:
            server.wait_ready()
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=30, trust_env=False) as http:
                config = {
                    "sheet": {
                        "backend": "google",
                        "spreadsheet_id": fake["spreadsheet_id"],
                        "worksheet": WORKSHEET,
                    },
                    "llm": {"enabled": False},
                }
                http.put(f"/api/collections/{COLLECTION}", json=config).raise_for_status()
                products = [{"sku": sku, "url": url} for sku, url in fake["products"]]
                created = http.post(f"/api/{COLLECTION}/wip", json={"products": products})
                created.raise_for_status()
                ids = created.json()["wip_ids"]

                # Clients first, so that they see the whole job.
                per_proc, extra = divmod(args.clients, args.client_procs)
                shares = [per_proc + (i < extra) for i in range(args.client_procs)]
                sio_pipes: list[Connection] = []
                connect_started = time.perf_counter()
                for share in (share for share in shares if share > 0):
                    mine, theirs = context.Pipe()
                    proc = context.Process(
                        target=socketio_clients, args=(server.url, key, share, theirs, stop)
                    )
                    proc.start()
                    procs.append(proc)
                    sio_pipes.append(mine)
                connected, connect_errors = 0, list[str]()
                for pipe in sio_pipes:
                    if not pipe.poll(max(1.0, deadline - time.monotonic())):
                        raise TimeoutError("Socket.IO clients did not connect in time")
                    hello = pipe.recv()
                    connected += hello["connected"]
                    connect_errors += hello["errors"]
                connect_seconds = time.perf_counter() - connect_started

                profiler = _start_profiler(args.profile, server.pid) if args.profile else None
                started = http.post(f"/api/{COLLECTION}/wip/process", json={"wip_ids": ids})
                started.raise_for_status()
                job_id = started.json()["job_id"]
                job_started = time.monotonic()
                status_path = f"/api/{COLLECTION}/wip/jobs/{job_id}"
                rest_pipe: Connection | None = None
                if args.rate > 0:
                    rest_pipe, theirs = context.Pipe()
                    proc = context.Process(
                        target=rest_load, args=(server.url, key, status_path, args.rate, theirs, stop)
                    )
                    proc.start()
                    procs.append(proc)
                    rest_pipe.recv()

                job: dict[str, Any] = {}
                while time.monotonic() < deadline - 5:
                    job = http.get(status_path).json()["job"]
                    if job["status"] in ("completed", "failed", "cancelled"):
                        break
                    time.sleep(0.5)
                job_seconds = time.monotonic() - job_started
                stop.set()
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    profiler.wait(30)
                sio_reports = [pipe.recv() if pipe.poll(30) else {} for pipe in sio_pipes]
                rest_report = rest_pipe.recv() if rest_pipe is not None and rest_pipe.poll(30) else {}
                status = proc_status(server.pid)
                server_cpu = cpu_seconds(server.pid)
        finally:
            log_tail = server.log_tail(30)
            stop.set()
            for child in procs:
                child.join(15)
                if child.is_alive():
                    child.kill()
                    child.join()
            server.stop()

    measured = Measured(
        job=job,
        job_seconds=job_seconds,
        connected=connected,
        connect_errors=connect_errors,
        connect_seconds=connect_seconds,
        sio_reports=sio_reports,
        rest_report=rest_report,
        server_status=status,
        server_cpu=server_cpu,
        log_tail=log_tail,
    )
    return report(args, measured)


@dataclass
class Measured:
    job: dict[str, Any]
    job_seconds: float
    connected: int
    connect_errors: list[str]
    connect_seconds: float
    sio_reports: list[dict[str, Any]]
    rest_report: dict[str, Any]
    server_status: dict[str, str]
    server_cpu: float
    log_tail: str


def row(label: str, text: str) -> None:
    print(f"  {label:<23}{text}")


def report(args: argparse.Namespace, m: Measured) -> int:
    """Print the figures; 0 if the run was sound (job done, every client got every event, no errors)."""
    job = m.job
    expected = int(job.get("processed_products", 0)) + 2 if job.get("status") == "completed" else 0
    latencies = [value for r in m.sio_reports for value in r.get("latencies", [])]
    per_client: list[dict[int, int]] = [seqs for r in m.sio_reports for seqs in r.get("received", [])]
    complete = sum(1 for seqs in per_client if expected and sorted(seqs) == list(range(1, expected + 1)))
    duplicates = sum(count - 1 for seqs in per_client for count in seqs.values())
    dropped = sum(int(r.get("dropped", 0)) for r in m.sio_reports)
    # Per event: when the first and the last of all clients had it (the fan-out spread between).
    per_event: dict[int, list[float]] = {}
    for r in m.sio_reports:
        for seq, values in r.get("by_seq", {}).items():
            per_event.setdefault(int(seq), []).extend(values)
    first = [min(values) for values in per_event.values()]
    last = [max(values) for values in per_event.values()]
    rest: list[float] = m.rest_report.get("latencies", [])
    sent_at: list[float] = m.rest_report.get("sent_at", [])
    rest_steady = [ms for ms, at in zip(rest, sent_at, strict=True) if at >= args.warmup]
    rest_errors: dict[str, int] = m.rest_report.get("errors", {})

    low, high = args.page_latency
    print(
        f"wipsvc load: {args.products}-product job, {args.clients} Socket.IO clients in "
        f"{args.client_procs} processes, REST {args.rate:g}/s, {args.workers} workers, "
        f"pages {low:g}-{high:g} s"
    )
    failed = f", {len(m.connect_errors)} failed: {m.connect_errors[:3]}" if m.connect_errors else ""
    row("clients connected", f"{m.connected}/{args.clients} in {m.connect_seconds:.1f} s{failed}")
    processed = f"{job.get('processed_products')}/{job.get('total_products')} processed"
    row("job", f"{job.get('status')} in {m.job_seconds:.1f} s, {processed}")
    row(
        "events delivered",
        f"{len(latencies)} to {len(per_client)} clients; {complete} clients got every event "
        f"1..{expected}, {duplicates} duplicates, {dropped} clients dropped",
    )
    row("event latency", summary(latencies))
    row("  first client/event", summary(first))
    row("  last client/event", summary(last))
    slowest = sorted(per_event.items(), key=lambda item: -max(item[1]))[:3]
    row("  slowest events", ", ".join(f"#{seq} {min(v):.0f}-{max(v):.0f} ms" for seq, v in slowest))
    row(
        "REST job status",
        f"{len(rest)} ok of {m.rest_report.get('sent', 0)} sent, errors {rest_errors or 'none'}",
    )
    row("REST latency", summary(rest))
    row(f"  after {args.warmup:g} s warm-up", summary(rest_steady))
    status = m.server_status
    row("server peak memory", f"VmHWM {status.get('VmHWM', '?')} (VmRSS at end {status.get('VmRSS', '?')})")
    share = 100 * m.server_cpu / max(m.job_seconds, 1e-9)
    row(
        "server CPU time",
        f"{m.server_cpu:.1f} s over {m.job_seconds:.1f} s of job ({share:.0f}% of one core)",
    )
    event_p99, rest_p99 = percentile(latencies, 99), percentile(rest, 99)
    verdict = {True: "met", False: "MISSED"}
    row(
        "targets",
        f"event p99 < {TARGET_EVENT_P99_MS:g} ms: {verdict[event_p99 < TARGET_EVENT_P99_MS]}; "
        f"REST p99 < {TARGET_REST_P99_MS:g} ms: {verdict[rest_p99 < TARGET_REST_P99_MS]}",
    )
    sound = (
        job.get("status") == "completed"
        and m.connected == args.clients
        and complete == args.clients
        and not rest_errors
    )
    if not sound:
        print(f"  server log tail:\n{m.log_tail}")
    return 0 if sound else 1


def _start_profiler(path: Path, pid: int) -> subprocess.Popen[bytes]:
    """py-spy sampling the server (all threads, idle included) into collapsed stacks at ``path``."""
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [
        str(py_spy),
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--idle",
        "--threads",
        "--nonblocking",
    ]
    return subprocess.Popen([*command, "--rate", "100", "--output", str(path)], stdout=subprocess.DEVNULL)


def _latency_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500, help="Socket.IO clients (default 500)")
    parser.add_argument("--client-procs", type=int, default=4, help="processes holding them (default 4)")
    parser.add_argument("--rate", type=float, default=50.0, help="job-status requests a second (default 50)")
    parser.add_argument("--products", type=int, default=100, help="products in the job (default 100)")
    parser.add_argument("--workers", type=int, default=4, help="WIPSVC_WORKERS_PER_JOB (default 4)")
    parser.add_argument(
        "--page-latency", type=_latency_range, default=(1.0, 2.0), help="seconds per page, LOW,HIGH (1,2)"
    )
    parser.add_argument("--max-seconds", type=float, default=110.0, help="hard stop for the whole run")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of REST load also shown apart (default 5)"
    )
    parser.add_argument(
        "--profile", type=Path, help="record the server with py-spy (pip install py-spy) into this file"
    )
    raise SystemExit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
