"""Logs: one format (JSON when asked), request ids, the job and collection in context, and the
routine lines (status polls, page fetches) at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.datastructures import Headers

from tests.support.live import LiveServer, make_settings, wait_for_job
from wipsvc import logs
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.api.request_log import request_id_from
from wipsvc.config import Settings
from wipsvc.demo.shop import BROKEN_SKUS, SampleShop


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Whatever `configure_logging` writes; the root logger and httpx's are restored afterwards."""
    root, httpx_logger = logging.getLogger(), logging.getLogger("httpx")
    saved = (list(root.handlers), root.level, list(httpx_logger.filters))
    levels = {name: logging.getLogger(name).level for name in logs.INTERNAL_LOGGERS}
    try:
        yield Captured()
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        httpx_logger.filters[:] = saved[2]


# Tests that set the logging context are coroutines: each runs in a task of its own, whose
# context (a copy) ends with it.


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


async def test_json_lines_carry_the_context_and_the_traceback(captured: Captured) -> None:
    logs.configure_logging(_settings(log_format="json"), captured.stream)
    logs.request_id.set("req-1")
    logs.bind_job("job-1", "sinks")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("wipsvc.test").exception("it failed: %s", "really")
    # (uvicorn sets its loggers' levels from its own log_level: a warning passes whatever it was.)
    logging.getLogger("uvicorn.error").warning("Uvicorn running")
    first, second = captured.entries()
    assert first["level"] == "ERROR" and first["logger"] == "wipsvc.test"
    assert first["message"] == "it failed: really"
    assert (first["request_id"], first["job_id"], first["collection"]) == ("req-1", "job-1", "sinks")
    assert "ValueError: boom" in first["exception"]
    assert second["logger"] == "uvicorn.error" and second["message"] == "Uvicorn running"


async def test_text_lines_name_the_context_before_any_traceback(captured: Captured) -> None:
    logs.configure_logging(_settings(log_format="text"), captured.stream)
    logs.bind_job("job-2", "taps")
    try:
        raise KeyError("x")
    except KeyError:
        logging.getLogger("wipsvc.test").exception("oops")
    first, *rest = captured.stream.getvalue().splitlines()
    assert first.endswith("ERROR wipsvc.test: oops [job_id=job-2 collection=taps]")
    assert rest[0].startswith("Traceback")


@pytest.mark.parametrize(("level", "shown"), [("info", False), ("debug", True)])
def test_httpx_request_lines_are_debug(captured: Captured, level: str, shown: bool) -> None:
    logs.configure_logging(_settings(log_format="json", log_level=level), captured.stream)
    logging.getLogger("httpx").info("HTTP Request: GET http://shop/p/1 %s", '"HTTP/1.1 200 OK"')
    logging.getLogger("httpx").warning("something else")
    entries = captured.entries()
    assert [entry["level"] for entry in entries] == (["DEBUG", "WARNING"] if shown else ["WARNING"])


async def test_requests_and_jobs_log_with_their_context(
    captured: Captured, sqlite_url: str, shop: SampleShop, fetcher: SafeFetcher
) -> None:
    settings = make_settings(sqlite_url, log_format="json", log_level="debug")
    logs.configure_logging(settings, captured.stream)
    async with LiveServer(settings, fetcher=fetcher) as server, server.client() as client:
        created = await client.post(
            "/api/sinks/wip",
            json={"products": [{"sku": s, "url": u} for s, u in shop.products()]},
            headers={"X-Request-ID": "caller-id-42"},
        )
        assert created.headers["X-Request-ID"] == "caller-id-42"
        started = await client.post("/api/sinks/wip/process", json={"wip_ids": created.json()["wip_ids"]})
        made = started.headers["X-Request-ID"]
        assert len(made) == 32 and int(made, 16) >= 0  # none sent: one made up
        unusable = await client.get("/healthz", headers={"X-Request-ID": "x" * 200})
        assert unusable.headers["X-Request-ID"] != "x" * 200
        job_id = started.json()["job_id"]
        await wait_for_job(client, "sinks", job_id)
        missing = await client.get("/api/sinks/wip/jobs/00000000-0000-0000-0000-000000000000")
        assert missing.status_code == 404

    entries = captured.entries()
    access = [entry for entry in entries if entry["logger"] == "wipsvc.access"]

    def line(method: str, path: str) -> dict[str, Any]:
        return next(entry for entry in access if entry["message"].startswith(f"{method} {path} "))

    create = line("POST", "/api/sinks/wip")
    assert create["level"] == "INFO" and create["request_id"] == "caller-id-42"
    assert create["collection"] == "sinks" and " 201 " in create["message"]
    assert line("POST", "/api/sinks/wip/process")["request_id"] == made
    poll = line("GET", f"/api/sinks/wip/jobs/{job_id}")
    assert poll["level"] == "DEBUG" and poll["job_id"] == job_id and poll["collection"] == "sinks"
    assert line("GET", "/api/sinks/wip/jobs/00000000-0000-0000-0000-000000000000")["level"] == "INFO"

    # The runner's lines name the job and its collection, and carry no request id.
    failed = [entry for entry in entries if "failed at extract" in entry["message"]]
    assert len(failed) == len(BROKEN_SKUS)
    assert all(entry.get("job_id") == job_id and entry.get("collection") == "sinks" for entry in failed)
    assert all("request_id" not in entry for entry in failed)
    # Page fetches went through httpx at DEBUG.
    fetches = [entry for entry in entries if entry["logger"] == "httpx" and "/products/" in entry["message"]]
    assert fetches and {entry["level"] for entry in fetches} == {"DEBUG"}
    # Libraries' own internals stay out even at debug.
    assert not [entry for entry in entries if entry["logger"] == "aiosqlite"]


def test_only_well_formed_request_ids_are_kept() -> None:
    assert request_id_from(Headers({"X-Request-ID": "ok-id_1.2:3"})) == "ok-id_1.2:3"
    for unusable in ("a b", "", "x" * 129, "é"):
        made = request_id_from(Headers({"X-Request-ID": unusable}))
        assert made != unusable and len(made) == 32
