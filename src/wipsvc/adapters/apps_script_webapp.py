"""Cleaning a finished row through a deployed Apps Script web app (``doPost(e)``).

Google answers the POST with a 302 to the rendered output, fetched with GET; a web app cannot
set status codes, so the script reports ``{"ok": false, "error": …}`` in its JSON. Script
errors and refusals are permanent; timeouts, 429 and 5xx are transient.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from wipsvc.adapters.guarded import GuardedAnswer, quote_answer, request_following_redirects
from wipsvc.adapters.retry_after import retry_after_seconds
from wipsvc.adapters.scraper import Resolver, SafeFetcher
from wipsvc.collection import CleaningConfig
from wipsvc.domain.errors import StepError
from wipsvc.limits import QuotaBucket

DEFAULT_TIMEOUT_SECONDS = 360.0  # Apps Script's own limit per execution is 6 minutes
WEBAPP_MAX_BYTES = 1_000_000  # a web app answers {ok, error}: anything larger is not one
WEBAPP_MAX_REDIRECTS = 5
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class AppsScriptWebAppCleaner:
    """POST ``{"secret", "sheet", "row", "sku"}`` to the web app; follow its 302; read ``{ok, error}``.

    The URL comes from a collection's settings, so every request and every redirect goes through
    the page fetcher's address guard (``guard``, or one built from ``allowed_hosts``, ``resolver``
    and ``transport``), and only Google's own hosts are quoted in errors.
    """

    def __init__(
        self,
        config: CleaningConfig,
        *,
        worksheet: str,
        guard: SafeFetcher | None = None,
        allowed_hosts: Sequence[str] = (),
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        bucket: QuotaBucket | None = None,
    ) -> None:
        if not config.webapp_url or config.webapp_secret is None:
            raise ValueError("cleaning backend apps_script_webapp needs webapp_url and webapp_secret")
        if urlsplit(config.webapp_url).scheme not in ("http", "https"):
            raise ValueError("webapp_url must be an http(s) URL")
        self.config, self.worksheet = config, worksheet
        self.url = config.webapp_url
        self._secret = config.webapp_secret.get_secret_value()
        self._owns_guard = guard is None
        self._guard = guard or SafeFetcher(
            timeout=timeout,
            max_bytes=WEBAPP_MAX_BYTES,
            max_redirects=WEBAPP_MAX_REDIRECTS,
            allowed_hosts=allowed_hosts,
            user_agent="wipsvc",
            resolver=resolver,
            transport=transport,
        )
        self._timeout = timeout
        self._bucket = bucket

    def transform(self, values: dict[str, str]) -> dict[str, str]:
        return values

    async def run(self, *, row_num: int, sku: str) -> None:
        payload = {"secret": self._secret, "sheet": self.worksheet, "row": row_num, "sku": sku}
        answer = await self._send("POST", payload)
        _check_answer(answer, throttled=self._bucket is not None)
        try:
            body = answer.json()
        except ValueError as exc:
            # doPost threw, or Google served a login page (web app not deployed for "Anyone").
            raise StepError(f"Apps Script web app answered non-JSON: {quote_answer(answer)}") from exc
        if not isinstance(body, dict) or "ok" not in body:
            raise StepError(f"Apps Script web app answered unexpectedly: {quote_answer(answer)}")
        if body["ok"] is not True:
            reason = quote_answer(answer, str(body.get("error") or "ok is false"))
            raise StepError(f"Apps Script web app error: {reason}")

    async def check(self) -> str:
        """GET the web-app URL: that runs ``doGet`` (if any), never ``doPost``, so nothing is cleaned.

        Any answer from the deployment proves URL and access settings; the secret can only be
        verified by ``doPost``, which would clean a row, so it is not checked here.
        """
        answer = await self._send("GET", None)
        _check_answer(answer)
        if answer.host == "accounts.google.com":
            raise StepError("Apps Script web app asks for a Google login: deploy it with access 'Anyone'")
        return f"Apps Script web app: deployment answered HTTP {answer.status_code} (secret not verified)"

    async def aclose(self) -> None:
        if self._owns_guard:
            await self._guard.aclose()

    async def _send(self, method: str, payload: dict[str, object] | None) -> GuardedAnswer:
        if self._bucket is None:
            return await self._exchange(method, payload)
        async with self._bucket.permit() as permit:
            answer = await self._exchange(method, payload)
            if answer.status_code == 429:
                permit.throttled(retry_after_seconds(answer.headers))  # pauses every job's calls
            return answer

    async def _exchange(self, method: str, payload: dict[str, object] | None) -> GuardedAnswer:
        try:
            return await request_following_redirects(
                self._guard,
                method,
                self.url,
                json_body=payload,
                time_limit=self._timeout,
                max_redirects=WEBAPP_MAX_REDIRECTS,
            )
        except StepError as exc:
            raise StepError(f"Apps Script web app: {exc.message}", transient=exc.transient) from exc


def _check_answer(answer: GuardedAnswer, *, throttled: bool = False) -> None:
    """A StepError for any answer but 200; ``throttled``: a 429 has paused the call's bucket."""
    if answer.status_code == 200:
        return
    hint = " (web app not found: check the deployment URL)" if answer.status_code == 404 else ""
    raise StepError(
        f"Apps Script web app HTTP {answer.status_code}: {quote_answer(answer)}{hint}",
        transient=answer.status_code in _TRANSIENT_STATUS,
        retry_after=retry_after_seconds(answer.headers),
        throttled=throttled and answer.status_code == 429,
    )
