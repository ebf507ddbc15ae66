"""A client generated from `/openapi.json` by openapi-python-client parses every answer.

The generator runs in a virtualenv of its own (it pins its own dependencies). Real answers of
every operation — successes and errors — are recorded from a live server, then replayed
through each operation's generated parser, which must return the documented model.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live import LiveServer, make_settings, until, wait_for_job
from tests.support.slow import GatedFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.auth import create_key
from wipsvc.demo.shop import SampleShop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

GENERATOR = "openapi-python-client==0.29.1"

# Runs inside the generator's virtualenv, which has everything the generated client imports.
REPLAY = textwrap.dedent(
    """
    import importlib, json, sys
    import httpx
    sys.path.insert(0, sys.argv[1])
    from wipsvc_client.client import Client
    schema = json.load(open(sys.argv[2]))
    tags = {op["operationId"]: op["tags"][0] for ops in schema["paths"].values() for op in ops.values()}
    client = Client(base_url="http://127.0.0.1", raise_on_unexpected_status=True)
    parsed = []
    for record in json.load(open(sys.argv[3])):
        package = tags[record["operation"]].lower().replace(" ", "_")
        module = importlib.import_module(f"wipsvc_client.api.{package}.{record['operation']}")
        response = httpx.Response(record["status"], json=record["body"])
        result = module._parse_response(client=client, response=response)
        parsed.append([record["operation"], record["status"], type(result).__name__])
    print(json.dumps(parsed))
    """
)


class Recorder:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.records: list[dict[str, Any]] = []

    async def call(
        self, operation: str, method: str, path: str, expect: int, **kwargs: Any
    ) -> dict[str, Any]:
        response = await self.client.request(method, path, **kwargs)
        assert response.status_code == expect, f"{operation}: {response.status_code} {response.text}"
        body: dict[str, Any] = response.json()
        self.records.append({"operation": operation, "status": response.status_code, "body": body})
        return body


async def _exercise(recorder: Recorder, server: LiveServer, shop: SampleShop, gated: GatedFetcher) -> None:
    call = recorder.call
    await call("healthz", "GET", "/healthz", 200)
    await call("readyz", "GET", "/readyz", 200)
    await call("get_stats", "GET", "/api/stats", 200)
    products = [{"sku": sku, "url": url} for sku, url in shop.products()]
    created = await call("create_products", "POST", "/api/sinks/wip", 201, json={"products": products})
    ids = created["wip_ids"]
    await call("create_products", "POST", "/api/sinks/wip", 409, json={"products": products[:1]})
    await call(
        "create_products",
        "POST",
        "/api/sinks/wip",
        400,
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    await call("create_products", "POST", "/api/sinks/wip", 413, json={"products": products * 40})
    await call("list_collections", "GET", "/api/collections", 200)
    collection = await call("get_collection", "GET", "/api/collections/sinks", 200)
    await call("get_collection", "GET", "/api/collections/nope", 404)
    config = collection["collection"]["config"]
    await call("put_collection", "PUT", "/api/collections/sinks", 200, json=config)
    hook = {"targets": [{"kind": "webhook", "url": "http://127.0.0.1:9/hooks"}]}
    await call("set_notification_targets", "PUT", "/api/collections/sinks/notifications", 200, json=hook)
    await call("get_notification_targets", "GET", "/api/collections/sinks/notifications", 200)
    await call("list_products", "GET", "/api/sinks/wip", 200)
    await call("get_product", "GET", f"/api/sinks/wip/{ids[0]}", 200)

    started = await call("start_job", "POST", "/api/sinks/wip/process", 202, json={"wip_ids": ids})
    await call("start_job", "POST", "/api/sinks/wip/process", 409, json={"wip_ids": ids})
    await call("start_job", "POST", "/api/sinks/wip/process", 422, json={"wip_ids": []})
    await until(lambda: gated.waiting > 0)
    await call("get_job", "GET", f"/api/sinks/wip/jobs/{started['job_id']}", 200)
    await call("reset_product", "POST", f"/api/sinks/wip/{ids[0]}/reset", 409)
    await call("delete_product", "DELETE", f"/api/sinks/wip/{ids[0]}", 409)
    await call("delete_job", "DELETE", f"/api/sinks/wip/jobs/{started['job_id']}", 409)
    await call("delete_collection", "DELETE", "/api/collections/sinks", 409)
    running = f"/api/sinks/wip/jobs/{started['job_id']}"
    await call("change_job_priority", "PATCH", running, 409, json={"priority": "urgent"})
    await call("cancel_job", "POST", f"/api/sinks/wip/jobs/{started['job_id']}/cancel", 200)
    gated.gate.set()
    await wait_for_job(recorder.client, "sinks", started["job_id"])
    await call("cancel_job", "POST", f"/api/sinks/wip/jobs/{started['job_id']}/cancel", 409)

    again = await call("start_job", "POST", "/api/sinks/wip/process", 202, json={"wip_ids": ids})
    job = await wait_for_job(recorder.client, "sinks", again["job_id"])
    assert job["failed_products"] > 0  # the sample shop's broken page
    await call("get_job", "GET", f"/api/sinks/wip/jobs/{job['job_id']}", 200)
    log = await call("list_deliveries", "GET", "/api/collections/sinks/deliveries", 200)
    delivery = log["deliveries"][0]["id"]
    await call("send_delivery_again", "POST", f"/api/collections/sinks/deliveries/{delivery}/send-again", 202)
    await call("list_jobs", "GET", "/api/sinks/wip/jobs", 200)
    await call("list_all_jobs", "GET", "/api/jobs", 200, params={"limit": 1})
    await call("list_all_jobs", "GET", "/api/jobs", 422, params={"limit": 0})
    schedule = await call("create_schedule", "POST", "/api/sinks/schedules", 201, json={"cron": "0 6 * * *"})
    await call("create_schedule", "POST", "/api/sinks/schedules", 422, json={"cron": "0 6 * *"})
    schedule_path = f"/api/sinks/schedules/{schedule['schedule']['id']}"
    await call("list_schedules", "GET", "/api/sinks/schedules", 200)
    await call("get_schedule", "GET", schedule_path, 200)
    await call("get_schedule", "GET", "/api/sinks/schedules/424242", 404)
    await call("list_schedule_fires", "GET", f"{schedule_path}/fires", 200)
    await call("pause_schedule", "POST", f"{schedule_path}/pause", 200)
    await call("resume_schedule", "POST", f"{schedule_path}/resume", 200)
    await call("delete_schedule", "DELETE", schedule_path, 200)
    retried = await call("retry_job", "POST", f"/api/sinks/wip/jobs/{job['job_id']}/retry", 202)
    await wait_for_job(recorder.client, "sinks", retried["job_id"])
    await call("reset_product", "POST", f"/api/sinks/wip/{ids[0]}/reset", 200)
    await call("delete_job", "DELETE", f"/api/sinks/wip/jobs/{retried['job_id']}", 200)
    await call("delete_product", "DELETE", f"/api/sinks/wip/{ids[0]}", 200)
    await call("get_product", "GET", f"/api/sinks/wip/{ids[0]}", 404)
    await call("export_sheet", "GET", "/api/collections/nope/sheet.csv", 404)
    await call("delete_collection", "DELETE", "/api/collections/sinks", 200)

    collection_key = await create_key(server.services.store.keys, None)
    await call("list_collections", "GET", "/api/collections", 401)
    # Metrics are text, but what a collection key gets is the error model.
    await call("get_metrics", "GET", "/metrics", 403, headers={"X-API-Key": collection_key.key})


async def test_a_generated_client_parses_every_response_model(
    tmp_path: Path, sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    venv = tmp_path / "generator"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", GENERATOR], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr[-2000:]

    gated = GatedFetcher(fetcher)
    settings = make_settings(sqlite_url, max_request_bytes=16_384)
    async with LiveServer(settings, fetcher=gated) as server, server.client() as client:
        schema = (await client.get("/openapi.json")).json()
        recorder = Recorder(client)
        await _exercise(recorder, server, shop, gated)

    schema_file, records_file = tmp_path / "openapi.json", tmp_path / "records.json"
    schema_file.write_text(json.dumps(schema))
    records_file.write_text(json.dumps(recorder.records))
    config = tmp_path / "generator.json"
    config.write_text(json.dumps({"package_name_override": "wipsvc_client", "post_hooks": []}))
    output = tmp_path / "generated" / "wipsvc_client"
    generate = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "openapi-python-client"),
        "generate",
        "--path",
        str(schema_file),
        "--output-path",
        str(output),
        "--meta",
        "none",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    log = (await generate.communicate())[0].decode()
    assert generate.returncode == 0, log
    assert "Warning" not in log, log  # nothing of the schema skipped

    replay = subprocess.run(
        [str(venv / "bin" / "python"), "-c", REPLAY, str(output.parent), str(schema_file), str(records_file)],
        capture_output=True,
        text=True,
    )
    assert replay.returncode == 0, replay.stderr[-3000:]
    parsed = json.loads(replay.stdout)

    documented: dict[tuple[str, int], str] = {}
    models: set[str] = set()
    for operations in schema["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
                if ref:
                    documented[(operation["operationId"], int(status))] = ref.rsplit("/", 1)[-1]
                    models.add(ref.rsplit("/", 1)[-1])
    for operation, status, model in parsed:
        assert model == documented[(operation, status)], (operation, status, model)
    # Every response model of the schema was met and parsed at least once.
    assert {model for _, _, model in parsed} == models
    assert {operation for operation, _, _ in parsed} == {
        op["operationId"] for ops in schema["paths"].values() for op in ops.values()
    }
