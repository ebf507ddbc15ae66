"""Who may change a collection's settings, and what they may point at — black-box over real HTTP.

A collection key uses its collection (columns, cleaning rules, LLM model, worksheet title);
what the service connects to or reads (spreadsheet, credential files, Apps Script, web app)
is the operator's: an admin key, or the local caller of an open service. Credential files
are named inside WIPSVC_CREDENTIALS_DIR, and a web-app URL passes the address guard at PUT
time and on every call, redirects included.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import run_wipsvc
from tests.support.live import LiveServer, make_settings, wait_for_job
from tests.support.netguard import LocalHttpServer, Reply
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.auth import create_key
from wipsvc.collection import SECRET_MASK, CollectionConfig
from wipsvc.demo.shop import SampleShop

COLLECTION = "alpha"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


class InternalService:
    """A TCP listener on 127.0.0.2 standing for an internal service: it counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\ninternal-token")
            await writer.drain()
            writer.close()

        self._server = await asyncio.start_server(answer, "127.0.0.2", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.2:{self.port}/internal"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def internal() -> AsyncIterator[InternalService]:
    service = InternalService()
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
def credentials_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "credentials"
    (directory / "team-a").mkdir(parents=True)
    (directory / "team-a" / "sa.json").write_text("{}")
    (tmp_path / "outside.json").write_text("{}")
    return directory


@pytest.fixture
async def server(sqlite_url: str, fetcher: SafeFetcher, credentials_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(sqlite_url, credentials_dir=str(credentials_dir))
    async with LiveServer(settings, fetcher=fetcher) as running:
        yield running


@pytest.fixture
def pages() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as running:
        yield running


def _webapp(url: str, secret: str = "s3cret") -> dict[str, Any]:
    return {"cleaning": {"backend": "apps_script_webapp", "webapp_url": url, "webapp_secret": secret}}


# -- defect 1: the web-app URL is guarded at PUT time and at call time -------------------------------


async def test_an_internal_webapp_url_is_refused_at_put_even_for_the_operator(
    server: LiveServer, internal: InternalService
) -> None:
    async with server.client() as client:  # open mode: the local caller is the operator
        for url in (internal.url, "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"):
            error = _error(
                await client.put(f"/api/collections/{COLLECTION}", json=_webapp(url)), 422, "validation_error"
            )
            assert error["message"].startswith("cleaning.webapp_url: refused")
        assert (await client.get(f"/api/collections/{COLLECTION}")).status_code == 404  # nothing stored
    assert internal.connections == 0


@pytest.mark.parametrize("via_redirect", [False, True], ids=["direct", "303 redirect"])
async def test_an_internal_webapp_url_is_refused_at_call_time(
    server: LiveServer,
    internal: InternalService,
    pages: LocalHttpServer,
    shop: SampleShop,
    via_redirect: bool,
) -> None:
    # The allowed host (loopback 127.0.0.1 is allowed in tests) bounces the POST to the internal one.
    pages.routes["/exec"] = lambda _: Reply(303, [("Location", internal.url)])
    url = pages.url("/exec") if via_redirect else internal.url
    # Stored behind the API's back, as a setting stored before the guard existed would be.
    config = CollectionConfig.model_validate(_webapp(url))
    await server.services.store.collections.put(COLLECTION, config)
    async with server.client() as client:
        sku, page = shop.products()[0]
        created = await client.post(f"/api/{COLLECTION}/wip", json={"products": [{"sku": sku, "url": page}]})
        ids = created.json()["wip_ids"]
        started = await client.post(f"/api/{COLLECTION}/wip/process", json={"wip_ids": ids})
        job = await wait_for_job(client, COLLECTION, started.json()["job_id"])
    [result] = job["results"]
    assert job["status"] == "completed" and result["status"] == "failed", job
    assert result["error_step"] == "clean"
    assert f"refused {internal.url}: 127.0.0.2 is a loopback address" in result["error"]
    assert "internal-token" not in json.dumps(job)
    assert internal.connections == 0
    assert [r.path for r in pages.requests] == (["/exec"] if via_redirect else [])


# -- defect 2: operator fields need an admin -----------------------------------------------------------


async def test_a_collection_key_cannot_change_what_the_collection_connects_to(
    server: LiveServer, credentials_dir: Path
) -> None:
    store = server.services.store
    scoped = (await create_key(store.keys, [COLLECTION])).key
    every = (await create_key(store.keys, None)).key
    admin = (await create_key(store.keys, None, is_admin=True)).key
    operator_config = {
        "sheet": {"backend": "local", "spreadsheet_id": "team-a-sheet", "credentials_file": "team-a/sa.json"},
        "cleaning": {
            "backend": "apps_script_webapp",
            "webapp_url": "http://127.0.0.1:9/macros/s/x/exec",
            "webapp_secret": "s3cret",
        },
    }
    async with server.client() as client:
        put = await client.put(f"/api/collections/{COLLECTION}", json=operator_config, headers=_auth(admin))
        assert put.status_code == 200, put.text
        attempts = {
            "sheet.spreadsheet_id": {"sheet": {"spreadsheet_id": "other-teams-sheet"}},
            "sheet.credentials_file": {
                "sheet": {"spreadsheet_id": "team-a-sheet", "credentials_file": "x.json"}
            },
            "cleaning.webapp_url": _webapp("http://127.0.0.1:9/elsewhere"),
            "cleaning.webapp_secret": {"cleaning": {**operator_config["cleaning"], "webapp_secret": "new"}},
            "cleaning.script_id": {"cleaning": {"backend": "apps_script_api", "script_id": "theirs"}},
        }
        for key in (scoped, every):
            for field, body in attempts.items():
                response = await client.put(f"/api/collections/{COLLECTION}", json=body, headers=_auth(key))
                error = _error(response, 403, "operator_only")
                assert field in error["details"]["fields"], (field, error)
                assert field in error["message"]
        stored = await store.collections.get(COLLECTION)
        assert stored is not None and stored.config.sheet.spreadsheet_id == "team-a-sheet"

        # The harmless settings are the key's to change; omitted operator fields are kept.
        harmless = {
            "sheet": {"backend": "local", "worksheet": "Tab 2"},
            "columns": {"sku": "A", "url": "B", "title": "C"},
            "cleaning": {"backend": "apps_script_webapp", "rules": {"title_case_brand": True}},
            "llm": {"model": "gpt-4.1-mini"},
        }
        response = await client.put(f"/api/collections/{COLLECTION}", json=harmless, headers=_auth(scoped))
        assert response.status_code == 200, response.text
        # A GET -> PUT round trip (the masked secret included) keeps everything.
        got = (await client.get(f"/api/collections/{COLLECTION}", headers=_auth(scoped))).json()
        assert got["collection"]["config"]["cleaning"]["webapp_secret"] == SECRET_MASK
        again = await client.put(
            f"/api/collections/{COLLECTION}", json=got["collection"]["config"], headers=_auth(scoped)
        )
        assert again.status_code == 200, again.text
        stored = await store.collections.get(COLLECTION)
        assert stored is not None
        assert stored.config.sheet.worksheet == "Tab 2" and stored.config.llm.model == "gpt-4.1-mini"
        assert stored.config.cleaning.rules.title_case_brand is True
        assert stored.config.sheet.spreadsheet_id == "team-a-sheet"
        assert stored.config.sheet.credentials_file == "team-a/sa.json"
        assert stored.config.cleaning.webapp_url == operator_config["cleaning"]["webapp_url"]
        secret = stored.config.cleaning.webapp_secret
        assert secret is not None and secret.get_secret_value() == "s3cret"

        # A new collection: the key may create it with the default (empty) operator fields only.
        new = await client.put("/api/collections/beta", json=harmless, headers=_auth(every))
        assert new.status_code == 200, new.text
        refused = await client.put(
            "/api/collections/gamma", json=attempts["sheet.spreadsheet_id"], headers=_auth(every)
        )
        _error(refused, 403, "operator_only")

        # The admin may change them, and the masked secret keeps the stored one for it too.
        config = got["collection"]["config"] | {"sheet": {"backend": "local", "spreadsheet_id": "moved"}}
        response = await client.put(f"/api/collections/{COLLECTION}", json=config, headers=_auth(admin))
        assert response.status_code == 200, response.text
        stored = await store.collections.get(COLLECTION)
        assert stored is not None and stored.config.sheet.spreadsheet_id == "moved"
        secret = stored.config.cleaning.webapp_secret
        assert secret is not None and secret.get_secret_value() == "s3cret"


async def test_credential_files_are_named_inside_the_credentials_directory(
    server: LiveServer, credentials_dir: Path, tmp_path: Path
) -> None:
    async with server.client() as client:  # open mode: the operator
        for name, reason in (
            ("../outside.json", "must be a file name relative to the credentials directory"),
            (str(tmp_path / "outside.json"), "must be a file name relative to the credentials directory"),
            ("/etc/passwd", "must be a file name relative to the credentials directory"),
            ("team-a/missing.json", "does not exist in the credentials directory"),
            ("team-a", "does not exist in the credentials directory"),
        ):
            for body in (
                {"sheet": {"backend": "google", "spreadsheet_id": "s", "credentials_file": name}},
                {
                    "cleaning": {
                        "backend": "apps_script_api",
                        "script_id": "s",
                        "oauth_credentials_file": name,
                    }
                },
            ):
                response = await client.put(f"/api/collections/{COLLECTION}", json=body)
                error = _error(response, 422, "validation_error")
                assert reason in error["message"], error
        good = {"sheet": {"backend": "google", "spreadsheet_id": "s", "credentials_file": "team-a/sa.json"}}
        assert (await client.put(f"/api/collections/{COLLECTION}", json=good)).status_code == 200


async def test_a_path_stored_outside_the_directory_fails_the_job_with_one_line(
    server: LiveServer, tmp_path: Path, credentials_dir: Path, shop: SampleShop
) -> None:
    outside = tmp_path / "outside.json"
    config = CollectionConfig.model_validate(
        {"sheet": {"backend": "google", "spreadsheet_id": "s", "credentials_file": str(outside)}}
    )
    await server.services.store.collections.put(COLLECTION, config)
    async with server.client() as client:
        sku, page = shop.products()[0]
        created = await client.post(f"/api/{COLLECTION}/wip", json={"products": [{"sku": sku, "url": page}]})
        started = await client.post(
            f"/api/{COLLECTION}/wip/process", json={"wip_ids": created.json()["wip_ids"]}
        )
        job = await wait_for_job(client, COLLECTION, started.json()["job_id"])
    assert job["status"] == "failed"
    assert job["error"] == (
        f"could not open the collection's backends: credential file {outside} is named by path: "
        f"move it into {credentials_dir} and name it relative to that directory"
    )


# -- defect 7: stats count only the key's collections ---------------------------------------------------


async def test_stats_count_only_the_keys_collections(server: LiveServer, shop: SampleShop) -> None:
    products = shop.products()
    async with server.client() as client:
        for collection, batch in (("alpha", products[:2]), ("beta", products[2:5])):
            body = {"products": [{"sku": sku, "url": url} for sku, url in batch]}
            ids = (await client.post(f"/api/{collection}/wip", json=body)).json()["wip_ids"]
            started = await client.post(f"/api/{collection}/wip/process", json={"wip_ids": ids})
            await wait_for_job(client, collection, started.json()["job_id"])
        store = server.services.store
        alpha = (await create_key(store.keys, ["alpha"])).key
        admin = (await create_key(store.keys, None, is_admin=True)).key
        scoped = (await client.get("/api/stats", headers=_auth(alpha))).json()
        whole = (await client.get("/api/stats", headers=_auth(admin))).json()
    assert sum(scoped["products_finished_last_15m"]) == 2
    assert sum(whole["products_finished_last_15m"]) == 5


# -- the operator's command line ----------------------------------------------------------------------


async def test_the_operator_sets_collections_and_admin_keys_from_the_command_line(
    sqlite_url: str, fetcher: SafeFetcher, credentials_dir: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIPSVC_")} | {
        "WIPSVC_DATABASE_URL": sqlite_url,
        "WIPSVC_CREDENTIALS_DIR": str(credentials_dir),
        "WIPSVC_SCRAPE_ALLOWED_HOSTS": "127.0.0.1",
    }
    code, out, err = await run_wipsvc(env, tmp_path, "keys", "create", "--admin", "--label", "ops")
    assert code == 0, err
    admin = out.strip()
    assert "Created admin key 1" in err and "every collection" in err
    code, _, err = await run_wipsvc(env, tmp_path, "keys", "create", "--admin", "--collections", "alpha")
    assert code == 2 and "--admin without --collections" in err
    code, out, _ = await run_wipsvc(env, tmp_path, "keys", "list", "--json")
    assert json.loads(out)["keys"][0]["is_admin"] is True

    config = tmp_path / "alpha.json"
    settings = {
        "sheet": {"backend": "google", "spreadsheet_id": "sheet-a", "credentials_file": "team-a/sa.json"},
        "cleaning": {
            "backend": "apps_script_webapp",
            "webapp_url": "http://127.0.0.1:9/exec",
            "webapp_secret": "s",
        },
    }
    for bad, message in (
        ({"sheet": {"credentials_file": "../outside.json"}}, "sheet.credentials_file: credential name"),
        (_webapp("http://127.0.0.2:9/internal"), "cleaning.webapp_url: refused"),
        ({"sheet": {"worksheet": "a\u0000b"}}, "contains U+0000 (NUL)"),
    ):
        config.write_text(json.dumps(bad))
        code, _, err = await run_wipsvc(env, tmp_path, "collections", "set", COLLECTION, str(config))
        assert code == 2 and message in err, err
    config.write_text(json.dumps(settings))
    code, out, err = await run_wipsvc(env, tmp_path, "collections", "set", COLLECTION, str(config))
    assert code == 0, err
    assert f"Stored the settings of collection '{COLLECTION}'" in out

    async with (
        LiveServer(
            make_settings(sqlite_url, credentials_dir=str(credentials_dir)), fetcher=fetcher
        ) as server,
        server.client() as client,
    ):
        got = await client.get(f"/api/collections/{COLLECTION}", headers=_auth(admin))
        assert got.status_code == 200, got.text
        stored = got.json()["collection"]["config"]
        assert stored["sheet"]["spreadsheet_id"] == "sheet-a"
        assert stored["cleaning"]["webapp_secret"] == SECRET_MASK
