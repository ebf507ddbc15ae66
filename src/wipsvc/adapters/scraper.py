"""Fetching product pages without letting a submitted URL reach private networks.

Every hop of a fetch is vetted: the host is resolved once, every address it resolves to
must be public (or explicitly allowed), and the connection goes to the vetted address so
that a second DNS answer cannot swap in a private one (DNS rebinding).

The redirect loop, the vetted connection and the reading of a page are here; the address policy
is in :mod:`wipsvc.adapters.addresses`, the cookies a shop sets between redirects in
:mod:`wipsvc.adapters.fetch_cookies`, and how a page's bytes become text in
:mod:`wipsvc.adapters.page_decoding`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import TracebackType
from typing import Any, Self
from urllib.parse import urljoin

import httpx

from wipsvc.adapters.addresses import (
    IPAddress,
    IPNetwork,
    address_problem,
    parse_url,
    redact_url,
    resolve_with_system_dns,
    show_address,
)
from wipsvc.adapters.base import FetchedPage
from wipsvc.adapters.fetch_cookies import FetchCookies
from wipsvc.adapters.page_decoding import HTML_TYPES, charset_of, looks_like_html
from wipsvc.adapters.retry_after import retry_after_seconds
from wipsvc.config import Settings
from wipsvc.domain.errors import StepError

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class SafeFetcher:
    """``PageFetcher`` that refuses non-public destinations, caps size and time, and follows redirects."""

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        max_redirects: int,
        allowed_hosts: Sequence[str] = (),
        user_agent: str,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._user_agent = user_agent
        self._resolver: Resolver = resolver or resolve_with_system_dns
        self._allowed_names: set[str] = set()
        self._allowed_networks: list[IPNetwork] = []
        for entry in allowed_hosts:
            try:
                self._allowed_networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                self._allowed_names.add(entry.strip().lower().rstrip("."))
        self._client = httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            # A shared jar would hand one site's cookies to any other site on the same IP; cookies
            # live only within one fetch instead (see FetchCookies).
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Self:
        options: dict[str, Any] = {
            "timeout": settings.scrape_timeout_seconds,
            "max_bytes": settings.scrape_max_bytes,
            "max_redirects": settings.scrape_max_redirects,
            "allowed_hosts": settings.scrape_allowed_hosts,
            "user_agent": settings.scrape_user_agent,
        }
        options.update(overrides)
        return cls(**options)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def fetch(self, url: str) -> FetchedPage:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._follow_redirects(url)
        except TimeoutError:
            raise self._timed_out(redact_url(url)) from None

    async def vet(self, url: str) -> list[str]:
        """Resolve ``url``'s host and return the addresses it may be fetched from; StepError if refused."""
        return await self._vet(parse_url(url))

    async def send_vetted(
        self,
        method: str,
        url: httpx.URL,
        addresses: list[str],
        *,
        headers: dict[str, str],
        content: bytes | None,
        read_timeout: float,
    ) -> httpx.Response:
        """Send one request to one of ``addresses`` (from :meth:`vet`), as a streamed response."""
        return await self._send(
            url, addresses, None, method=method, headers=headers, content=content, read_timeout=read_timeout
        )

    async def _follow_redirects(self, url: str) -> FetchedPage:
        current = parse_url(url)
        cookies = FetchCookies()
        # Returning to a URL with new cookies is a cookie check, not a loop; the same URL with
        # the same cookies would be answered the same way forever.
        visited = {cookies.state_at(current)}
        redirects = 0
        while True:
            addresses = await self._vet(current)
            response = await self._send(current, addresses, cookies.header_for(current))
            try:
                location = response.headers.get("location")
                if response.status_code not in REDIRECT_STATUSES or not location:
                    return await self._read_page(current, response)
                cookies.store(current, response)
                target = parse_url(urljoin(str(current), location))
                redirects += 1
                if cookies.state_at(target) in visited:
                    raise StepError(f"redirect loop at {redact_url(str(target))}")
                if redirects > self._max_redirects:
                    raise StepError(f"too many redirects ({redirects}) fetching {redact_url(url)}")
                logger.debug("redirect %s -> %s", redact_url(str(current)), redact_url(str(target)))
                visited.add(cookies.state_at(target))
                current = target
            finally:
                await response.aclose()

    async def _vet(self, url: httpx.URL) -> list[str]:
        host = url.raw_host.decode("ascii")
        shown = redact_url(str(url))
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            problem = self._refusal(literal)
            if problem is not None:
                raise StepError(f"refused {shown}: {show_address(literal)} is {problem}")
            return [host]
        try:
            answers = await self._resolver(host, url.port or (443 if url.scheme == "https" else 80))
            addresses = [ipaddress.ip_address(answer) for answer in answers]
        except socket.gaierror as exc:
            raise StepError(
                f"could not resolve {host} fetching {shown}", transient=exc.errno == socket.EAI_AGAIN
            ) from None
        except (OSError, ValueError):
            raise StepError(f"could not resolve {host} fetching {shown}", transient=True) from None
        if not addresses:
            raise StepError(f"could not resolve {host} fetching {shown}")
        if host.lower().rstrip(".") not in self._allowed_names:
            for address in addresses:
                problem = self._refusal(address)
                if problem is not None:
                    raise StepError(f"refused {shown}: {host} resolves to {show_address(address)}, {problem}")
        return [str(address) for address in addresses]

    def _timed_out(self, shown_url: str) -> StepError:
        return StepError(f"timed out after {self._timeout} s fetching {shown_url}", transient=True)

    def _refusal(self, address: IPAddress) -> str | None:
        if any(address in network for network in self._allowed_networks):
            return None
        return address_problem(address)

    async def _send(
        self,
        url: httpx.URL,
        addresses: list[str],
        cookie: str | None,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        host = url.raw_host.decode("ascii")
        headers = {
            "Host": url.netloc.decode("ascii"),
            "User-Agent": self._user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
            **(headers or {}),
        }
        if cookie:
            headers["Cookie"] = cookie
        extensions: dict[str, Any] = {}
        if url.scheme == "https":
            extensions["sni_hostname"] = host
            # httpx pools connections by the IP we connect to, so a kept-alive TLS connection
            # verified for one host name could otherwise carry a request for another.
            headers["Connection"] = "close"
        shown = redact_url(str(url))
        for address in addresses:
            request = self._client.build_request(
                method,
                url.copy_with(host=address),
                headers=headers,
                content=content,
                extensions=extensions,
                timeout=read_timeout if read_timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            try:
                return await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                logger.debug("connecting to %s for %s failed: %s", address, shown, exc)
            except httpx.TimeoutException:
                raise self._timed_out(shown) from None
            except httpx.HTTPError as exc:
                raise StepError(f"connection failed fetching {shown}: {exc}", transient=True) from None
        raise StepError(f"could not connect to {host} fetching {shown}", transient=True)

    async def _read_page(self, url: httpx.URL, response: httpx.Response) -> FetchedPage:
        shown = redact_url(str(url))
        status = response.status_code
        if not 200 <= status < 300:
            raise StepError(
                f"HTTP {status} fetching {shown}",
                transient=status == 429 or status >= 500,
                retry_after=retry_after_seconds(response.headers),
            )
        media_type, _, params = response.headers.get("content-type", "").partition(";")
        media_type = media_type.strip().lower()
        if media_type and media_type not in HTML_TYPES:
            raise StepError(f"not an HTML page: {shown} is {media_type}")
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise StepError(f"page too large: more than {self._max_bytes} bytes at {shown}")
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise StepError(f"page too large: more than {self._max_bytes} bytes at {shown}")
        except httpx.TimeoutException:
            raise self._timed_out(shown) from None
        except httpx.TransportError as exc:
            raise StepError(f"connection failed fetching {shown}: {exc}", transient=True) from None
        except httpx.HTTPError as exc:
            raise StepError(f"unreadable response from {shown}: {exc}") from None
        if not media_type:
            if not looks_like_html(bytes(body)):
                raise StepError(f"not an HTML page: {shown} has no content type and does not look like HTML")
            media_type = "text/html"
        text = bytes(body).decode(charset_of(bytes(body), params), errors="replace")
        logger.debug("fetched %s: HTTP %d, %d bytes", shown, status, len(body))
        return FetchedPage(url=str(url), status_code=status, content_type=media_type, text=text)
