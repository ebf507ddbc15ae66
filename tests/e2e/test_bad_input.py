"""Bad input gets a clear 4xx in the one error shape, and nothing is queued."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.live import LiveServer, make_settings
from tests.support.slow import SlowFetcher
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.demo.shop import SampleShop


@pytest.fixture
async def server(sqlite_url: str, fetcher: SafeFetcher) -> AsyncIterator[LiveServer]:
    settings = make_settings(sqlite_url, max_batch=3, workers_per_job=1)
    async with LiveServer(settings, fetcher=SlowFetcher(fetcher, 0.5)) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as http:
        yield http


@pytest.fixture
async def ids(client: httpx.AsyncClient, shop: SampleShop) -> list[int]:
    products = [{"sku": sku, "url": url} for sku, url in shop.products()[:5]]
    response = await client.post("/api/sinks/wip", json={"products": products})
    wip_ids: list[int] = response.json()["wip_ids"]
    return wip_ids


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    return error


async def _no_jobs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/sinks/wip/jobs")).json()["jobs"] == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"wip_ids": []}, "at least 1"),
        ({"wip_ids": [1, 2, 2]}, "duplicate wip_ids: 2"),
        ({"wip_ids": ["1"]}, "valid integer"),
        ({"wip_ids": [1.5]}, "valid integer"),
        ({"wip_ids": [True]}, "valid integer"),
        ({"wip_ids": [0]}, "positive"),
        ({"wip_ids": "1,2"}, "valid list"),
        ({}, "Field required"),
        ({"wip_ids": [1], "extra": 1}, "Extra inputs"),
    ],
)
async def test_invalid_process_requests_are_rejected(
    client: httpx.AsyncClient, ids: list[int], payload: dict[str, Any], fragment: str
) -> None:
    error = _error(await client.post("/api/sinks/wip/process", json=payload), 422, "validation_error")
    assert fragment in error["message"]
    await _no_jobs(client)


async def test_more_than_max_batch(client: httpx.AsyncClient, ids: list[int]) -> None:
    error = _error(
        await client.post("/api/sinks/wip/process", json={"wip_ids": ids[:4]}), 422, "batch_too_large"
    )
    assert "at most 3" in error["message"]
    await _no_jobs(client)


async def test_unknown_ids_are_named(client: httpx.AsyncClient, ids: list[int]) -> None:
    response = await client.post("/api/sinks/wip/process", json={"wip_ids": [ids[0], 9998, 9999]})
    error = _error(response, 422, "unknown_wip_ids")
    assert "9998, 9999" in error["message"] and error["details"] == {"unknown_wip_ids": [9998, 9999]}
    await _no_jobs(client)


async def test_another_collections_ids_are_unknown(client: httpx.AsyncClient, ids: list[int]) -> None:
    await client.post("/api/taps/wip", json={"products": [{"sku": "T-1", "url": "https://shop.example/t1"}]})
    _error(await client.post("/api/taps/wip/process", json={"wip_ids": [ids[0]]}), 422, "unknown_wip_ids")


async def test_products_already_in_an_active_job(client: httpx.AsyncClient, ids: list[int]) -> None:
    first = await client.post("/api/sinks/wip/process", json={"wip_ids": ids[:2]})
    assert first.status_code == 202
    error = _error(await client.post("/api/sinks/wip/process", json={"wip_ids": ids[1:3]}), 409, "conflict")
    assert str(ids[1]) in error["message"]
    assert error["details"]["busy"] == {str(ids[1]): first.json()["job_id"]}
    jobs = (await client.get("/api/sinks/wip/jobs")).json()["jobs"]
    assert [job["job_id"] for job in jobs] == [first.json()["job_id"]]
    # The product that was free was not reserved by the refused request.
    assert (await client.get(f"/api/sinks/wip/{ids[2]}")).json()["product"]["active_job_id"] is None
    # Nor may a product in a job be reset under it.
    _error(await client.post(f"/api/sinks/wip/{ids[0]}/reset"), 409, "conflict")


async def test_unknown_job_and_another_collections_job(client: httpx.AsyncClient, ids: list[int]) -> None:
    _error(await client.get("/api/sinks/wip/jobs/no-such-job"), 404, "not_found")
    _error(await client.post("/api/sinks/wip/jobs/no-such-job/cancel"), 404, "not_found")
    job_id = (await client.post("/api/sinks/wip/process", json={"wip_ids": ids[:1]})).json()["job_id"]
    await client.post("/api/taps/wip", json={"products": [{"sku": "T-1", "url": "https://shop.example/t1"}]})
    for response in (
        await client.get(f"/api/taps/wip/jobs/{job_id}"),
        await client.post(f"/api/taps/wip/jobs/{job_id}/cancel"),
        await client.post(f"/api/taps/wip/jobs/{job_id}/retry"),
    ):
        error = _error(response, 404, "not_found")
        assert "taps" in error["message"]
    assert (await client.get(f"/api/sinks/wip/jobs/{job_id}")).json()["job"]["cancel_requested"] is False


async def test_unknown_collection(client: httpx.AsyncClient) -> None:
    _error(await client.post("/api/nowhere/wip/process", json={"wip_ids": [1]}), 404, "not_found")
    _error(await client.get("/api/nowhere/wip/jobs"), 404, "not_found")
    _error(await client.get("/api/Not_Valid!/wip/jobs"), 422, "validation_error")


async def test_malformed_json(client: httpx.AsyncClient, ids: list[int]) -> None:
    response = await client.post(
        "/api/sinks/wip/process", content=b'{"wip_ids": [1,', headers={"content-type": "application/json"}
    )
    _error(response, 400, "malformed_json")
    await _no_jobs(client)


@pytest.mark.parametrize(
    ("product", "fragment"),
    [
        ({"sku": "", "url": "https://shop.example/a"}, "sku"),
        ({"sku": "has space", "url": "https://shop.example/a"}, "sku"),
        ({"sku": "X" * 65, "url": "https://shop.example/a"}, "sku"),
        ({"sku": "OK-1", "url": "ftp://shop.example/a"}, "url"),
        ({"sku": "OK-1", "url": "not a url"}, "url"),
        ({"sku": "OK-1", "url": "https://user:pw@shop.example/a"}, "credentials"),
        ({"sku": "OK-1"}, "url"),
    ],
)
async def test_invalid_products_are_not_created(
    client: httpx.AsyncClient, product: dict[str, Any], fragment: str
) -> None:
    response = await client.post(
        "/api/sinks/wip", json={"products": [{"sku": "GOOD-1", "url": "https://shop.example/g"}, product]}
    )
    error = _error(response, 422, "validation_error")
    assert fragment in error["message"]
    assert (await client.get("/api/sinks/wip")).status_code == 404  # not even the collection was created


async def test_duplicate_and_existing_skus(
    client: httpx.AsyncClient, ids: list[int], shop: SampleShop
) -> None:
    sku, url = shop.products()[0]
    dup = await client.post("/api/sinks/wip", json={"products": [{"sku": "D-1", "url": url}] * 2})
    assert "duplicate SKUs: D-1" in _error(dup, 422, "validation_error")["message"]
    existing = await client.post("/api/sinks/wip", json={"products": [{"sku": sku, "url": url}]})
    assert sku in _error(existing, 409, "conflict")["message"]
    assert (await client.get("/api/sinks/wip")).json()["total"] == len(ids)


async def test_a_query_parameter_given_twice_is_refused(client: httpx.AsyncClient, ids: list[int]) -> None:
    # Read silently as its last value before: `?status=ready&status=error` listed errors only.
    repeated = await client.get("/api/sinks/wip", params=[("search", "a"), ("search", "b"), ("limit", "5")])
    error = _error(repeated, 422, "validation_error")
    assert "query.search: given more than once" in error["message"]
    assert [detail["loc"] for detail in error["details"]] == [["query", "search"]]
    jobs = await client.get(
        "/api/sinks/wip/jobs", params=[("limit", "1"), ("status", "queued"), ("limit", "2")]
    )
    assert "query.limit" in _error(jobs, 422, "validation_error")["message"]
    # A name the route does not take is ignored, once or twice.
    unknown = await client.get("/api/sinks/wip", params=[("x", "1"), ("x", "2"), ("search", "zz")])
    assert unknown.status_code == 200 and unknown.json()["total"] == 0
