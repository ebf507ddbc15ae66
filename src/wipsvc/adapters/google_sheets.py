"""The Google Sheets backend: one :class:`SheetSession` per job, through gspread-asyncio.

Request budget (the per-user quota is 60 reads and 60 writes a minute): ``open()`` reads
the spreadsheet and worksheet metadata (cached by gspread-asyncio's client afterwards)
and the SKU column, once; then each product costs one ``values.append`` (its response
carries the new row number) and one ``values.batchUpdate``. Errors surface from
gspread-asyncio instead of being retried forever under its lock; this module retries
429/5xx/network errors with Google's truncated exponential backoff, a bounded number of
times, and turns every failure into a one-line :class:`StepError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import google.auth.exceptions
import gspread
import gspread_asyncio
import requests
from google.oauth2 import service_account
from gspread.utils import absolute_range_name
from requests.adapters import HTTPAdapter

from wipsvc.adapters.base import StepError
from wipsvc.collection import CollectionConfig, column_index, column_letter
from wipsvc.config import Settings

logger = logging.getLogger(__name__)

GOOGLE_SHEETS_URL = "https://sheets.googleapis.com"
SHEETS_SCOPE = "https://www.googleapis.com/auth/spreadsheets"
_UPDATED_RANGE = re.compile(r"^\$?([A-Z]+)\$?(\d+)(?::\$?([A-Z]+)\$?(\d+))?$")

# Messages by HTTP status; 429, 408 and 5xx are transient. {what} is "(429 RESOURCE_EXHAUSTED)".
_API_ERRORS = {
    429: "Google Sheets quota exceeded {what}",
    500: "Google Sheets failed {what}: {detail}",
    400: "Google Sheets rejected the request {what}: {detail}",
    401: "Google Sheets rejected the access token for {account} {what}",
    403: "no access to Google spreadsheet {sid} {what}: share it with {account}",
    404: "Google spreadsheet {sid} not found {what}",
}

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[object]]


def _load_credentials(path: str) -> service_account.Credentials:
    """Service-account credentials for the Sheets scope; gspread-asyncio calls this from a thread."""
    return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call, no-any-return]
        path, scopes=[SHEETS_SCOPE]
    )


class _ApiUrlAdapter(HTTPAdapter):
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


class _Manager(gspread_asyncio.AsyncioGspreadClientManager):  # type: ignore[misc]
    """gspread-asyncio retries 429/5xx forever with its lock held: let the errors out instead."""

    async def handle_gspread_error(self, e: Exception, method: object, args: object, kwargs: object) -> None:
        raise e

    async def handle_requests_error(self, e: Exception, method: object, args: object, kwargs: object) -> None:
        raise e


class _Target:
    """What an error message needs to name: the spreadsheet, worksheet and account."""

    def __init__(self, config: CollectionConfig, default_credentials: str | None) -> None:
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
            return f"cannot reach Google Sheets: {type(exc).__name__}", True
        return None


def _maybe_applied(exc: BaseException) -> bool:
    """Whether a failed write may have reached the sheet anyway (5xx, timeout, dropped connection)."""
    if isinstance(exc, gspread.exceptions.APIError):
        return exc.response.status_code >= 500
    return isinstance(exc, requests.RequestException) and not isinstance(exc, requests.ConnectTimeout)


class GoogleSheetsBackend:
    """Opens job sessions on Google spreadsheets; one gspread-asyncio manager per credentials file."""

    def __init__(
        self,
        api_url: str = GOOGLE_SHEETS_URL,
        credentials_file: str | None = None,
        *,
        max_attempts: int = 5,
        base_delay: float = 1.0,
        max_backoff: float = 32.0,
        timeout: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.api_url = api_url.rstrip("/")
        self.credentials_file = credentials_file
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_backoff = max_backoff
        self._timeout = timeout
        self._sleep = sleep
        self._jitter = jitter  # seconds in [0, 1): Google's random_ms
        self._managers: dict[str, _Manager] = {}
        self._sessions: list[requests.Session] = []  # HTTP sessions to close in aclose()

    @classmethod
    def from_settings(cls, settings: Settings) -> GoogleSheetsBackend:
        return cls(settings.sheets_api_url, settings.google_credentials_file)

    async def open(self, config: CollectionConfig) -> GoogleSheetsSession:
        target = _Target(config, self.credentials_file)
        manager = self._managers.get(target.credentials_file)
        if manager is None:
            manager = self._managers[target.credentials_file] = self._new_manager(target.credentials_file)
        client = await self._authorize(manager, target)

        async def open_worksheet() -> Any:
            spreadsheet = await client.open_by_key(target.spreadsheet_id)
            await spreadsheet.worksheet(target.worksheet)  # raises WorksheetNotFound
            return spreadsheet

        session = GoogleSheetsSession(self, await self.call(open_worksheet, target), config, target)
        await session.load_rows()
        return session

    async def check(self, config: CollectionConfig) -> str:
        """Verify credentials, API, spreadsheet, worksheet and column range; one line on success."""
        target = _Target(config, self.credentials_file)
        # A fresh manager: nothing cached, the answer is about the sheet as it is now.
        client = await self._authorize(self._new_manager(target.credentials_file), target)
        try:
            spreadsheet = await self.call(lambda: client.open_by_key(target.spreadsheet_id), target)
            worksheet = await self.call(lambda: spreadsheet.worksheet(target.worksheet), target)
        finally:
            client.gc.http_client.session.close()
        rows, cols = int(worksheet.ws.row_count), int(worksheet.ws.col_count)
        beyond = [
            f"{name} ({letter})" for name, letter in config.columns.items() if column_index(letter) >= cols
        ]
        if beyond:
            raise StepError(
                f"worksheet '{target.worksheet}' has {cols} columns; beyond them: {', '.join(beyond)}"
            )
        return (
            f"Google spreadsheet '{spreadsheet.ss.title}' ({target.spreadsheet_id}), worksheet "
            f"'{target.worksheet}' ({rows} rows x {cols} columns), as {target.account}"
        )

    async def aclose(self) -> None:
        """Close the HTTP connections of every client this backend made."""
        for session in self._sessions:
            session.close()
        self._sessions.clear()
        self._managers.clear()

    def _new_manager(self, credentials_file: str) -> _Manager:
        return _Manager(
            lambda: _load_credentials(credentials_file), gspread_delay=0, gspread_timeout=self._timeout
        )

    async def _authorize(self, manager: _Manager, target: _Target) -> Any:
        """The manager's current client, its session pointed at ``api_url``."""
        try:
            client = await manager.authorize()
        except (OSError, ValueError, KeyError) as exc:
            raise StepError(
                f"cannot load Google credentials from {target.credentials_file}: {type(exc).__name__}: {exc}"
            ) from exc
        account = getattr(client.gc.http_client.auth, "service_account_email", None)
        target.account = str(account or target.account)
        # authorize() builds a new gspread client every reauth interval: mount on each one.
        session: requests.Session = client.gc.http_client.session
        if self.api_url != GOOGLE_SHEETS_URL and not isinstance(
            session.get_adapter(GOOGLE_SHEETS_URL + "/"), _ApiUrlAdapter
        ):
            session.mount(GOOGLE_SHEETS_URL + "/", _ApiUrlAdapter(self.api_url))
        if manager in self._managers.values() and session not in self._sessions:
            self._sessions.append(session)
        return client

    async def call(self, operation: Callable[[], Awaitable[T]], target: _Target) -> T:
        """Run one API operation, retrying transient failures with truncated exponential backoff."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await operation()
            except StepError:
                raise
            except Exception as exc:
                described = target.describe(exc)
                if described is None:
                    raise
                message, transient = described
                if not transient:
                    raise StepError(message) from exc
                if attempt == self.max_attempts:
                    raise StepError(f"{message} after {attempt} attempts", transient=True) from exc
                delay = min(self.base_delay * 2 ** (attempt - 1) + self._jitter(), self.max_backoff)
                logger.warning("%s; retry %d/%d in %.1fs", message, attempt, self.max_attempts - 1, delay)
                await self._sleep(delay)
        raise AssertionError("unreachable")


class GoogleSheetsSession:
    """One job's worksheet: SKU -> row cached at open, one append and one batch write per product."""

    def __init__(
        self, backend: GoogleSheetsBackend, spreadsheet: Any, config: CollectionConfig, target: _Target
    ):
        self._backend = backend
        self._spreadsheet = spreadsheet  # gspread_asyncio.AsyncioGspreadSpreadsheet
        self._target = target
        self._title = config.sheet.worksheet
        self._columns = dict(config.columns)
        self._rows: dict[str, int] = {}
        self._has_header = True
        # One append at a time: find-then-append must not race for a SKU, nor two header rows.
        self._append_lock = asyncio.Lock()

    async def load_rows(self) -> None:
        await self._backend.call(self._read_skus, self._target)

    async def _read_skus(self) -> None:
        letter = self._columns["sku"]
        answer = await self._spreadsheet.values_get(
            absolute_range_name(self._title, f"{letter}:{letter}"), params={"majorDimension": "COLUMNS"}
        )
        cells = (answer.get("values") or [[]])[0]
        rows: dict[str, int] = {}
        for row_num, cell in enumerate(cells, start=1):
            sku = str(cell).strip()
            if row_num > 1 and sku:  # row 1 is the header row
                rows.setdefault(sku, row_num)
        self._rows = rows
        self._has_header = bool(cells)

    async def find_row(self, sku: str) -> int | None:
        return self._rows.get(sku.strip())

    async def append_row(self, sku: str, url: str) -> int:
        key = sku.strip()
        if not key:
            raise StepError("empty SKU")
        async with self._append_lock:
            if key in self._rows:  # a re-run: the row is there already
                return self._rows[key]
            row_num = await self._append(key, url)
            self._rows[key] = row_num
            return row_num

    async def _append(self, sku: str, url: str) -> int:
        values = {"sku": sku, "url": url}
        # An empty sheet gets the header row in the same request, as the local sheet does.
        fields = list(self._columns) if not self._has_header else ["sku", "url"]
        indexes = [column_index(self._columns[name]) for name in fields]
        first, last = min(indexes), max(indexes)
        rows = [[""] * (last - first + 1) for _ in range(1 if self._has_header else 2)]
        for name, index in zip(fields, indexes, strict=True):
            if not self._has_header:
                rows[0][index - first] = name
            rows[-1][index - first] = values.get(name, "")
        table = absolute_range_name(self._title, f"{column_letter(first)}:{column_letter(last)}")
        params = {"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"}
        maybe_written = False

        async def attempt() -> int:
            nonlocal maybe_written
            if maybe_written:
                # The last try may have landed: look before appending a duplicate.
                await self._read_skus()
                if sku in self._rows:
                    return self._rows[sku]
            try:
                answer = await self._spreadsheet.values_append(table, params, {"values": rows})
            except Exception as exc:
                maybe_written = _maybe_applied(exc)
                raise
            return self._row_from(str(answer["updates"]["updatedRange"]), column_letter(first))

        row_num = await self._backend.call(attempt, self._target)
        self._has_header = True
        return row_num

    def _row_from(self, updated_range: str, expected_column: str) -> int:
        """The last row of ``updatedRange`` ('Sheet1!A7:P7' -> 7)."""
        match = _UPDATED_RANGE.match(updated_range.rpartition("!")[2])
        if match is None:
            raise StepError(f"unexpected updatedRange from Google Sheets: {updated_range!r}")
        if match[1] != expected_column:
            # Google appends from the first column of the table it detected; say so if it moved.
            logger.warning("append landed at %s, expected column %s", updated_range, expected_column)
        return int(match[4] or match[2])

    async def write_fields(self, row_num: int, values: Mapping[str, str]) -> None:
        data = [
            {
                "range": absolute_range_name(self._title, f"{self._columns[name]}{row_num}"),
                "values": [[value]],
            }
            for name, value in values.items()
            if name in self._columns
        ]
        if not data:
            return
        body = {"valueInputOption": "RAW", "data": data}
        await self._backend.call(lambda: self._spreadsheet.values_batch_update(body), self._target)

    async def close(self) -> None:
        self._rows.clear()
