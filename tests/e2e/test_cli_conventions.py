"""The CLI's conventions, through the real `wipsvc` executable: exit codes, one `--json` shape,
`--version`, one-line errors for bad settings, and the lifecycle commands."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import WIPSVC, Run, job_id_in, wipsvc, write_csv
from tests.support.live import LiveServer, make_settings, wait_for_job
from wipsvc.adapters.base import PageFetcher
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop


def parsed(run: Run) -> dict[str, Any]:
    """Stdout as exactly one JSON object with `success` (what every `--json` prints)."""
    body = json.loads(run.out)
    assert isinstance(body, dict) and isinstance(body.get("success"), bool), run.out
    return body


async def _local(*args: str, env: dict[str, str] | None = None) -> Run:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WIPSVC_")}
    process = await asyncio.create_subprocess_exec(
        str(WIPSVC),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean | (env or {}),
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def test_version_usage_and_bad_settings(tmp_path: Path) -> None:
    run = await _local("--version")
    assert run.code == 0 and re.fullmatch(r"wipsvc \d+\.\d+\.\d+\S*\n", run.out)

    run = await _local("jobs", "list", "--limit", "0")
    assert run.code == 2

    database = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    run = await _local("db", "upgrade", env={"WIPSVC_PORT": "abc", "WIPSVC_DATABASE_URL": database})
    assert run.code == 2
    assert run.err.count("\n") == 1 and "error: invalid settings: WIPSVC_PORT:" in run.err
    assert "abc" not in run.err and "Traceback" not in run.err
    assert not (tmp_path / "w.db").exists()

    run = await _local("keys", "create", env={"WIPSVC_DATABASE_URL": database})
    assert run.code == 2 and "either --collections" in run.err

    run = await _local("collections", "delete", "sinks")  # no terminal to confirm at
    assert run.code == 2 and "--yes" in run.err
    run = await _local("export", "sinks", "--json")
    assert run.code == 2 and parsed(run)["error"]["code"] == "usage_error"


async def test_server_and_network_errors_exit_3_with_a_json_error() -> None:
    run = await wipsvc("jobs", "list", "--json", url="http://127.0.0.1:9")
    assert run.code == 3
    body = parsed(run)
    assert body["success"] is False and body["error"]["code"] == "unreachable"
    assert "cannot reach wipsvc" in run.err


@pytest.mark.parametrize("collection", ["kitchen-sinks-and-taps-of-the-season"])
async def test_json_shapes_and_lifecycle_commands(
    collection: str, sqlite_url: str, shop: SampleShop, fetcher: PageFetcher, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "products.csv", shop.products(), header=True)
    async with LiveServer(make_settings(sqlite_url), fetcher=fetcher) as server, server.client() as client:
        url = server.url
        other = write_csv(tmp_path / "other.csv", [("JSON-1", shop.products()[0][1])], header=False)
        run = await wipsvc("submit", "elsewhere", str(other), "--json", url=url)
        submitted = parsed(run)
        assert (
            run.code == 0 and submitted["collection_name"] == "elsewhere" and len(submitted["wip_ids"]) == 1
        )
        assert submitted["status_url"] == f"/api/elsewhere/wip/jobs/{submitted['job_id']}"
        await wait_for_job(client, "elsewhere", submitted["job_id"])

        # Without --json, the hint to follow the job is one whole line even past 80 columns.
        run = await wipsvc("submit", collection, str(path), url=url)
        assert run.code == 0, run.err
        first = job_id_in(run.out)
        assert f"Follow it: wipsvc watch {first} --collection {collection}\n" in run.out
        await wait_for_job(client, collection, first)

        run = await wipsvc("collections", "list", "--json", url=url)
        listing = parsed(run)
        assert [c["name"] for c in listing["collections"]] == ["elsewhere", collection]
        run = await wipsvc("collections", "list", url=url)
        assert run.code == 0 and collection in run.out

        ids = [p["wip_id"] for p in (await client.get(f"/api/{collection}/wip")).json()["products"]]
        broken = [
            p["wip_id"]
            for p in (await client.get(f"/api/{collection}/wip")).json()["products"]
            if p["sku"] in BROKEN_SKUS
        ]
        # Reset the broken product, start a job for it by id and follow it: it fails again, exit 1.
        run = await wipsvc("products", "reset", collection, *map(str, broken), "--json", url=url)
        assert run.code == 0 and [p["status"] for p in parsed(run)["products"]] == ["pending"]
        run = await wipsvc("jobs", "start", collection, *map(str, broken), "--watch", "--json", url=url)
        assert run.code == 1
        started = parsed(run)
        assert started["success"] is True and started["job"]["failed_products"] == 1
        assert started["status_url"].endswith(started["job_id"])

        run = await wipsvc("jobs", "list", "--json", "--limit", "1", url=url)
        page = parsed(run)
        assert [j["job_id"] for j in page["jobs"]] == [started["job_id"]] and page["total"] == 3
        run = await wipsvc("jobs", "cancel", collection, first, "--json", url=url)
        assert run.code == 3 and parsed(run)["error"]["code"] == "conflict"
        run = await wipsvc("jobs", "retry", collection, first, "--json", url=url)
        assert run.code == 0 and parsed(run)["total_products"] == 1
        await wait_for_job(client, collection, parsed(run)["job_id"])
        run = await wipsvc("jobs", "resume", collection, first, "--json", url=url)
        assert run.code == 3 and "no skipped products" in parsed(run)["error"]["message"]

        run = await wipsvc("jobs", "delete", collection, first, "--json", url=url)
        assert run.code == 0 and parsed(run)["deleted"]["jobs"] == 1
        run = await wipsvc("jobs", "show", collection, first, "--json", url=url)
        assert run.code == 3 and parsed(run)["error"]["code"] == "not_found"

        # `export` counts CSV rows (cells may hold line breaks), not lines.
        out = tmp_path / "sheet.csv"
        run = await wipsvc("export", collection, "-o", str(out), "--json", url=url)
        rows = list(csv.reader(io.StringIO(out.read_text())))
        assert parsed(run) == {"success": True, "format": "csv", "rows": len(rows) - 1, "output": str(out)}
        assert f"wrote {len(rows) - 1} rows" in run.err

        run = await wipsvc("products", "delete", collection, str(ids[0]), "--json", url=url)
        assert run.code == 0 and parsed(run)["deleted"]["products"] == 1
        run = await wipsvc("collections", "delete", collection, "--yes", "--json", url=url)
        deleted = parsed(run)["deleted"]
        assert run.code == 0 and deleted["products"] == len(ids) - 1 and deleted["sheet_rows"] == len(rows)
        assert (await client.get(f"/api/collections/{collection}")).status_code == 404

        run = await wipsvc("jobs", "resume", collection, str(uuid.uuid4()), url=url)
        assert run.code == 3 and "not found" in run.err
