"""Cleaning a finished row with the sheet's own Apps Script, in one of two ways.

``AppsScriptApiCleaner`` calls the Apps Script API (``scripts.run``): the script must be deployed
as an "API executable" in the same Cloud project as the OAuth client, and the call needs a *user*
token (service accounts are refused), loaded from an authorized-user JSON with a refresh token.

``AppsScriptWebAppCleaner`` POSTs to a deployed web app's ``doPost(e)`` with a shared secret. Google
answers with a 302 to the rendered output, fetched with GET; a web app cannot set status codes, so
the script reports ``{"ok": false, "error": …}`` in its JSON.

Both leave values untouched before writing (``transform`` is the identity) and clean the written
row in ``run``. Errors become ``StepError``: script errors and refusals are permanent; timeouts,
429 and 5xx are transient. Given a quota bucket, every request first takes a token from it and a
429 pauses it for every job. An execution may take up to 6 minutes, hence the 360 s default timeout.
``check()`` validates the configuration without cleaning anything and returns a one-line summary
(it raises ``StepError`` with the reason when something is wrong).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import google.auth.exceptions
import httpx
import requests
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2.credentials import Credentials

from wipsvc.adapters.apps_script_webapp import AppsScriptWebAppCleaner
from wipsvc.adapters.retry_after import retry_after_seconds
from wipsvc.collection import CleaningConfig
from wipsvc.domain.errors import StepError
from wipsvc.limits import QuotaBucket
from wipsvc.text import one_line

DEFAULT_TIMEOUT_SECONDS = 360.0  # Apps Script's own limit per execution is 6 minutes
CONNECT_TIMEOUT_SECONDS = 15.0
# check() calls this function, which no script defines: Apps Script answers "Script function not
# found", which proves token, script id and API-executable deployment without running any code.
CHECK_FUNCTION = "wipsvcConfigCheckNoSuchFunction"

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
__all__ = ["AppsScriptApiCleaner", "AppsScriptWebAppCleaner"]

# Operation error codes: 10 = SCRIPT_TIMEOUT and 1 = CANCELLED may pass on a later try;
# 3 = INVALID_ARGUMENT is an exception thrown by the script.
_TRANSIENT_EXECUTION_CODES = frozenset({1, 10})


def load_user_credentials(path: str | Path) -> Credentials:
    """An authorized-user credential (refresh token) from its JSON file."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
        credentials: Credentials = Credentials.from_authorized_user_info(info)  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as exc:
        raise StepError(f"Apps Script OAuth credentials {path} unusable: {exc}") from exc
    # from_authorized_user_info always sets Google's token endpoint and ignores the file's
    # ``token_uri``; honour it so that emulators and test token endpoints work.
    if isinstance(info.get("token_uri"), str):
        credentials = credentials.with_token_uri(info["token_uri"])
    return credentials


class _Http:
    """An httpx client (injected, or owned and closed here) with per-request timeout and redirects."""

    def __init__(
        self,
        client: httpx.AsyncClient | None,
        transport: httpx.AsyncBaseTransport | None,
        timeout: float,
        *,
        follow_redirects: bool,
        bucket: QuotaBucket | None = None,
    ) -> None:
        self._owned = client is None
        self.client = (
            client if client is not None else httpx.AsyncClient(transport=transport, max_redirects=5)
        )
        self.timeout = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_SECONDS)
        self.follow_redirects = follow_redirects
        self.bucket = bucket

    async def send(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.bucket is None:
            return await self._send(what, method, url, **kwargs)
        async with self.bucket.permit() as permit:
            response = await self._send(what, method, url, **kwargs)
            if response.status_code == 429:
                permit.throttled(retry_after_seconds(response.headers))  # pauses every job's calls
            return response

    async def _send(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.client.request(
                method, url, timeout=self.timeout, follow_redirects=self.follow_redirects, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise StepError(f"{what} timed out ({type(exc).__name__})", transient=True) from exc
        except httpx.TooManyRedirects as exc:
            raise StepError(f"{what}: too many redirects") from exc
        except httpx.HTTPError as exc:
            raise StepError(f"{what} failed: {type(exc).__name__}: {exc}", transient=True) from exc

    async def aclose(self) -> None:
        if self._owned:
            await self.client.aclose()


def _google_error(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return one_line(f"{error.get('status', '')} {error.get('message', '')}") or response.reason_phrase
    except (ValueError, AttributeError):
        return _text_snippet(response.text) or response.reason_phrase


def _text_snippet(body: str) -> str:
    return one_line(re.sub(r"<[^>]*>", " ", body))


class AppsScriptApiCleaner:
    """``POST {api_url}/v1/scripts/{scriptId}:run`` with ``(worksheet, row_num, sku)``."""

    def __init__(
        self,
        config: CleaningConfig,
        *,
        worksheet: str,
        api_url: str = "https://script.googleapis.com",
        credentials: Credentials | None = None,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        bucket: QuotaBucket | None = None,
    ) -> None:
        if not config.script_id:
            raise ValueError("cleaning backend apps_script_api needs script_id")
        if credentials is None and not config.oauth_credentials_file:
            raise ValueError("cleaning backend apps_script_api needs oauth_credentials_file")
        self.config, self.worksheet = config, worksheet
        self.url = f"{api_url.rstrip('/')}/v1/scripts/{quote(config.script_id, safe='')}:run"
        self._credentials = credentials
        self._http = _Http(client, transport, timeout, follow_redirects=False, bucket=bucket)
        self._token_lock = asyncio.Lock()
        self._auth_session: requests.Session | None = None

    def transform(self, values: dict[str, str]) -> dict[str, str]:
        return values

    async def run(self, *, row_num: int, sku: str) -> None:
        await self._execute(self.config.function, [self.worksheet, row_num, sku])

    async def check(self) -> str:
        await self._token(force=True)
        try:
            await self._execute(CHECK_FUNCTION, [])
        except StepError as exc:
            if "function not found" not in exc.message.lower():
                raise
            return (
                f"Apps Script API: OAuth token refreshed; script {self.config.script_id} answered "
                f"(a call to the non-existent {CHECK_FUNCTION} was refused as expected; nothing ran)"
            )
        return f"Apps Script API: OAuth token refreshed; script {self.config.script_id} answered"

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._auth_session is not None:
            self._auth_session.close()

    async def _execute(self, function: str, parameters: list[str | int]) -> Any:
        payload = {"function": function, "parameters": parameters, "devMode": False}
        for attempt in range(2):
            token = await self._token(force=attempt > 0)
            headers = {"Authorization": f"Bearer {token}"}
            response = await self._http.send(
                "Apps Script call", "POST", self.url, json=payload, headers=headers
            )
            # A 401 with a token we believed valid (revoked, or expired early): refresh once.
            if response.status_code != 401:
                break
        if response.status_code != 200:
            hint = " (is the script deployed as API executable in this Cloud project?)"
            raise StepError(
                f"Apps Script API error {response.status_code}: {_google_error(response)}"
                + (hint if response.status_code in (403, 404) else ""),
                transient=response.status_code in _TRANSIENT_STATUS,
                retry_after=retry_after_seconds(response.headers),
                # The bucket has paused for this 429 (in _Http.send): the next try waits there.
                throttled=response.status_code == 429 and self._http.bucket is not None,
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise StepError(f"Apps Script API answered non-JSON: {_text_snippet(response.text)}") from exc
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            raise _execution_error(body["error"])
        if not isinstance(body, dict) or "response" not in body:
            raise StepError(f"Apps Script API answered unexpectedly: {str(body)[:200]}")
        return body["response"].get("result")

    async def _token(self, *, force: bool = False) -> str:
        async with self._token_lock:
            if self._credentials is None:
                assert self.config.oauth_credentials_file is not None
                self._credentials = load_user_credentials(self.config.oauth_credentials_file)
            credentials = self._credentials
            if force or not credentials.valid:
                if self._auth_session is None:
                    self._auth_session = requests.Session()
                request = GoogleAuthRequest(self._auth_session)
                # google-auth is synchronous (requests): refresh in a thread, one at a time.
                try:
                    await asyncio.to_thread(credentials.refresh, request)
                except google.auth.exceptions.RefreshError as exc:
                    # args[0] is Google's "error: description"; str(exc) would add the raw body's repr.
                    reason = " ".join(str(exc.args[0] if exc.args else exc).split())[:300]
                    raise StepError(
                        f"Apps Script OAuth token refresh refused: {reason}", transient=exc.retryable
                    ) from exc
                except google.auth.exceptions.TransportError as exc:
                    cause = exc.__cause__ or exc
                    raise StepError(
                        f"Apps Script OAuth token refresh failed: cannot reach {credentials.token_uri} "
                        f"({type(cause).__name__})",
                        transient=True,
                    ) from exc
            return str(credentials.token)


def _execution_error(error: dict[str, Any]) -> StepError:
    """``{"code", "message", "details": [ExecutionError]}`` → "Apps Script error: <msg> (fn:line)"."""
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    detail = next((d for d in details if "errorMessage" in d), details[0] if details else {})
    message = str(detail.get("errorMessage") or error.get("message") or "unknown error")
    if detail.get("errorType") not in (None, "", "ScriptError"):
        message = f"{detail['errorType']}: {message}"
    message = one_line(message)  # Google's answer, quoted: one line, at most 200 characters
    frames = [
        f"{frame.get('function', '?')}:{frame.get('lineNumber', '?')}"
        for frame in detail.get("scriptStackTraceElements") or []
        if isinstance(frame, dict)
    ]
    stack = f" ({', '.join(frames)})" if frames else ""
    return StepError(
        f"Apps Script error: {message}{stack}", transient=error.get("code") in _TRANSIENT_EXECUTION_CODES
    )
