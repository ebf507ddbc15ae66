"""A fake Google Sheets API v4 on 127.0.0.1, good enough for gspread.

Served: ``spreadsheets.get``, ``values.get``, ``values.update``, ``values.append``,
``values.batchGet`` and ``values.batchUpdate``. Bearer tokens are checked against a
:class:`~tests.fakes.google_oauth.FakeGoogleOAuth`; per-minute read and write quotas
answer 429 the way Google does (no Retry-After); latency and errors can be injected;
every request is recorded; the grid can be read and seeded directly.

All state sits behind one lock: the server answers from its own thread while the test
thread seeds and inspects it.
"""

from __future__ import annotations

import asyncio
import re
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
from wipsvc.collection import column_index, column_letter

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


class RangeError(Exception):
    """A range Google would refuse with 400 INVALID_ARGUMENT."""


_SIDE = re.compile(r"^\$?([A-Za-z]{0,3})\$?(\d*)$")
_PLAIN_TITLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_Box = tuple[int, int, int | None, int | None]  # row1, col1, row2, col2 (0-based; None = to the grid's end)


def _parse_ref(ref: str) -> tuple[int | None, int | None, int | None, int | None] | None:
    """'A1', 'A1:B2', 'A:A', 'A5:C', '2:3' -> (row1, col1, row2, col2), None when not a cell reference."""
    sides: list[tuple[int | None, int | None]] = []
    for part in ref.split(":") if ref.count(":") <= 1 else []:
        match = _SIDE.match(part)
        if match is None or not (match[1] or match[2]) or match[2] == "0":
            return None
        sides.append(
            (int(match[2]) - 1 if match[2] else None, column_index(match[1].upper()) if match[1] else None)
        )
    if len(sides) == 1:
        row, col = sides[0]
        return None if row is None or col is None else (row, col, row, col)
    if len(sides) == 2:
        return sides[0][0], sides[0][1], sides[1][0], sides[1][1]
    return None


def _split_sheet(name: str) -> tuple[str | None, str]:
    """Split "'It''s'!A1" -> ("It's", "A1"); "A1:B2" -> (None, "A1:B2"); "Sheet1" -> ("Sheet1", "")."""
    if name.startswith("'"):
        chars: list[str] = []
        index = 1
        while index < len(name):
            if name[index] == "'":
                if name[index + 1 : index + 2] != "'":
                    break
                index += 1  # '' is an escaped quote
            chars.append(name[index])
            index += 1
        rest = name[index + 1 :]
        if index >= len(name) or (rest and not rest.startswith("!")):
            raise RangeError(f"Unable to parse range: {name}")
        return "".join(chars), rest[1:]
    if "!" in name:
        title, _, ref = name.rpartition("!")
        return title, ref
    return (None, name) if _parse_ref(name) is not None else (name, "")


def _cell_text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


@dataclass(slots=True)
class _Sheet:
    sheet_id: int
    title: str
    index: int
    row_count: int
    col_count: int
    cells: list[list[str]] = field(default_factory=list)  # ragged: only as far as data goes

    def a1(self, row1: int, col1: int, row2: int, col2: int) -> str:
        title = (
            self.title
            if _PLAIN_TITLE.match(self.title) and _parse_ref(self.title) is None
            else ("'" + self.title.replace("'", "''") + "'")
        )
        start, end = f"{column_letter(col1)}{row1 + 1}", f"{column_letter(col2)}{row2 + 1}"
        return f"{title}!{start}" if start == end else f"{title}!{start}:{end}"

    def value(self, row: int, col: int) -> str:
        if row < len(self.cells) and col < len(self.cells[row]):
            return self.cells[row][col]
        return ""

    def put(self, row: int, col: int, text: str) -> None:
        while len(self.cells) <= row:
            self.cells.append([])
        line = self.cells[row]
        line.extend([""] * (col + 1 - len(line)))
        line[col] = text

    def set_rows(self, rows: Sequence[Sequence[str]]) -> None:
        self.cells = [[_cell_text(v) for v in row] for row in rows]
        self.row_count = max(self.row_count, len(self.cells))
        self.col_count = max([self.col_count, *(len(row) for row in self.cells)])

    def trimmed(self, box: _Box | None = None, *, columns: bool = False) -> list[list[str]]:
        row1, col1, row2, col2 = box or (0, 0, None, None)
        last_row = min(self.row_count - 1 if row2 is None else row2, len(self.cells) - 1)
        last_col = self.col_count - 1 if col2 is None else col2
        out = [[self.value(r, c) for c in range(col1, last_col + 1)] for r in range(row1, last_row + 1)]
        if columns:
            out = [list(col) for col in zip(*out, strict=True)] if out else []
        for line in out:
            while line and line[-1] == "":
                line.pop()
        while out and not out[-1]:
            out.pop()
        return out


@dataclass(slots=True)
class _Book:
    spreadsheet_id: str
    title: str
    shared_with: set[str] | None = None
    sheets: list[_Sheet] = field(default_factory=list)

    def add_sheet(self, title: str, rows: int, cols: int) -> None:
        sheet_id = 0 if not self.sheets else secrets.randbelow(2**31)
        self.sheets.append(_Sheet(sheet_id, title, len(self.sheets), rows, cols))

    def sheet(self, title: str) -> _Sheet:
        for sheet in self.sheets:
            if sheet.title == title:
                return sheet
        raise KeyError(title)

    def metadata(self) -> dict[str, Any]:
        return {
            "spreadsheetId": self.spreadsheet_id,
            "properties": {"title": self.title, "locale": "en_US", "timeZone": "Etc/GMT"},
            "sheets": [
                {
                    "properties": {
                        "sheetId": s.sheet_id,
                        "title": s.title,
                        "index": s.index,
                        "sheetType": "GRID",
                        "gridProperties": {"rowCount": s.row_count, "columnCount": s.col_count},
                    }
                }
                for s in self.sheets
            ],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}/edit",
        }

    def resolve(self, name: str) -> tuple[_Sheet, _Box]:
        title, ref = _split_sheet(name)
        try:
            sheet = self.sheets[0] if title is None else self.sheet(title)
        except (KeyError, IndexError) as exc:
            raise RangeError(f"Unable to parse range: {name}") from exc
        parsed = _parse_ref(ref) if ref else (None, None, None, None)
        if parsed is None:
            raise RangeError(f"Unable to parse range: {name}")
        row1, col1, row2, col2 = parsed
        return sheet, (row1 or 0, col1 or 0, row2, col2)

    def get(self, name: str, dimension: str) -> dict[str, Any]:
        sheet, (row1, col1, row2, col2) = self.resolve(name)
        row2 = sheet.row_count - 1 if row2 is None else row2
        col2 = sheet.col_count - 1 if col2 is None else col2
        answer: dict[str, Any] = {"range": sheet.a1(row1, col1, row2, col2), "majorDimension": dimension}
        values = sheet.trimmed((row1, col1, row2, col2), columns=dimension == "COLUMNS")
        if values:
            answer["values"] = values
        return answer

    def update(self, writes: list[tuple[str, list[list[Any]], str | None]]) -> list[dict[str, Any]]:
        """Validate every write, then apply them all (a batch fails as a whole, like Google's)."""
        planned: list[tuple[_Sheet, int, int, list[list[Any]]]] = []
        for name, values, dimension in writes:
            sheet, (row1, col1, row2, col2) = self.resolve(name)
            if dimension == "COLUMNS":
                values = [list(row) for row in zip(*values, strict=False)]
            height, width = len(values), max((len(row) for row in values), default=0)
            if (row2 is not None and row1 + height - 1 > row2) or (
                col2 is not None and col1 + width - 1 > col2
            ):
                raise RangeError(f"Requested writing within range [{name}], but tried writing beyond it")
            if row1 + height > sheet.row_count or col1 + width > sheet.col_count:
                raise RangeError(
                    f"Range ({sheet.a1(row1, col1, row1 + max(height, 1) - 1, col1 + max(width, 1) - 1)}) "
                    f"exceeds grid limits. Max rows: {sheet.row_count}, max columns: {sheet.col_count}"
                )
            planned.append((sheet, row1, col1, values))
        return [self._write(sheet, row1, col1, values) for sheet, row1, col1, values in planned]

    def _write(self, sheet: _Sheet, row1: int, col1: int, values: list[list[Any]]) -> dict[str, Any]:
        cells = 0
        for r, line in enumerate(values):
            for c, value in enumerate(line):
                if value is not None:  # Google skips nulls: the cell keeps its value
                    sheet.put(row1 + r, col1 + c, _cell_text(value))
                    cells += 1
        height, width = len(values), max((len(row) for row in values), default=0)
        return {
            "spreadsheetId": self.spreadsheet_id,
            "updatedRange": sheet.a1(row1, col1, row1 + max(height, 1) - 1, col1 + max(width, 1) - 1),
            "updatedRows": height,
            "updatedColumns": width,
            "updatedCells": cells,
        }

    def append(self, name: str, values: list[list[Any]], *, insert_rows: bool) -> dict[str, Any]:
        """Find the table in the range and write after its last row, from its first column."""
        sheet, (row1, col1, row2, col2) = self.resolve(name)
        if (row1, col1) == (row2, col2):  # a single cell is where the search starts, not a bound
            row2 = col2 = None
        last_col = sheet.col_count - 1 if col2 is None else col2
        last_row = len(sheet.cells) - 1 if row2 is None else min(row2, len(sheet.cells) - 1)
        filled = [
            (r, c) for r in range(row1, last_row + 1) for c in range(col1, last_col + 1) if sheet.value(r, c)
        ]
        answer: dict[str, Any] = {"spreadsheetId": self.spreadsheet_id}
        if filled:
            table_end = max(r for r, _ in filled)
            start_col = min(c for _, c in filled)
            answer["tableRange"] = sheet.a1(row1, start_col, table_end, max(c for _, c in filled))
            start_row = table_end + 1
        else:
            start_row, start_col = row1, col1
        height, width = len(values), max((len(row) for row in values), default=0)
        if insert_rows:
            if start_row < len(sheet.cells):
                sheet.cells[start_row:start_row] = [[] for _ in range(height)]
            sheet.row_count += height
        sheet.row_count = max(sheet.row_count, start_row + height)
        sheet.col_count = max(sheet.col_count, start_col + width)
        answer["updates"] = self._write(sheet, start_row, start_col, values)
        return answer


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
        self._books: dict[str, _Book] = {}
        self._quota = _Quota({"read": read_quota, "write": write_quota}, quota_window)
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
        book = _Book(spreadsheet_id, title, shared_with=set(shared_with or ()) or None)
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
            status, body = await self._answer(request, method, kind, spreadsheet_id, range_name)
        finally:
            with self._lock:
                self.in_flight -= 1
        with self._lock:
            self._requests.append(RecordedRequest(method, kind, spreadsheet_id, status, time.time()))
        return JSONResponse(body, status_code=status)

    async def _answer(
        self, request: Request, method: str, kind: Kind, spreadsheet_id: str, range_name: str
    ) -> tuple[int, dict[str, Any]]:
        try:
            subject = self._authenticate(request)
            try:
                payload: dict[str, Any] = await request.json() if request.method != "GET" else {}
            except ValueError as exc:
                raise _ApiError(400, "Invalid JSON payload received.") from exc
            with self._lock:
                deferred = self._admit(method, kind)
                book = self._books.get(spreadsheet_id)
                if book is None:
                    raise _ApiError(404)
                if book.shared_with is not None and subject not in book.shared_with:
                    raise _ApiError(403, "The caller does not have permission")
                answer = self._handle(book, method, request, range_name, payload)
                if deferred is not None:
                    raise deferred
                return 200, answer
        except _ApiError as exc:
            return exc.status, error_body(exc.status, exc.message)
        except RangeError as exc:
            return 400, error_body(400, str(exc))

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

    def _admit(self, method: str, kind: Kind) -> _ApiError | None:
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
        quota = self._quota
        if time.monotonic() - quota.started >= quota.window:
            quota.started, quota.used = time.monotonic(), {"read": 0, "write": 0}
        if quota.used[kind] >= quota.limits[kind]:
            raise _ApiError(429, quota_message(kind))
        quota.used[kind] += 1
        return None

    def _handle(
        self, book: _Book, method: str, request: Request, range_name: str, payload: dict[str, Any]
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
