"""SafeFetcher: the SSRF guard, redirects, limits and decoding.

All traffic stays on 127.0.0.1: names resolve through injected answers, and every fetcher
uses LoopbackOnlyTransport, whose violations are checked after each test.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.netguard import (
    LocalHttpServer,
    LoopbackOnlyTransport,
    NetworkViolation,
    StaticResolver,
    static_resolver,
)
from wipsvc.adapters.addresses import address_problem, redact_url, resolve_with_system_dns
from wipsvc.adapters.scraper import SafeFetcher
from wipsvc.config import Settings
from wipsvc.domain.errors import StepError

DNS = {
    "shop.test": ["127.0.0.1"],
    "other.test": ["127.0.0.1"],
    "internal.test": ["10.0.0.5"],
    "mapped.test": ["::ffff:10.0.0.1"],
    "public.test": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "mixed.test": ["93.184.216.34", "10.0.0.7"],
}

MakeFetcher = Callable[..., SafeFetcher]


@pytest.fixture
def server() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as running:
        yield running


@pytest.fixture
def resolver() -> StaticResolver:
    return static_resolver(DNS)


@pytest.fixture
async def make_fetcher(resolver: StaticResolver) -> AsyncIterator[MakeFetcher]:
    transports: list[LoopbackOnlyTransport] = []
    fetchers: list[SafeFetcher] = []

    def make(**overrides: Any) -> SafeFetcher:
        transport = LoopbackOnlyTransport()
        transports.append(transport)
        options: dict[str, Any] = {
            "timeout": 5.0,
            "max_bytes": 100_000,
            "max_redirects": 5,
            "user_agent": "wipsvc-test/1.0",
            "resolver": resolver,
            "transport": transport,
        }
        options.update(overrides)
        fetcher = SafeFetcher(**options)
        fetchers.append(fetcher)
        return fetcher

    yield make
    for fetcher in fetchers:
        await fetcher.aclose()
    assert [v for transport in transports for v in transport.violations] == []


async def refusal(fetcher: SafeFetcher, url: str) -> StepError:
    with pytest.raises(StepError) as caught:
        await fetcher.fetch(url)
    return caught.value


# --- refused destinations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/", "refused http://127.0.0.1/: 127.0.0.1 is a loopback address"),
        ("http://10.0.0.1/", "refused http://10.0.0.1/: 10.0.0.1 is a private address"),
        (
            "http://169.254.169.254/latest/meta-data",
            "refused http://169.254.169.254/latest/meta-data: 169.254.169.254 is a cloud metadata address",
        ),
        ("http://[::1]:8080/", "::1 is a loopback address"),
        ("http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1 is an IPv4-mapped IPv6 address"),
        ("http://[::ffff:127.0.0.1]/", "is an IPv4-mapped IPv6 address"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata address"),
        ("http://[2002:a00:1::]/", "embedding 10.0.0.1 (a private address)"),
        ("http://[64:ff9b::a9fe:a9fe]/", "embedding 169.254.169.254 (a cloud metadata address)"),
        ("http://100.64.0.1/", "100.64.0.1 is a private address"),
        ("http://198.18.0.1/", "198.18.0.1 is a private address"),
        ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
    ],
)
async def test_refuses_non_public_ip_literals(make_fetcher: MakeFetcher, url: str, message: str) -> None:
    error = await refusal(make_fetcher(), url)
    assert message in error.message
    assert error.transient is False


async def test_refuses_a_host_name_resolving_to_a_private_address(
    make_fetcher: MakeFetcher, resolver: StaticResolver
) -> None:
    error = await refusal(make_fetcher(), "https://internal.test/item")
    assert error.message == (
        "refused https://internal.test/item: internal.test resolves to 10.0.0.5, a private address"
    )
    assert resolver.calls == [("internal.test", 443)]


async def test_refuses_when_any_resolved_address_is_private(make_fetcher: MakeFetcher) -> None:
    error = await refusal(make_fetcher(), "http://mixed.test/")
    assert "mixed.test resolves to 10.0.0.7, a private address" in error.message


async def test_refuses_a_name_resolving_to_an_ipv4_mapped_address(make_fetcher: MakeFetcher) -> None:
    error = await refusal(make_fetcher(), "http://mapped.test/")
    assert "mapped.test resolves to ::ffff:10.0.0.1, an IPv4-mapped IPv6 address" in error.message


async def test_refuses_loopback_by_name_unless_that_name_is_allowed(
    make_fetcher: MakeFetcher, server: LocalHttpServer
) -> None:
    url = f"http://shop.test:{server.port}/product"
    error = await refusal(make_fetcher(), url)
    assert "shop.test resolves to 127.0.0.1, a loopback address" in error.message

    page = await make_fetcher(allowed_hosts=["shop.test"]).fetch(url)
    assert "Oak Chair" in page.text
    # The connection went to the vetted address while the server still saw the real host name.
    assert server.requests[-1].headers["host"] == f"shop.test:{server.port}"


async def test_allowed_hosts_admit_private_addresses_without_connecting(make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher(allowed_hosts=["10.0.0.0/8", "169.254.169.254", "internal.test"])
    assert await fetcher.vet("http://10.0.0.1/") == ["10.0.0.1"]
    assert await fetcher.vet("http://169.254.169.254/latest/meta-data") == ["169.254.169.254"]
    assert await fetcher.vet("http://internal.test/") == ["10.0.0.5"]
    with pytest.raises(StepError, match=r"172\.16\.0\.1 is a private address"):
        await fetcher.vet("http://172.16.0.1/")


async def test_public_addresses_pass_the_vetting(make_fetcher: MakeFetcher) -> None:
    addresses = await make_fetcher().vet("https://public.test/p/1")
    assert addresses == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://shop.test/file", "only http and https URLs are fetched"),
        ("file:///etc/passwd", "only http and https URLs are fetched"),
        ("http:///no-host", "the URL has no host"),
        ("http://user:hunter2@shop.test/", "URLs with a user name or password are not fetched"),
    ],
)
async def test_refuses_unsupported_urls(make_fetcher: MakeFetcher, url: str, reason: str) -> None:
    error = await refusal(make_fetcher(), url)
    assert reason in error.message
    assert "hunter2" not in error.message


async def test_unknown_host_is_a_permanent_resolution_error(make_fetcher: MakeFetcher) -> None:
    error = await refusal(make_fetcher(), "http://nowhere.test/")
    assert error.message == "could not resolve nowhere.test fetching http://nowhere.test/"
    assert error.transient is False


async def test_messages_redact_credentials_in_query_strings(make_fetcher: MakeFetcher) -> None:
    error = await refusal(make_fetcher(), "http://10.0.0.1/p?id=7&access_token=abc123")
    assert "abc123" not in error.message
    assert "id=7&access_token=REDACTED" in error.message


# --- redirects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "message"),
    [
        (
            "http://169.254.169.254/latest/meta-data",
            "refused http://169.254.169.254/latest/meta-data: 169.254.169.254 is a cloud metadata address",
        ),
        ("http://internal.test/admin", "internal.test resolves to 10.0.0.5, a private address"),
    ],
)
async def test_refuses_a_redirect_to_a_private_address(
    make_fetcher: MakeFetcher, server: LocalHttpServer, location: str, message: str
) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.1"])
    error = await refusal(fetcher, server.url(f"/redirect?to={location}"))
    assert message in error.message
    assert error.transient is False
    assert [request.path for request in server.requests] == ["/redirect"]


async def test_redirect_loop(make_fetcher: MakeFetcher, server: LocalHttpServer) -> None:
    error = await refusal(make_fetcher(allowed_hosts=["127.0.0.1"]), server.url("/loop/a"))
    assert error.message == f"redirect loop at {server.url('/loop/a')}"
    assert error.transient is False


async def test_a_cookie_check_redirecting_to_itself_is_not_a_loop(
    make_fetcher: MakeFetcher, server: LocalHttpServer
) -> None:
    page = await make_fetcher(allowed_hosts=["127.0.0.1"]).fetch(server.url("/cookie-gate"))
    assert "Oak Chair" in page.text
    assert [request.headers.get("cookie") for request in server.requests] == [None, "visited=1"]


async def test_too_many_redirects(make_fetcher: MakeFetcher, server: LocalHttpServer) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.1"], max_redirects=5)
    error = await refusal(fetcher, server.url("/chain?left=9"))
    assert error.message == f"too many redirects (6) fetching {server.url('/chain?left=9')}"
    assert len(server.requests) == 6

    page = await fetcher.fetch(server.url("/chain?left=5"))
    assert page.url == server.url("/chain?left=0")


async def test_cookies_follow_same_origin_redirects_only(
    make_fetcher: MakeFetcher, server: LocalHttpServer
) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.0/8"])
    await fetcher.fetch(f"http://shop.test:{server.port}/set-cookie-redirect?to=/product")
    assert server.requests[-1].headers.get("cookie") == "session=s3cret"

    other = f"http://other.test:{server.port}/product"
    await fetcher.fetch(f"http://shop.test:{server.port}/set-cookie-redirect?to={other}")
    assert server.requests[-1].headers["host"] == f"other.test:{server.port}"
    assert "cookie" not in server.requests[-1].headers

    # Nothing survives from one fetch to the next.
    await fetcher.fetch(f"http://shop.test:{server.port}/product")
    assert "cookie" not in server.requests[-1].headers


# --- limits and responses -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/big?size=50000", "/big-stream?size=50000"])
async def test_refuses_a_page_over_the_size_cap(
    make_fetcher: MakeFetcher, server: LocalHttpServer, path: str
) -> None:
    error = await refusal(make_fetcher(allowed_hosts=["127.0.0.1"], max_bytes=10_000), server.url(path))
    assert error.message.startswith("page too large: more than 10000 bytes")
    assert error.transient is False


async def test_a_page_that_never_finishes_times_out(
    make_fetcher: MakeFetcher, server: LocalHttpServer
) -> None:
    fetcher = make_fetcher(allowed_hosts=["127.0.0.1"], timeout=0.5, max_bytes=10_000_000)
    started = time.monotonic()
    error = await refusal(fetcher, server.url("/trickle"))
    assert error.message == f"timed out after 0.5 s fetching {server.url('/trickle')}"
    assert error.transient is True
    assert time.monotonic() - started < 3


async def test_refuses_non_html(make_fetcher: MakeFetcher, server: LocalHttpServer) -> None:
    error = await refusal(make_fetcher(allowed_hosts=["127.0.0.1"]), server.url("/json"))
    assert error.message == f"not an HTML page: {server.url('/json')} is application/json"
    assert error.transient is False


@pytest.mark.parametrize(("code", "transient"), [(404, False), (410, False), (429, True), (503, True)])
async def test_http_errors_are_transient_only_for_429_and_5xx(
    make_fetcher: MakeFetcher, server: LocalHttpServer, code: int, transient: bool
) -> None:
    url = server.url(f"/status?code={code}")
    error = await refusal(make_fetcher(allowed_hosts=["127.0.0.1"]), url)
    assert error.message == f"HTTP {code} fetching {url}"
    assert error.transient is transient


async def test_connection_refused_is_transient(make_fetcher: MakeFetcher, server: LocalHttpServer) -> None:
    with LocalHttpServer() as stopped:
        port = stopped.port
    error = await refusal(make_fetcher(allowed_hosts=["127.0.0.1"]), f"http://127.0.0.1:{port}/")
    assert error.message == f"could not connect to 127.0.0.1 fetching http://127.0.0.1:{port}/"
    assert error.transient is True


async def test_https_connects_to_the_vetted_address_with_sni_and_host_of_the_name(
    make_fetcher: MakeFetcher,
) -> None:
    with LocalHttpServer() as stopped:
        port = stopped.port  # nothing listens here any more: the TLS handshake never starts
    transport = LoopbackOnlyTransport()
    fetcher = make_fetcher(allowed_hosts=["shop.test"], transport=transport)
    error = await refusal(fetcher, f"https://shop.test:{port}/p?id=1")
    assert error.message == f"could not connect to shop.test fetching https://shop.test:{port}/p?id=1"
    assert transport.violations == []
    [request] = transport.requests
    assert request.url == httpx.URL(f"https://127.0.0.1:{port}/p?id=1")
    assert request.extensions["sni_hostname"] == "shop.test"
    assert request.headers["host"] == f"shop.test:{port}"
    assert request.headers["connection"] == "close"


async def test_fetches_a_product_page_through_the_allowed_loopback_server(
    make_fetcher: MakeFetcher, server: LocalHttpServer
) -> None:
    page = await make_fetcher(allowed_hosts=["127.0.0.1"]).fetch(server.url("/product"))
    assert page.url == server.url("/product")
    assert page.status_code == 200
    assert page.content_type == "text/html"
    assert '"name": "Oak Chair"' in page.text
    request = server.requests[-1]
    assert request.headers["user-agent"] == "wipsvc-test/1.0"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/latin1", "<h1>Café</h1>"), ("/meta-charset", "<h1>Café</h1>"), ("/no-content-type", "Oak Chair")],
)
async def test_decodes_declared_charsets_and_sniffs_untyped_html(
    make_fetcher: MakeFetcher, server: LocalHttpServer, path: str, expected: str
) -> None:
    page = await make_fetcher(allowed_hosts=["127.0.0.1"]).fetch(server.url(path))
    assert expected in page.text
    assert page.content_type == "text/html"


async def test_from_settings_reads_the_scrape_settings(resolver: StaticResolver) -> None:
    settings = Settings(scrape_allowed_hosts=["shop.test"], scrape_max_redirects=2)
    fetcher = SafeFetcher.from_settings(settings, resolver=resolver, transport=LoopbackOnlyTransport())
    try:
        assert await fetcher.vet("http://shop.test/") == ["127.0.0.1"]
        with pytest.raises(StepError, match=r"10\.0\.0\.1 is a private address"):
            await fetcher.vet("http://10.0.0.1/")
    finally:
        await fetcher.aclose()


# --- helpers --------------------------------------------------------------------------


def test_address_problem_accepts_public_addresses() -> None:
    assert address_problem(ipaddress.ip_address("93.184.216.34")) is None
    assert address_problem(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946")) is None
    assert address_problem(ipaddress.ip_address("192.168.1.1")) == "a private address"


def test_redact_url_drops_userinfo_and_fragment() -> None:
    assert (
        redact_url("https://bob:pw@shop.test/p?q=chair&sig=xyz#top")
        == "https://shop.test/p?q=chair&sig=REDACTED"
    )


async def test_system_resolver_parses_ip_literals_without_dns() -> None:
    assert await resolve_with_system_dns("127.0.0.1", 80) == ["127.0.0.1"]


async def test_static_resolver_fails_unknown_names_like_dns(resolver: StaticResolver) -> None:
    assert await resolver("SHOP.test.", 80) == ["127.0.0.1"]
    with pytest.raises(OSError, match="Name or service not known"):
        await resolver("unknown.test", 80)


async def test_loopback_guard_refuses_before_the_network_is_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[str] = []

    async def network(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        reached.append(str(request.url))
        return httpx.Response(200)

    # Stand in for the real connection pool, so that even a broken guard could send nothing.
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", network)
    transport = LoopbackOnlyTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(NetworkViolation):
            await client.get("http://192.0.2.1/")
        with pytest.raises(NetworkViolation):
            await client.get("http://localhost/")
        await client.get("http://127.0.0.1:9/")
    assert transport.violations == ["http://192.0.2.1/", "http://localhost/"]
    assert reached == ["http://127.0.0.1:9/"]
