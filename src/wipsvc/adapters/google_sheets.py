"""The Google Sheets backend: one :class:`SheetSession` per job, through gspread-asyncio.

Request budget (the per-user quota is 60 reads and 60 writes a minute): ``open()`` reads
the spreadsheet and worksheet metadata (cached by gspread-asyncio's client afterwards)
and the SKU column, once; then each product costs one ``values.append`` (its response
carries the new row number) and one ``values.batchUpdate`` per write. With a coalescing
window, the appends and writes of products that are ready together share one request
(see :mod:`wipsvc.adapters.coalesce`). With :class:`~wipsvc.limits.Limits`, every request
first takes a token from the read or write bucket, and a 429 pauses that bucket for all
jobs instead of sleeping here. Errors surface from gspread-asyncio instead of being retried
forever under its lock; this module makes each request once and turns every failure into a
one-line :class:`StepError` (transient or not, throttled on a 429), leaving retries to the
step's policy (:mod:`wipsvc.pipeline.retry`). The API plumbing it uses (credentials, client
manager, base-URL adapter, error classification) lives in :mod:`wipsvc.adapters.google_api`, the
fencing of writes and the clean-up of doubled rows in :mod:`wipsvc.adapters.sheets_fence`; what
stays here is long because a session's reads, appends and writes share its SKU cache.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import requests
from gspread.utils import absolute_range_name

from wipsvc.adapters.coalesce import Batch, Coalescer
from wipsvc.adapters.google_api import (
    GOOGLE_SHEETS_URL,
    ApiUrlAdapter,
    ClientManager,
    SheetsTarget,
    is_permanent,
    is_quota_error,
    load_credentials,
    maybe_applied,
    retry_after,
)
from wipsvc.adapters.sheets_fence import RowSpan, send_fenced, sheets_timeout
from wipsvc.collection import CollectionConfig, column_index, column_letter
from wipsvc.config import Settings
from wipsvc.domain.errors import StepError
from wipsvc.limits import Limits, QuotaBucket
from wipsvc.store.lease import LeaseGuard

logger = logging.getLogger(__name__)

_UPDATED_RANGE = re.compile(r"^\$?([A-Z]+)\$?(\d+)(?::\$?([A-Z]+)\$?(\d+))?$")

T = TypeVar("T")


class GoogleSheetsBackend:
    """Opens job sessions on Google spreadsheets; one gspread-asyncio manager per credentials file."""

    def __init__(
        self,
        api_url: str = GOOGLE_SHEETS_URL,
        credentials_file: str | None = None,
        *,
        timeout: float = 60.0,
        limits: Limits | None = None,
        coalesce_window: float | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.credentials_file = credentials_file
        self._timeout = timeout
        self.limits = limits
        self.coalesce_window = coalesce_window  # None: one request per write
        self._managers: dict[str, ClientManager] = {}
        self._sessions: list[requests.Session] = []  # HTTP sessions to close in aclose()

    @classmethod
    def from_settings(
        cls, settings: Settings, limits: Limits | None = None, *, timeout: float | None = None
    ) -> GoogleSheetsBackend:
        """The configured client; ``timeout`` replaces the configured one (a check wants it short)."""
        return cls(
            settings.sheets_api_url,
            settings.google_credentials_file,
            limits=limits,
            timeout=sheets_timeout(settings) if timeout is None else timeout,
            coalesce_window=settings.sheets_coalesce_window_ms / 1000 if settings.sheets_coalesce else None,
        )

    @property
    def reads(self) -> QuotaBucket | None:
        return self.limits.sheets_read if self.limits else None

    @property
    def writes(self) -> QuotaBucket | None:
        return self.limits.sheets_write if self.limits else None

    async def open(self, config: CollectionConfig, limits: Limits | None = None) -> GoogleSheetsSession:
        """A job's session; ``limits`` are the buckets of the job's account (default: the backend's)."""
        target = SheetsTarget(config, self.credentials_file, self.api_url)
        reads = limits.sheets_read if limits is not None else self.reads
        writes = limits.sheets_write if limits is not None else self.writes
        manager = self._managers.get(target.credentials_file)
        if manager is None:
            manager = self._managers[target.credentials_file] = self._new_manager(target.credentials_file)
        client = await self._authorize(manager, target)
        # One request each, so each takes its own read token.
        spreadsheet = await self.call(lambda: client.open_by_key(target.spreadsheet_id), target, reads)
        await self.call(lambda: spreadsheet.worksheet(target.worksheet), target, reads)  # or not found
        session = GoogleSheetsSession(self, spreadsheet, config, target, reads=reads, writes=writes)
        await session.load_rows()
        return session

    async def check(self, config: CollectionConfig) -> str:
        """Verify credentials, API, spreadsheet, worksheet and column range; one line on success."""
        target = SheetsTarget(config, self.credentials_file, self.api_url)
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

    def _new_manager(self, credentials_file: str) -> ClientManager:
        return ClientManager(
            lambda: load_credentials(credentials_file), gspread_delay=0, gspread_timeout=self._timeout
        )

    async def _authorize(self, manager: ClientManager, target: SheetsTarget) -> Any:
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
            session.get_adapter(GOOGLE_SHEETS_URL + "/"), ApiUrlAdapter
        ):
            session.mount(GOOGLE_SHEETS_URL + "/", ApiUrlAdapter(self.api_url))
        if manager in self._managers.values() and session not in self._sessions:
            self._sessions.append(session)
        return client

    async def call(
        self, operation: Callable[[], Awaitable[T]], target: SheetsTarget, bucket: QuotaBucket | None = None
    ) -> T:
        """Run one API request, once: a failure becomes one classified ``StepError`` (the step's
        retry policy decides whether to try again, see :mod:`wipsvc.pipeline.retry`).

        With a bucket, the request first takes a token; a 429 is reported to the bucket, which
        pauses every caller of the resource, and the error says so (``throttled``): the next try
        waits there.
        """
        permit = await bucket.acquire() if bucket is not None else None
        try:
            return await operation()
        except StepError:
            raise
        except Exception as exc:
            described = target.describe(exc)
            if described is None:
                raise
            message, transient = described
            wait = retry_after(exc)
            throttled = permit is not None and is_quota_error(exc)
            if throttled and permit is not None:
                permit.throttled(wait)
            raise StepError(message, transient=transient, retry_after=wait, throttled=throttled) from exc
        finally:
            if permit is not None:
                permit.release()


class GoogleSheetsSession:
    """One job's worksheet: SKU -> row cached at open; appends and batch writes, coalesced across
    products when the backend has a window.

    With a :class:`LeaseGuard` (:meth:`fence_with`), every write is checked against the job's lease
    just before it is sent. Sheets has no conditional write, so a request already on its way when
    the process was paused may still land after another instance took the job over: re-reads of
    the SKU column (:meth:`refresh`) find such doubled rows, and the later row is cleared (emptied,
    never deleted, which would shift other products' rows) after anything it holds that the
    earlier row lacks is copied there. The product keeps the earlier row.
    """

    def __init__(
        self,
        backend: GoogleSheetsBackend,
        spreadsheet: Any,
        config: CollectionConfig,
        target: SheetsTarget,
        *,
        reads: QuotaBucket | None = None,
        writes: QuotaBucket | None = None,
    ):
        self._reads = reads  # the buckets of the account this session acts as
        self._write_bucket = writes
        self._backend = backend
        self._spreadsheet = spreadsheet  # gspread_asyncio.AsyncioGspreadSpreadsheet
        self._target = target
        self._title = config.sheet.worksheet
        self._columns = dict(config.columns)
        self._rows: dict[str, int] = {}
        self._has_header = True
        self._guard: LeaseGuard | None = None
        self._asked: set[str] = set()  # SKUs of this job: only their doubled rows are cleared
        self._doubled: dict[str, list[int]] = {}  # SKU -> its later rows, found by the last read
        self._moved: dict[int, int] = {}  # cleared row -> the row kept for its SKU
        self._reloads = 0
        self._refresh_lock = asyncio.Lock()
        # One append at a time: find-then-append must not race for a SKU, nor two header rows.
        self._append_lock = asyncio.Lock()
        # The last append failed in a way that may have reached the sheet (a 5xx, a lost answer):
        # the next one reads the SKU column first, so that a retried product is not appended twice.
        self._append_maybe_landed = False
        self._appends: Coalescer[tuple[str, str], int] | None = None
        self._writes: Coalescer[list[dict[str, Any]], None] | None = None
        if backend.coalesce_window is not None:
            window = backend.coalesce_window
            self._appends = Coalescer(self._flush_appends, window=window, isolate=is_permanent, name="append")
            self._writes = Coalescer(self._flush_writes, window=window, isolate=is_permanent, name="write")

    def fence_with(self, guard: LeaseGuard) -> None:
        self._guard = guard

    async def load_rows(self) -> None:
        await self._backend.call(self._read_skus, self._target, self._reads)

    async def refresh(self) -> None:
        """Read the SKU column again (one read serves every caller waiting meanwhile) and clear
        the later of any two rows found for a SKU of this job."""
        asked = self._reloads
        async with self._refresh_lock:
            if self._reloads == asked:
                await self._backend.call(self._read_skus, self._target, self._reads)
            if self._doubled:
                await self._clear_doubled()

    async def _read_skus(self) -> None:
        letter = self._columns["sku"]
        answer = await self._spreadsheet.values_get(
            absolute_range_name(self._title, f"{letter}:{letter}"), params={"majorDimension": "COLUMNS"}
        )
        cells = (answer.get("values") or [[]])[0]
        self._reloads += 1
        rows: dict[str, int] = {}
        doubled: dict[str, list[int]] = {}
        for row_num, cell in enumerate(cells, start=1):
            sku = str(cell).strip()
            if row_num == 1 or not sku:  # row 1 is the header row
                continue
            if rows.setdefault(sku, row_num) != row_num and sku in self._asked:
                doubled.setdefault(sku, []).append(row_num)
        self._rows = rows
        self._doubled = doubled
        self._has_header = bool(cells)

    async def _clear_doubled(self) -> None:
        """Keep each doubled SKU's first row: copy into it what only a later row holds, and
        empty the later rows, in one read and one write."""
        doubled, self._doubled = self._doubled, {}
        span = RowSpan(self._title, self._columns.values())
        groups = [[self._rows[sku], *later] for sku, later in doubled.items()]
        ranges = [span.a1(row) for group in groups for row in group]
        answer = await self._backend.call(
            lambda: self._spreadsheet.values_batch_get(ranges), self._target, self._reads
        )
        data, moved = span.merge_plan(groups, answer.get("valueRanges") or [])
        body = {"valueInputOption": "RAW", "data": data}
        await self._backend.call(
            lambda: send_fenced(self._guard, lambda: self._spreadsheet.values_batch_update(body)),
            self._target,
            self._write_bucket,
        )
        self._moved.update(moved)
        logger.warning(
            "cleared doubled sheet rows %s (each SKU keeps its first row)",
            ", ".join(f"{row}->{kept}" for row, kept in moved.items()),
        )

    async def find_row(self, sku: str) -> int | None:
        self._asked.add(sku.strip())
        return self._rows.get(sku.strip())

    async def append_row(self, sku: str, url: str) -> int:
        key = sku.strip()
        if not key:
            raise StepError("empty SKU")
        self._asked.add(key)
        if key in self._rows:  # a re-run: the row is there already
            return self._rows[key]
        if self._appends is not None:
            return await self._appends.submit((key, url))

        async def item() -> list[tuple[str, str]]:
            return [(key, url)]

        async with self._append_lock:
            return (await self._append_rows(item))[0]

    async def _flush_appends(self, batch: Batch[tuple[str, str]]) -> list[int]:
        async with self._append_lock:
            return await self._append_rows(batch.take)

    async def _append_rows(self, take: Callable[[], Awaitable[list[tuple[str, str]]]]) -> list[int]:
        """One ``values.append`` for the SKUs not in the sheet yet; their rows, in item order.

        ``take`` runs once a write token is held, so that items arriving meanwhile still join.
        The answer's ``updatedRange`` spans first..last appended row.
        """
        items: list[tuple[str, str]] | None = None

        async def attempt() -> None:
            nonlocal items
            if items is None:
                items = await take()
            if self._append_maybe_landed:
                # The last append failed but may have landed: look before appending duplicates.
                await self._backend.call(self._read_skus, self._target, self._reads)
                self._append_maybe_landed = False
            urls: dict[str, str] = {}
            for sku, url in items:
                urls.setdefault(sku, url)  # the first URL given for a SKU wins
            missing = [sku for sku in urls if sku not in self._rows]
            if not missing:
                return
            rows, first = self._append_body(missing, urls)
            last = column_letter(first + len(rows[0]) - 1)
            table = absolute_range_name(self._title, f"{column_letter(first)}:{last}")
            params = {"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"}
            try:
                answer = await send_fenced(
                    self._guard, lambda: self._spreadsheet.values_append(table, params, {"values": rows})
                )
            except Exception as exc:
                self._append_maybe_landed = maybe_applied(exc)
                raise
            updated = str(answer["updates"]["updatedRange"])
            top, bottom = self._rows_from(updated, column_letter(first))
            if bottom - top + 1 != len(rows):
                raise StepError(f"appended {len(rows)} rows but Google Sheets reports {updated!r}")
            for offset, sku in enumerate(missing):
                self._rows[sku] = bottom - len(missing) + 1 + offset
            self._has_header = True

        await self._backend.call(attempt, self._target, self._write_bucket)
        assert items is not None
        return [self._rows[sku] for sku, _ in items]

    def _append_body(self, skus: list[str], urls: Mapping[str, str]) -> tuple[list[list[str]], int]:
        """The rows to append (a header first on an empty sheet) and their first column."""
        # An empty sheet gets the header row in the same request, as the local sheet does.
        fields = list(self._columns) if not self._has_header else ["sku", "url"]
        indexes = [column_index(self._columns[name]) for name in fields]
        first, last = min(indexes), max(indexes)
        rows: list[list[str]] = []
        if not self._has_header:
            rows.append([""] * (last - first + 1))
            for name, index in zip(fields, indexes, strict=True):
                rows[0][index - first] = name
        for sku in skus:
            row = [""] * (last - first + 1)
            row[column_index(self._columns["sku"]) - first] = sku
            row[column_index(self._columns["url"]) - first] = urls[sku]
            rows.append(row)
        return rows, first

    def _rows_from(self, updated_range: str, expected_column: str) -> tuple[int, int]:
        """First and last row of ``updatedRange`` ('Sheet1!A7:P9' -> (7, 9))."""
        match = _UPDATED_RANGE.match(updated_range.rpartition("!")[2])
        if match is None:
            raise StepError(f"unexpected updatedRange from Google Sheets: {updated_range!r}")
        if match[1] != expected_column:
            # Google appends from the first column of the table it detected; say so if it moved.
            logger.warning("append landed at %s, expected column %s", updated_range, expected_column)
        return int(match[2]), int(match[4] or match[2])

    async def write_fields(self, row_num: int, values: Mapping[str, str]) -> None:
        row_num = self._moved.get(row_num, row_num)  # a cleared doubled row: write to the kept one
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
        if self._writes is not None:
            await self._writes.submit(data)
        else:

            async def item() -> list[list[dict[str, Any]]]:
                return [data]

            await self._send_writes(item)

    async def _flush_writes(self, batch: Batch[list[dict[str, Any]]]) -> list[None]:
        return [None] * await self._send_writes(batch.take)

    async def _send_writes(self, take: Callable[[], Awaitable[list[list[dict[str, Any]]]]]) -> int:
        """One ``values.batchUpdate`` with every range of the items ``take`` gives once a token is held."""
        items: list[list[dict[str, Any]]] | None = None

        async def attempt() -> None:
            nonlocal items
            if items is None:
                items = await take()
            body = {"valueInputOption": "RAW", "data": [data for item in items for data in item]}
            await send_fenced(self._guard, lambda: self._spreadsheet.values_batch_update(body))

        await self._backend.call(attempt, self._target, self._write_bucket)
        return len(items or ())

    async def close(self) -> None:
        for coalescer in (self._appends, self._writes):
            if coalescer is not None:
                await coalescer.aclose()
        self._rows.clear()
