"""Requests to URLs that come from a collection's settings, under the page fetcher's address policy.

Whoever may edit a collection's settings must not be able to point the service at an internal
address and read the answer back. So such a URL (an Apps Script web app) is vetted like a
product page: resolved once, refused unless every address is public or allowed
(``WIPSVC_SCRAPE_ALLOWED_HOSTS``), connected to at the vetted address, and each redirect is
vetted again. What is quoted from an answer depends on who gave it: Google's own hosts may
be quoted (one line, at most 200 characters); any other host only by status and content type.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from wipsvc.adapters.addresses import parse_url, redact_url
from wipsvc.adapters.scraper import REDIRECT_STATUSES, SafeFetcher
from wipsvc.domain.errors import StepError
from wipsvc.text import one_line

MAX_QUOTE_CHARS = 200
_GOOGLE_HOSTS = ("script.google.com", "script.googleusercontent.com")
_GOOGLE_DOMAINS = (".googleapis.com",)


@dataclass(frozen=True, slots=True)
class GuardedAnswer:
    """An answer read whole (within the byte cap)."""

    url: str
    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def host(self) -> str:
        return str(httpx.URL(self.url).host)

    @property
    def content_type(self) -> str:
        value = str(self.headers.get("content-type", ""))
        return value.partition(";")[0].strip().lower()

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> object:
        return json.loads(self.content)


def is_google_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in _GOOGLE_HOSTS or host.endswith(_GOOGLE_DOMAINS)


def quote_answer(answer: GuardedAnswer, text: str | None = None) -> str:
    """What an error message may show of ``answer``: from Google, ``text`` (default: the body)
    on one line; from any other host, only its status and content type."""
    if is_google_host(answer.host):
        shown = text if text is not None else re.sub(r"<[^>]*>", " ", answer.text)
        return one_line(shown, MAX_QUOTE_CHARS)
    kind = answer.content_type or "no content type"
    return f"HTTP {answer.status_code}, {kind} from {answer.host} (not quoted: not a Google host)"


async def request_once(
    guard: SafeFetcher,
    method: str,
    url: str,
    *,
    json_body: object = None,
    time_limit: float,
    max_bytes: int = 1_000_000,
    raw_json: bytes | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> GuardedAnswer:
    """One request, no redirect followed; StepError if the address is refused or the call fails.
    ``raw_json`` sends JSON already encoded (when the exact bytes are signed)."""
    target = parse_url(url)
    shown = redact_url(url)
    headers = {"Accept": "application/json, text/plain;q=0.5, */*;q=0.1", **(extra_headers or {})}
    content = raw_json
    if raw_json is not None:
        headers["Content-Type"] = "application/json"
    elif json_body is not None:
        content = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    try:
        async with asyncio.timeout(time_limit):
            addresses = await guard.vet(str(target))
            response = await guard.send_vetted(
                method, target, addresses, headers=headers, content=content, read_timeout=time_limit
            )
            try:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise StepError(f"answer too large: more than {max_bytes} bytes from {shown}")
            except httpx.TransportError as exc:
                raise StepError(
                    f"connection failed reaching {shown}: {type(exc).__name__}", transient=True
                ) from None
            finally:
                await response.aclose()
    except TimeoutError:
        raise StepError(f"timed out after {time_limit} s reaching {shown}", transient=True) from None
    return GuardedAnswer(str(target), response.status_code, response.headers, bytes(body))


async def request_following_redirects(
    guard: SafeFetcher,
    method: str,
    url: str,
    *,
    json_body: object = None,
    time_limit: float,
    max_redirects: int = 5,
) -> GuardedAnswer:
    """``request_once`` along redirects, each hop vetted. 301-303 turn into a GET without the
    body; 307 and 308 keep it only within the same origin (the body may carry a secret)."""
    current = url
    for _ in range(max_redirects + 1):
        answer = await request_once(guard, method, current, json_body=json_body, time_limit=time_limit)
        location = answer.headers.get("location")
        if answer.status_code not in REDIRECT_STATUSES or not location:
            return answer
        target = urljoin(current, location)
        if answer.status_code in (307, 308):
            if json_body is not None and _origin(target) != _origin(current):
                raise StepError(f"refused a redirect of the request to another origin: {redact_url(target)}")
        else:
            method, json_body = "GET", None
        current = target
    raise StepError(f"too many redirects ({max_redirects}) from {redact_url(url)}")


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port
