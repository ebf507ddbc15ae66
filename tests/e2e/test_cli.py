"""The client commands, run as the real `wipsvc` executable against a live server."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import socketio

from tests.support.cli import Cli, job_id_in, wipsvc, write_csv
from tests.support.live import LiveServer, make_settings, no_sleep, wait_for_job
from tests.support.slow import SlowFetcher
from wipsvc.adapters.base import PageFetcher
from wipsvc.app import create_api
from wipsvc.auth import create_key
from wipsvc.config import Settings
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop
from wipsvc.embedded import EmbeddedServer
from wipsvc.pipeline.retry import RetryPolicy


def good_products(shop: SampleShop) -> list[tuple[str, str]]:
    return [(sku, url) for sku, url in shop.products() if sku not in BROKEN_SKUS]


async def test_submit_watch_exits_0_when_every_product_succeeds(
    sqlite_url: str, shop: SampleShop, fetcher: PageFetcher, tmp_path: Path
) -> None:
    products = good_products(shop)
    path = write_csv(tmp_path / "products.csv", products, header=True)
    async with LiveServer(make_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        run = await wipsvc("submit", "sinks", str(path), "--watch", url=server.url)

        assert run.code == 0, run.out + run.err
        job = (await client.get(f"/api/sinks/wip/jobs/{job_id_in(run.out)}")).json()["job"]
        assert job["status"] == "completed" and job["successful_products"] == len(products)
        assert f"Created {len(products)} products in 'sinks'" in run.out
        assert "✓ completed" in run.out and f"{len(products)} succeeded, 0 failed" in run.out
        for sku, _ in products:
            assert re.search(rf"│ {sku} +│ +\d+ │ succeeded │", run.out), sku


async def test_submit_watch_exits_1_when_a_product_fails(
    sqlite_url: str, shop: SampleShop, fetcher: PageFetcher, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "products.csv", shop.products(), header=False)
    async with LiveServer(make_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        run = await wipsvc("submit", "sinks", str(path), "--watch", url=server.url)

        assert run.code == 1, run.out + run.err
        job = (await client.get(f"/api/sinks/wip/jobs/{job_id_in(run.out)}")).json()["job"]
        assert job["status"] == "completed" and job["failed_products"] == len(BROKEN_SKUS)
        (broken,) = BROKEN_SKUS
        assert re.search(rf"│ {broken} +│ +\d+ │ failed +│ .* │ extract: no product data", run.out)
        assert "completed with failures" in run.out


async def test_submit_rejects_a_bad_csv_and_an_unreachable_server(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,url\nABC-1\n")
    run = await wipsvc("submit", "sinks", str(bad), url="http://127.0.0.1:9")
    assert run.code == 2 and "line 2: expected a SKU and a URL" in run.err

    good = write_csv(tmp_path / "good.csv", [("ABC-1", "http://127.0.0.1:9/p")], header=False)
    run = await wipsvc("submit", "sinks", str(good), url="http://127.0.0.1:9")
    assert run.code == 3 and "cannot reach wipsvc at http://127.0.0.1:9" in run.err


def _app(settings: Settings, fetcher: PageFetcher) -> Any:
    """What LiveServer serves, built here so that a second server can take the first one's port."""
    api, realtime = create_api(settings, fetcher=fetcher, retry=RetryPolicy(sleep=no_sleep))
    assert realtime is not None
    return socketio.ASGIApp(realtime.server, other_asgi_app=api)


async def test_watch_follows_a_job_across_a_server_restart(
    sqlite_url: str, shop: SampleShop, fetcher: PageFetcher
) -> None:
    products = good_products(shop)
    settings = make_settings(sqlite_url, workers_per_job=1)
    slow = SlowFetcher(fetcher, delay=0.4)
    first = EmbeddedServer(_app(settings, slow))
    await first.start()
    async with httpx.AsyncClient(base_url=first.url, timeout=10, trust_env=False) as client:
        body = {"products": [{"sku": sku, "url": url} for sku, url in products]}
        ids = (await client.post("/api/sinks/wip", json=body)).json()["wip_ids"]
        job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()["job_id"]
    cli = await Cli.start("watch", job_id, "--collection", "sinks", "--poll-interval", "1", url=first.url)
    await cli.read_until("[2/8]")  # following live, mid-job

    await first.stop()  # the watcher loses its connection and keeps trying
    await cli.read_until("connection lost; reconnecting")
    await asyncio.sleep(1.5)
    assert cli.process.returncode is None
    second = EmbeddedServer(_app(settings, slow), port=first.port)
    await second.start()
    try:
        run = await cli.finish()
        async with httpx.AsyncClient(base_url=second.url, timeout=10, trust_env=False) as client:
            job = await wait_for_job(client, "sinks", job_id)
    finally:
        await second.stop()

    assert run.code == 0, run.out + run.err
    assert job["status"] == "completed" and job["successful_products"] == len(products)
    assert "connection lost; reconnecting" in run.out and "reconnected" in run.out
    # Events replayed after the restart and seen live are shown once each.
    progress = re.findall(r"^\[(\d+)/(\d+)\] ✓ (\S+) → row \d+$", run.out, re.MULTILINE)
    assert sorted(sku for _, _, sku in progress) == sorted(sku for sku, _ in products)
    assert sorted(int(done) for done, _, _ in progress) == list(range(1, len(products) + 1))
    assert "✓ completed in" in run.out and f"{len(products)} succeeded, 0 failed" in run.out


async def test_jobs_products_and_export_print_what_the_api_holds(
    sqlite_url: str, shop: SampleShop, fetcher: PageFetcher, tmp_path: Path
) -> None:
    slow = SlowFetcher(fetcher, delay=0)
    path = write_csv(tmp_path / "products.csv", shop.products(), header=True)
    async with LiveServer(make_settings(sqlite_url), fetcher=slow) as server, server.client() as client:
        run = await wipsvc("submit", "sinks", str(path), url=server.url)
        assert run.code == 0, run.err
        job_id = job_id_in(run.out)
        assert f"wipsvc watch {job_id} --collection sinks" in run.out
        done = await wait_for_job(client, "sinks", job_id)

        run = await wipsvc("jobs", "list", "sinks", url=server.url)
        assert run.code == 0 and re.search(rf"^ *{job_id} +completed +9/9 +1 +\d+s ago", run.out, re.M), (
            run.out
        )
        run = await wipsvc("jobs", "list", "sinks", "--json", url=server.url)
        assert [job["job_id"] for job in json.loads(run.out)["jobs"]] == [job_id]

        run = await wipsvc("jobs", "show", "sinks", job_id, url=server.url)
        assert run.code == 0 and f"job {job_id}: completed" in run.out
        assert "9/9 processed, 8 succeeded, 1 failed" in run.out
        for result in done["results"]:
            assert re.search(rf"│ {result['sku']} +│ +{result['row_num']} │ {result['status']} ", run.out)
        run = await wipsvc("jobs", "show", "sinks", job_id, "--json", url=server.url)
        assert json.loads(run.out) == {"success": True, "job": done}

        run = await wipsvc("products", "list", "sinks", url=server.url)
        listing = (await client.get("/api/sinks/wip")).json()["products"]
        for product in listing:
            row = (
                rf"│ {product['wip_id']} +│ {product['sku']} │ {product['status']} +│ {product['row_num']} +│"
            )
            assert re.search(row, run.out), product["sku"]
        assert "showing 1-9 of 9" in run.out
        run = await wipsvc("products", "list", "sinks", "--status", "error", "--json", url=server.url)
        assert [p["sku"] for p in json.loads(run.out)["products"]] == sorted(BROKEN_SKUS)

        run = await wipsvc("export", "sinks", "--format", "csv", url=server.url)
        assert run.code == 0 and run.out == (await client.get("/api/collections/sinks/sheet.csv")).text
        assert next(iter(csv.reader(io.StringIO(run.out))))[:3] == ["sku", "url", "title"]
        out = tmp_path / "products.json"
        run = await wipsvc("export", "sinks", "--format", "json", "--output", str(out), url=server.url)
        assert run.code == 0 and "wrote 9 products" in run.err
        assert json.loads(out.read_text()) == listing

        # Retrying re-runs only the failed product, which fails again: exit 1.
        run = await wipsvc("jobs", "retry", "sinks", job_id, "--watch", url=server.url)
        assert run.code == 1 and "Retrying 1 failed products" in run.out
        retry = (await client.get(f"/api/sinks/wip/jobs/{job_id_in(run.out)}")).json()["job"]
        assert retry["retry_of"] == job_id and [r["sku"] for r in retry["results"]] == sorted(BROKEN_SKUS)

        # A slow job, cancelled from the CLI; watching it (collection looked up) exits 1.
        slow.delay = 1.0
        body = {"products": [{"sku": f"T-{n}", "url": url} for n, (_, url) in enumerate(shop.products())]}
        ids = (await client.post("/api/taps/wip", json=body)).json()["wip_ids"]
        other = (await client.post("/api/taps/wip/process", json={"wip_ids": ids})).json()["job_id"]
        run = await wipsvc("jobs", "cancel", "taps", other, url=server.url)
        assert run.code == 0 and ("Cancellation requested" in run.out or "Job cancelled" in run.out)
        run = await wipsvc("watch", other, url=server.url)
        assert run.code == 1 and "✗ cancelled" in run.out
        assert (await wait_for_job(client, "taps", other))["status"] == "cancelled"

        missing = str(uuid.uuid4())
        run = await wipsvc("jobs", "show", "sinks", missing, url=server.url)
        assert (
            run.code == 3
            and f"job {missing} not found in collection 'sinks' [not_found, HTTP 404]" in run.err
        )
        run = await wipsvc("watch", missing, url=server.url)
        assert run.code == 3 and "not found in any collection" in run.err


async def test_watch_gives_up_when_the_server_stays_away(
    sqlite_url: str, shop: SampleShop, fetcher: PageFetcher
) -> None:
    slow = SlowFetcher(fetcher, delay=1.0)
    server = await LiveServer(make_settings(sqlite_url), fetcher=slow).start()
    try:
        async with server.client() as client:
            body = {"products": [{"sku": sku, "url": url} for sku, url in good_products(shop)]}
            ids = (await client.post("/api/sinks/wip", json=body)).json()["wip_ids"]
            job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids})).json()["job_id"]
        args = ("watch", job_id, "-c", "sinks", "--reconnect-timeout", "2", "--poll-interval", "0.5")
        cli = await Cli.start(*args, url=server.url)
        await cli.read_until("[1/8]")  # following live
    finally:
        await server.stop()
    run = await cli.finish()
    assert run.code == 3, run.out + run.err
    assert "connection lost; reconnecting" in run.out
    assert f"lost contact with wipsvc at {server.url} for more than 2s" in run.err


async def test_watch_falls_back_to_polling_without_socketio(
    sqlite_url: str, shop: SampleShop, fetcher: PageFetcher, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "products.csv", good_products(shop), header=True)
    settings = make_settings(sqlite_url, socketio_enabled=False)
    async with LiveServer(settings, fetcher=SlowFetcher(fetcher, delay=0.2)) as server:
        run = await wipsvc("submit", "sinks", str(path), "--watch", "--poll-interval", "0.3", url=server.url)
    assert run.code == 0, run.out + run.err
    assert "✓ completed" in run.out and "8 succeeded, 0 failed" in run.out


async def test_commands_send_the_api_key(
    sqlite_url: str, shop: SampleShop, fetcher: PageFetcher, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "products.csv", good_products(shop), header=True)
    async with LiveServer(make_settings(sqlite_url), fetcher=SlowFetcher(fetcher, delay=0.2)) as server:
        key = (await create_key(server.services.store.keys, ["sinks"])).key
        run = await wipsvc("submit", "sinks", str(path), "--watch", url=server.url)
        assert run.code == 3 and "API key required" in run.err and "HTTP 401" in run.err

        # REST with the header, Socket.IO with the auth payload: live lines prove the socket works.
        run = await wipsvc(
            "submit", "sinks", str(path), "--watch", "--poll-interval", "30", url=server.url, api_key=key
        )
        assert run.code == 0, run.out + run.err
        assert len(re.findall(r"^\[\d/8\] ✓ ", run.out, re.MULTILINE)) == 8
        assert key not in run.out + run.err
