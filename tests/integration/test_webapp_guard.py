"""The Apps Script web-app URL comes from a collection's settings: it passes the page fetcher's
address guard on every hop, and only Google's hosts are quoted in errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from tests.support.cleaning import failed_run
from tests.support.netguard import LocalHttpServer, LoopbackOnlyTransport, Reply, StaticResolver
from wipsvc.adapters.apps_script import AppsScriptWebAppCleaner
from wipsvc.collection import CleaningConfig

GOOGLE = "script.google.com"


@pytest.fixture
def server() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as running:
        yield running


def cleaner(
    url: str, transport: LoopbackOnlyTransport, allowed: tuple[str, ...] = (GOOGLE,)
) -> AppsScriptWebAppCleaner:
    config = CleaningConfig(backend="apps_script_webapp", webapp_url=url, webapp_secret=SecretStr("s3cret"))
    resolver = StaticResolver({GOOGLE: ["127.0.0.1"], "metadata.internal": ["169.254.169.254"]})
    return AppsScriptWebAppCleaner(
        config, worksheet="Products", transport=transport, resolver=resolver, allowed_hosts=allowed
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:9/internal",
        "http://[::ffff:127.0.0.1]:9/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.internal/computeMetadata/v1/",
    ],
)
async def test_an_internal_webapp_url_is_refused_before_connecting(url: str) -> None:
    transport = LoopbackOnlyTransport()
    webapp = cleaner(url, transport)
    error = await failed_run(webapp)
    assert "refused" in error.message
    assert transport.requests == []
    assert not error.transient


@pytest.mark.parametrize("status", [302, 303, 307])
async def test_a_redirect_to_an_internal_address_is_refused(server: LocalHttpServer, status: int) -> None:
    server.routes["/exec"] = lambda _: Reply(status, [("Location", "http://127.0.0.2:9/internal")])
    transport = LoopbackOnlyTransport()
    webapp = cleaner(f"http://{GOOGLE}:{server.port}/exec", transport)
    error = await failed_run(webapp)
    # The first hop reached the allowed host; the second was refused before any connection.
    assert [r.url.host for r in transport.requests] == ["127.0.0.1"]
    assert "127.0.0.2" in error.message
    assert "refused" in error.message


async def test_a_307_does_not_carry_the_secret_to_another_origin(server: LocalHttpServer) -> None:
    server.routes["/exec"] = lambda _: Reply(307, [("Location", f"http://127.0.0.1:{server.port}/other")])
    transport = LoopbackOnlyTransport()
    webapp = cleaner(f"http://{GOOGLE}:{server.port}/exec", transport, allowed=(GOOGLE, "127.0.0.1"))
    error = await failed_run(webapp)
    assert "another origin" in error.message
    assert [r.path for r in server.requests] == ["/exec"]


async def test_an_allowed_internal_host_is_reached_but_not_quoted(server: LocalHttpServer) -> None:
    secret_page = b"<html>root:x:0:0 internal admin token abc123</html>"
    server.routes["/internal"] = lambda _: Reply(200, [("Content-Type", "text/html")], secret_page)
    server.routes["/json"] = lambda _: Reply(
        200, [("Content-Type", "application/json")], b'{"ok": false, "error": "db password is hunter2"}'
    )
    transport = LoopbackOnlyTransport()
    for path, leaked in (("/internal", "abc123"), ("/json", "hunter2")):
        webapp = cleaner(server.url(path), transport, allowed=("127.0.0.1",))
        error = await failed_run(webapp)
        assert leaked not in error.message
        assert "not quoted" in error.message
    assert [r.path for r in server.requests] == ["/internal", "/json"]


async def test_googles_answer_is_quoted_on_one_clean_line(server: LocalHttpServer) -> None:
    body = ("<p>Exception:\n  TypeError\x00 in doPost</p>\r\n" * 40).encode()
    server.routes["/exec"] = lambda _: Reply(200, [("Content-Type", "text/html")], body)
    transport = LoopbackOnlyTransport()
    webapp = cleaner(f"http://{GOOGLE}:{server.port}/exec", transport)
    error = await failed_run(webapp)
    quoted = error.message.removeprefix("Apps Script web app answered non-JSON: ")
    assert quoted.startswith("Exception: TypeError in doPost")
    assert len(quoted) <= 200
    assert "\n" not in quoted and "\r" not in quoted and "\x00" not in quoted
