"""Google Sheets API plumbing for :mod:`wipsvc.adapters.google_sheets`.

Credentials, the gspread-asyncio client manager, the adapter that points requests at a
configurable base URL, and the classification of Google's errors into one-line messages,
transient or not.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import google.auth.exceptions
import gspread
import gspread_asyncio
import requests
from google.oauth2 import service_account
from requests.adapters import HTTPAdapter

from wipsvc.adapters.retry_after import retry_after_seconds
from wipsvc.collection import CollectionConfig
from wipsvc.domain.errors import StepError

GOOGLE_SHEETS_URL = "https://sheets.googleapis.com"
SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"

# Messages by HTTP status; 429, 408 and 5xx are transient. {what} is "(429 RESOURCE_EXHAUSTED)".
_API_ERRORS = {
    429: "Google Sheets quota exceeded {what}",
    500: "Google Sheets failed {what}: {detail}",
    400: "Google Sheets rejected the request {what}: {detail}",
    401: "Google Sheets rejected the access token for {account} {what}",
    403: "no access to Google spreadsheet {sid} {what}: share it with {account}",
    404: "Google spreadsheet {sid} not found {what}",
}


def load_credentials(path: str) -> service_account.Credentials:
    """Service-account credentials for the Sheets scope; gspread-asyncio calls this from a thread."""
    return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call, no-any-return]
        path, scopes=[SHEETS_SCOPE]
    )


class ApiUrlAdapter(HTTPAdapter):
    """Sends requests meant for sheets.googleapis.com to the configured base URL.

    gspread copies its URL constants at import time, so the session is the one place
    where the destination can be changed.
    """

    def __init__(self, api_url: str) -> None:
        super().__init__()
        self.api_url = api_url.rstrip("/")

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        if url.startswith(GOOGLE_SHEETS_URL):
            request.url = self.api_url + url[len(GOOGLE_SHEETS_URL) :]
            if kwargs.get("proxies"):
                # The proxies were chosen for Google's host; choose again for the real destination.
                kwargs["proxies"] = requests.utils.get_environ_proxies(request.url)
        return super().send(request, *args, **kwargs)


# A check the next request must pass just before it goes out: run inside gspread-asyncio's call
# lock, after any wait for it, so that as little time as possible separates the check from the send.
# A context variable, because the lock is the client manager's, shared by every job.
SEND_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("wipsvc_sheets_send_check", default=None)


class ClientManager(gspread_asyncio.AsyncioGspreadClientManager):  # type: ignore[misc]
    """gspread-asyncio retries 429/5xx forever with its lock held: let the errors out instead."""

    async def before_gspread_call(self, method: object, args: object, kwargs: object) -> None:
        check = SEND_CHECK.get()
        if check is not None:
            check()

    async def handle_gspread_error(self, e: Exception, method: object, args: object, kwargs: object) -> None:
        raise e

    async def handle_requests_error(self, e: Exception, method: object, args: object, kwargs: object) -> None:
        raise e


class SheetsTarget:
    """What an error message needs to name: the spreadsheet, worksheet and account."""

    def __init__(
        self, config: CollectionConfig, default_credentials: str | None, api_url: str = GOOGLE_SHEETS_URL
    ) -> None:
        sheet = config.sheet
        if not sheet.spreadsheet_id:
            raise StepError("sheet.spreadsheet_id is not set for the Google Sheets backend")
        path = sheet.credentials_file or default_credentials
        if not path:
            raise StepError("no Google credentials (sheet.credentials_file, WIPSVC_GOOGLE_CREDENTIALS_FILE)")
        self.spreadsheet_id = sheet.spreadsheet_id
        self.worksheet = sheet.worksheet
        self.credentials_file = path
        self.account = "the service account"
        self.api_url = api_url  # named when it cannot be reached: it is configurable

    def describe(self, exc: BaseException) -> tuple[str, bool] | None:
        """(one-line message, transient) for errors of Google's making; None for anything else."""
        if isinstance(exc, PermissionError) and isinstance(exc.__cause__, gspread.exceptions.APIError):
            exc = exc.__cause__  # gspread's open_by_key turns a 403 into a bare PermissionError
        names = {"sid": self.spreadsheet_id, "ws": self.worksheet, "account": self.account}
        if isinstance(exc, gspread.exceptions.APIError):
            code = exc.response.status_code
            names["what"] = f"({code} {exc.error.get('status') or code})"
            names["detail"] = " ".join(str(exc.error.get("message", "")).split())[:200]
            if code == 429 or code == 408 or code >= 500:
                return _API_ERRORS.get(code, _API_ERRORS[500]).format(**names), True
            return _API_ERRORS.get(code, _API_ERRORS[400]).format(**names), False
        if isinstance(exc, gspread.exceptions.SpreadsheetNotFound):
            return "Google spreadsheet {sid} not found".format(**names), False
        if isinstance(exc, gspread.exceptions.WorksheetNotFound):
            return "worksheet '{ws}' not found in Google spreadsheet {sid}".format(**names), False
        if isinstance(exc, google.auth.exceptions.RefreshError):
            reason = " ".join(str(exc.args[0] if exc.args else exc).split())[:200]
            return f"Google refused a token for {self.account}: {reason}", bool(exc.retryable)
        if isinstance(exc, google.auth.exceptions.TransportError):
            return f"cannot reach Google's token endpoint: {type(exc).__name__}", True
        if isinstance(exc, requests.RequestException):
            return f"cannot reach Google Sheets at {self.api_url}: {type(exc).__name__}", True
        return None


def is_quota_error(exc: BaseException) -> bool:
    """A 429, or Google's RESOURCE_EXHAUSTED under another status."""
    if not isinstance(exc, gspread.exceptions.APIError):
        return False
    return exc.response.status_code == 429 or exc.error.get("status") == "RESOURCE_EXHAUSTED"


def retry_after(exc: BaseException) -> float | None:
    """Seconds from the answer's Retry-After (Google rarely sends one)."""
    if not isinstance(exc, gspread.exceptions.APIError):
        return None
    return retry_after_seconds(exc.response.headers)


def maybe_applied(exc: BaseException) -> bool:
    """Whether a failed write may have reached the sheet anyway (5xx, timeout, dropped connection)."""
    if isinstance(exc, gspread.exceptions.APIError):
        return exc.response.status_code >= 500
    return isinstance(exc, requests.RequestException) and not isinstance(exc, requests.ConnectTimeout)


def is_permanent(error: BaseException) -> bool:
    """Worth retrying a failed batch item by item: a bad product must not fail the others."""
    return isinstance(error, StepError) and not error.transient
