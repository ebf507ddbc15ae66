"""The OpenAPI document follows the conventions clients and generators rely on."""

from __future__ import annotations

import re
from typing import Any

from tests.support.live import LiveServer, make_settings
from wipsvc.collection_access import OPERATOR_FIELDS


async def _schema(sqlite_url: str) -> dict[str, Any]:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        schema: dict[str, Any] = (await client.get("/openapi.json")).json()
    return schema


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    ]


async def test_every_operation_is_named_summarised_and_described(sqlite_url: str) -> None:
    schema = await _schema(sqlite_url)
    ids = []
    for method, path, operation in _operations(schema):
        where = f"{method} {path}"
        ids.append(operation["operationId"])
        assert re.fullmatch(r"[a-z][a-z_]*", operation["operationId"]), where
        assert operation.get("summary"), where
        assert operation.get("description"), where
        for status, response in operation["responses"].items():
            assert response["description"] != "Successful Response", f"{where} {status}"
            if status.startswith("4") or status.startswith("5"):
                error = response["content"]["application/json"]
                assert error["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, f"{where} {status}"
                assert error["example"]["success"] is False, f"{where} {status}"
    assert len(ids) == len(set(ids))
    assert "start_job" in ids and "list_all_jobs" in ids


async def test_errors_are_documented_only_where_they_can_happen(sqlite_url: str) -> None:
    schema = await _schema(sqlite_url)
    paths = schema["paths"]
    start = paths["/api/{collection}/wip/process"]["post"]["responses"]
    assert {"400", "401", "404", "409", "413", "422", "429"} <= set(start)
    assert start["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert "429" not in paths["/api/{collection}/wip/jobs/{job_id}"]["get"]["responses"]
    assert "409" not in paths["/api/{collection}/wip/jobs/{job_id}"]["get"]["responses"]
    assert "400" not in paths["/api/collections"]["get"]["responses"]
    assert "422" not in paths["/api/collections"]["get"]["responses"]
    assert set(paths["/healthz"]["get"]["responses"]) == {"200"}
    # The edge's answers, possible on every path, are told once for the whole API.
    assert "`host_not_allowed`" in schema["info"]["description"]
    assert "`headers_too_large`" in schema["info"]["description"]


async def test_one_schema_per_model(sqlite_url: str) -> None:
    names = set((await _schema(sqlite_url))["components"]["schemas"])
    assert not [name for name in names if name.endswith(("-Input", "-Output"))]
    assert {"Collection", "CollectionConfig", "Job", "JobPageResponse", "DeleteResponse"} <= names


async def test_every_property_of_the_api_models_is_described(sqlite_url: str) -> None:
    schemas = (await _schema(sqlite_url))["components"]["schemas"]
    undescribed = [
        f"{name}.{prop}"
        for name, schema in schemas.items()
        for prop, spec in schema.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert undescribed == []


async def test_operator_settings_say_so_in_the_schema(sqlite_url: str) -> None:
    schemas = (await _schema(sqlite_url))["components"]["schemas"]
    for section, field in OPERATOR_FIELDS:
        model = {"sheet": "SheetConfig", "cleaning": "CleaningConfig"}[section]
        assert "only an admin key" in schemas[model]["properties"][field]["description"], f"{section}.{field}"
    assert "only an admin key" not in schemas["SheetConfig"]["properties"]["worksheet"]["description"]


async def test_405_names_the_allowed_methods(sqlite_url: str) -> None:
    async with LiveServer(make_settings(sqlite_url)) as server, server.client() as client:
        response = await client.patch("/api/collections/sinks")
        assert response.status_code == 405
        assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "PUT", "DELETE"}
        assert response.json()["error"]["code"] == "method_not_allowed"
