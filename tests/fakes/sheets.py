"""A fake Google Sheets API v4 on 127.0.0.1, good enough for gspread.

Served: ``spreadsheets.get``, ``values.get``, ``values.update``, ``values.append``,
``values.batchGet`` and ``values.batchUpdate``. Bearer tokens are checked against a
:class:`~tests.fakes.google_oauth.FakeGoogleOAuth`; per-minute read and write quotas
answer 429 the way Google does (no Retry-After); latency and errors can be injected;
every request is recorded; the grid (:mod:`tests.fakes.sheets_grid`) can be read and seeded
directly.

All state sits behind one lock: the server answers from its own thread while the test
thread seeds and inspects it.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.server import ServedFake, ThreadedServer
from tests.fakes.sheets_grid import Book, RangeError

Kind = Literal["read", "write"]
_SCOPES = ("https://www.googleapis.com/auth/spreadsheets", "https://www.googleapis.com/auth/drive")
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_DEFAULT_MESSAGES = {
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    404: "Requested entity was not found.",
}


def quota_message(kind: Kind) -> str:
    metric = "Read requests" if kind == "read" else "Write requests"
    return (
        f"Quota exceeded for quota metric '{metric}' and limit '{metric} per minute per user' of "
        "service 'sheets.googleapis.com' for consumer 'project_number:000000000000'."
    )


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}}


class _ApiError(Exception):
    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message or _DEFAULT_MESSAGES.get(status, "Error")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str  # API method: "spreadsheets.get", "values.append", …
    kind: Kind
    spreadsheet_id: str
    status: int
    at: float
    subject: str = ""  # the user (service account) the request was made as


@dataclass(slots=True)
class _Injected:
    status: int
    method: str | None
    after_apply: bool  # the request takes effect, then the error is returned (a lost response)


@dataclass(slots=True)
class _Quota:
    limits: dict[Kind, int]
    window: float
    started: float = field(default_factory=time.monotonic)
    used: dict[Kind, int] = field(default_factory=lambda: {"read": 0, "write": 0})


class FakeSheets(ServedFake):
    """``with FakeSheets(oauth) as sheets: sid = sheets.add_spreadsheet(); …``."""

    def __init__(
        self,
        oauth: FakeGoogleOAuth | None,
        *,
        read_quota: int = 60,
        write_quota: int = 60,
        quota_window: float = 60.0,
        latency: float = 0.0,
    ) -> None:
        self._oauth = oauth  # None: any bearer token is accepted
        self._lock = threading.Lock()
        self._books: dict[str, Book] = {}
        self._quota = _Quota({"read": read_quota, "write": write_quota}, quota_window)
        # Google counts the per-user quota per user: every subject gets a window of its own.
        self._user_quotas: dict[str, _Quota] = {}
        self._injected: deque[_Injected] = deque()
        self._requests: list[RecordedRequest] = []
        self.latency = latency  # seconds added to every request…
        self.latency_by_method: dict[str, float] = {}  # …or to one API method ("values.append")
        self.in_flight = 0
        self.max_in_flight = 0
        routes = [Route("/v4/spreadsheets/{rest:path}", self._dispatch, methods=["GET", "POST", "PUT"])]
        self.app = Starlette(routes=routes)
        self._server = ThreadedServer(self.app)

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._server.url

    # -- seeding and inspection ---------------------------------------------------------------
    def add_spreadsheet(
        self,
        spreadsheet_id: str | None = None,
        *,
        title: str = "Catalogue",
        worksheets: Sequence[str] = ("Sheet1",),
        rows: int = 1000,
        cols: int = 26,
        shared_with: Sequence[str] | None = None,
    ) -> str:
        """Create a spreadsheet; ``shared_with`` (token subjects) limits who may use it."""
        spreadsheet_id = spreadsheet_id or "fake-" + secrets.token_urlsafe(16)
        book = Book(spreadsheet_id, title, shared_with=set(shared_with or ()) or None)
        for name in worksheets:
            book.add_sheet(name, rows, cols)
        with self._lock:
            self._books[spreadsheet_id] = book
        return spreadsheet_id

    def add_worksheet(self, spreadsheet_id: str, title: str, *, rows: int = 1000, cols: int = 26) -> None:
        with self._lock:
            self._books[spreadsheet_id].add_sheet(title, rows, cols)

    def set_rows(self, spreadsheet_id: str, worksheet: str, rows: Sequence[Sequence[str]]) -> None:
        with self._lock:
            self._books[spreadsheet_id].sheet(worksheet).set_rows(rows)

    def rows(self, spreadsheet_id: str, worksheet: str) -> list[list[str]]:
        """The worksheet's values, trailing empty cells and rows trimmed (like values.get)."""
        with self._lock:
            return self._books[spreadsheet_id].sheet(worksheet).trimmed()

    def grid_size(self, spreadsheet_id: str, worksheet: str) -> tuple[int, int]:
        with self._lock:
            sheet = self._books[spreadsheet_id].sheet(worksheet)
            return sheet.row_count, sheet.col_count

    # -- faults, quota, counters ---------------------------------------------------------------
    def fail_next(
        self, count: int, status: int = 429, *, method: str | None = None, after_apply: bool = False
    ) -> None:
        """The next ``count`` requests (of ``method``, if given) answer ``status``.

        With ``after_apply`` the request is carried out first, as when Google applies a
        write but the response is lost to a 5xx or a dropped connection.
        """
        with self._lock:
            self._injected.extend(_Injected(status, method, after_apply) for _ in range(count))

    def set_quota(self, *, read: int | None = None, write: int | None = None) -> None:
        with self._lock:
            if read is not None:
                self._quota.limits["read"] = read
            if write is not None:
                self._quota.limits["write"] = write

    def reset_quota(self) -> None:
        """Start a new quota window now (as if a minute had passed)."""
        with self._lock:
            self._quota.started = time.monotonic()
            self._quota.used = {"read": 0, "write": 0}
            self._user_quotas.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, method: str | None = None, *, kind: Kind | None = None, status: int | None = None) -> int:
        """Requests recorded, filtered by API method, kind and HTTP status."""
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method)
            and (kind is None or r.kind == kind)
            and (status is None or r.status == status)
        )

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- HTTP -------------------------------------------------------------------------------
    async def _dispatch(self, request: Request) -> JSONResponse:
        method, spreadsheet_id, range_name = _route(request)
        kind: Kind = "read" if request.method == "GET" else "write"
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            delay = self.latency_by_method.get(method, self.latency)
            if delay > 0:
                await asyncio.sleep(delay)
            status, body, subject = await self._answer(request, method, kind, spreadsheet_id, range_name)
        finally:
            with self._lock:
                self.in_flight -= 1
        with self._lock:
            self._requests.append(RecordedRequest(method, kind, spreadsheet_id, status, time.time(), subject))
        return JSONResponse(body, status_code=status)

    async def _answer(
        self, request: Request, method: str, kind: Kind, spreadsheet_id: str, range_name: str
    ) -> tuple[int, dict[str, Any], str]:
        subject = ""
        try:
            subject = self._authenticate(request)
            try:
                payload: dict[str, Any] = await request.json() if request.method != "GET" else {}
            except ValueError as exc:
                raise _ApiError(400, "Invalid JSON payload received.") from exc
            with self._lock:
                deferred = self._admit(method, kind, subject)
                book = self._books.get(spreadsheet_id)
                if book is None:
                    raise _ApiError(404)
                if book.shared_with is not None and subject not in book.shared_with:
                    raise _ApiError(403, "The caller does not have permission")
                answer = self._handle(book, method, request, range_name, payload)
                if deferred is not None:
                    raise deferred
                return 200, answer, subject
        except _ApiError as exc:
            return exc.status, error_body(exc.status, exc.message), subject
        except RangeError as exc:
            return 400, error_body(400, str(exc)), subject

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            raise _ApiError(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        if self._oauth is None:
            return "anonymous"
        token = self._oauth.lookup(header.removeprefix("Bearer ").strip())
        if token is None:
            raise _ApiError(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        if not any(scope in token.scopes for scope in _SCOPES):
            raise _ApiError(403, "Request had insufficient authentication scopes.")
        return token.subject

    def _admit(self, method: str, kind: Kind, subject: str = "anonymous") -> _ApiError | None:
        """Injected faults first, then the per-minute quota (caller holds the lock).

        Returns the error to answer after carrying out the request, if one was injected so.
        """
        for index, injected in enumerate(self._injected):
            if injected.method in (None, method):
                del self._injected[index]
                error = _ApiError(injected.status, quota_message(kind) if injected.status == 429 else None)
                if not injected.after_apply:
                    raise error
                return error
        quota = self._user_quotas.get(subject)
        if quota is None:
            quota = self._user_quotas[subject] = _Quota(dict(self._quota.limits), self._quota.window)
        quota.limits = self._quota.limits  # set_quota applies to every user
        if time.monotonic() - quota.started >= quota.window:
            quota.started, quota.used = time.monotonic(), {"read": 0, "write": 0}
        if quota.used[kind] >= quota.limits[kind]:
            raise _ApiError(429, quota_message(kind))
        quota.used[kind] += 1
        return None

    def _handle(
        self, book: Book, method: str, request: Request, range_name: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        query = request.query_params
        if method == "spreadsheets.get":
            return book.metadata()
        if method == "values.get":
            return book.get(range_name, query.get("majorDimension", "ROWS"))
        if method == "values.batchGet":
            ranges = query.getlist("ranges")
            dimension = query.get("majorDimension", "ROWS")
            value_ranges = [book.get(name, dimension) for name in ranges]
            return {"spreadsheetId": book.spreadsheet_id, "valueRanges": value_ranges}
        option = query.get("valueInputOption") or payload.get("valueInputOption")
        if option not in ("RAW", "USER_ENTERED"):
            raise _ApiError(400, "'valueInputOption' is required but not specified")
        if method == "values.update":
            return book.update([(range_name, payload.get("values", []), payload.get("majorDimension"))])[0]
        if method == "values.append":
            insert = query.get("insertDataOption", "OVERWRITE")
            return book.append(range_name, payload.get("values", []), insert_rows=insert == "INSERT_ROWS")
        if method == "values.batchUpdate":
            data = payload.get("data", [])
            writes = [(item["range"], item.get("values", []), item.get("majorDimension")) for item in data]
            responses = book.update(writes)
            return {
                "spreadsheetId": book.spreadsheet_id,
                "totalUpdatedRows": sum(r.get("updatedRows", 0) for r in responses),
                "totalUpdatedColumns": sum(r.get("updatedColumns", 0) for r in responses),
                "totalUpdatedCells": sum(r.get("updatedCells", 0) for r in responses),
                "totalUpdatedSheets": len({r["updatedRange"].rpartition("!")[0] for r in responses}),
                "responses": responses,
            }
        raise _ApiError(404, f"Method not found: {method}")


def _route(request: Request) -> tuple[str, str, str]:
    """(API method, spreadsheet id, A1 range) from the raw path.

    The raw path is split before unquoting: a range may contain ':' and '/' once decoded.
    """
    raw = request.scope.get("raw_path") or request.url.path.encode()
    rest = raw.decode("latin-1").split("/v4/spreadsheets/", 1)[1]
    if "/values/" in rest:
        spreadsheet_id, _, range_part = rest.partition("/values/")
        if range_part.endswith(":append") and request.method == "POST":
            return "values.append", unquote(spreadsheet_id), unquote(range_part.removesuffix(":append"))
        name = "values.get" if request.method == "GET" else "values.update"
        return name, unquote(spreadsheet_id), unquote(range_part)
    for suffix, name in (
        ("/values:batchGet", "values.batchGet"),
        ("/values:batchUpdate", "values.batchUpdate"),
    ):
        if rest.endswith(suffix):
            return name, unquote(rest.removesuffix(suffix)), ""
    if "/" not in rest and ":" not in rest and request.method == "GET":
        return "spreadsheets.get", unquote(rest), ""
    return "unsupported", unquote(rest.split("/")[0].split(":")[0]), ""
