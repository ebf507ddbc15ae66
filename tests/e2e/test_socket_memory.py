"""A Socket.IO client that floods `subscribe` and then never reads cannot grow the server's memory
past a bound: `wipsvc serve` in its own process, a raw engine.io/Socket.IO client over WebSocket,
and the server's resident memory read from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.live import until
from tests.support.server_process import ServerProcess, free_port, server_env
from wipsvc.demo.shop import SampleShop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PRODUCTS = 100  # a job of 102 events
SUBSCRIBES = 4000  # each asks for the whole job again: 408,000 events if all were answered
QUEUE_BOUND = 2000  # packets waiting for one connection (WIPSVC_SOCKET_MAX_QUEUED_PACKETS, the default)
# The bound this test states: how much the server's peak resident memory may exceed what it held
# before the flood. Without the send-queue bound it grew by 170-560 MB and kept rising (74 MB in
# the first 15 s here with replays one at a time); with it, by 1-3 MB.
MAX_GROWTH_MB = 32
CLOSED_LOG = "closing a Socket.IO connection that is not reading"


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def reset_peak(pid: int) -> None:
    """Make VmHWM (peak resident memory) start again from the current VmRSS."""
    with contextlib.suppress(OSError):  # Linux >= 4.0; needs to be the process's owner
        Path(f"/proc/{pid}/clear_refs").write_text("5")


async def socketio_connect(url: str) -> ClientConnection:
    """A WebSocket speaking engine.io 4 / Socket.IO 5 by hand, connected to the default namespace.

    It queues at most one incoming message: when the test stops reading, so does the socket,
    and TCP pushes back on the server as a client that stopped reading would."""
    ws = await connect(
        url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
        max_queue=1,
        compression=None,
        open_timeout=10,
    )
    opened = await asyncio.wait_for(ws.recv(), 10)
    assert isinstance(opened, str) and opened.startswith("0{"), opened  # engine.io OPEN
    await ws.send("40")  # Socket.IO CONNECT to "/"
    connected = await asyncio.wait_for(ws.recv(), 10)
    assert isinstance(connected, str) and connected.startswith("40{"), connected
    return ws


async def test_a_client_that_never_reads_cannot_grow_server_memory(tmp_path: Path) -> None:
    env = server_env(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'wipsvc.db'}",
        scrape_allowed_hosts="127.0.0.1",
        claim_interval_seconds=0.2,
        log_level="info",
        # The subscribe rate limit alone would keep this flood small (tests/e2e/test_socket_bounds.py):
        # lifted, so that it is the send-queue bound that holds.
        socket_subscribes_per_minute=1_000_000,
    )
    server = ServerProcess(env, port=free_port(), cwd=tmp_path, log_path=tmp_path / "server.log")
    with SampleShop() as shop, server:
        server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as client:
            pages = shop.products()
            body = {
                "products": [
                    {"sku": f"MEM-{index:03d}", "url": pages[index % len(pages)][1]}
                    for index in range(PRODUCTS)
                ]
            }
            created = await client.post("/api/sinks/wip", json=body)
            assert created.status_code == 201, created.text
            started = await client.post("/api/sinks/wip/process", json={"wip_ids": created.json()["wip_ids"]})
            assert started.status_code == 202, started.text
            job_id = started.json()["job_id"]

            async def job_finished() -> bool:
                job = (await client.get(f"/api/sinks/wip/jobs/{job_id}")).json()["job"]
                return bool(job["status"] == "completed")

            async with asyncio.timeout(120):
                while not await job_finished():
                    await asyncio.sleep(0.2)

            ws = await socketio_connect(server.url)
            try:
                before_kb = memory_kb(server.pid, "VmRSS")
                reset_peak(server.pid)
                # Thousands of subscribes for the whole job, each with an ack id; then no more reading.
                subscribe = json.dumps(["subscribe", {"job_id": job_id, "after_seq": 0}])
                for ack_id in range(SUBSCRIBES):
                    await ws.send(f"42{ack_id}{subscribe}")

                try:
                    await until(lambda: CLOSED_LOG in server.log_tail(200), timeout=60)
                except TimeoutError:
                    raise AssertionError(f"the connection was not closed:\n{server.log_tail()}") from None
                # The server goes on serving others meanwhile.
                assert (await client.get("/healthz")).status_code == 200
                samples = []
                for _ in range(10):
                    samples.append(memory_kb(server.pid, "VmRSS"))
                    await asyncio.sleep(0.1)
                peak_kb = memory_kb(server.pid, "VmHWM")
                growth_mb = (max(peak_kb, *samples) - before_kb) / 1024
                print(
                    f"server RSS before {before_kb / 1024:.0f} MB, peak during the flood "
                    f"{peak_kb / 1024:.0f} MB, after {samples[-1] / 1024:.0f} MB: growth {growth_mb:.1f} MB "
                    f"(bound {MAX_GROWTH_MB} MB)"
                )
                assert growth_mb < MAX_GROWTH_MB

                # Reading again, the client gets what was already on its way, then the close: far
                # fewer than the 408,000 events it asked for.
                received = 0
                with contextlib.suppress(ConnectionClosed):
                    async with asyncio.timeout(60):
                        while True:
                            await ws.recv()
                            received += 1
                print(f"the client received {received} messages before the server closed the connection")
                assert received < 20 * QUEUE_BOUND
            finally:
                await ws.close()
            assert (await client.get("/healthz")).status_code == 200
