"""Keeping a paused instance's writes out of a Google sheet, and cleaning up after one that got in.

A write is sent only while the job's lease is certainly valid for longer than Sheets writes take
(:func:`send_fenced`), and requests time out below the lease safety margin (:func:`sheets_timeout`).
Sheets has no conditional write, though: a request already on its way when the process was paused
can land after another instance took the job over. When a re-read of the SKU column then finds two
rows for one SKU, :class:`RowSpan` plans the clean-up: the first row is kept and gets whatever only
the later rows hold; the later rows are emptied, never deleted (deleting would shift the rows of
other products).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from gspread.utils import absolute_range_name

from wipsvc.adapters.google_api import SEND_CHECK
from wipsvc.collection import column_index, column_letter
from wipsvc.config import Settings
from wipsvc.store.lease import LeaseGuard, effective_margin

T = TypeVar("T")
WRITE = "sheets_write"  # the kind of call whose durations the lease guard keeps


def sheets_timeout(settings: Settings) -> float:
    """A request's time limit, below the lease safety margin: a write started while the lease
    is certainly valid has ended (or been given up) before the lease can expire."""
    margin = effective_margin(settings.lease_seconds, settings.lease_safety_margin_seconds)
    return min(settings.sheets_timeout_seconds, 0.8 * margin)


class _NotYet(Exception):
    """The lease's certain validity became too short while the request waited for its turn."""


async def send_fenced(guard: LeaseGuard | None, send: Callable[[], Awaitable[T]]) -> T:
    """Send a write only while the lease is certainly valid for longer than writes take (p95);
    checked again inside the client's call lock, just before the request leaves."""
    if guard is None:
        return await send()

    def check() -> None:
        if not guard.check(WRITE):
            raise _NotYet

    while True:
        await guard.admit(WRITE)
        token = SEND_CHECK.set(check)
        started = guard.now()
        sent = True
        try:
            return await send()
        except _NotYet:
            sent = False
        finally:
            SEND_CHECK.reset(token)
            if sent:
                guard.observe(WRITE, guard.now() - started)


class RowSpan:
    """The cells of one row that a collection's columns cover (first to last mapped column)."""

    def __init__(self, title: str, letters: Iterable[str]) -> None:
        indexes = sorted({column_index(letter) for letter in letters})
        self.title = title
        self.first = indexes[0]
        self.width = indexes[-1] - indexes[0] + 1

    def a1(self, row: int) -> str:
        last = column_letter(self.first + self.width - 1)
        return absolute_range_name(self.title, f"{column_letter(self.first)}{row}:{last}{row}")

    def merge_plan(
        self, groups: Sequence[Sequence[int]], value_ranges: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """For groups of rows of one SKU (first row first) and their values, read in that order:
        the ``values.batchUpdate`` data that fills the first row's empty cells from the later rows
        and empties the later rows, and which row each emptied row moved to."""
        found = iter(value_ranges)
        data: list[dict[str, Any]] = []
        moved: dict[int, int] = {}
        for kept, *later in groups:
            merged = self._cells(next(found, {}))
            for row in later:
                for offset, value in enumerate(self._cells(next(found, {}))):
                    if value and not merged[offset]:
                        merged[offset] = value
                        cell = f"{column_letter(self.first + offset)}{kept}"
                        data.append({"range": absolute_range_name(self.title, cell), "values": [[value]]})
                data.append({"range": self.a1(row), "values": [[""] * self.width]})
                moved[row] = kept
        return data, moved

    def _cells(self, value_range: Mapping[str, Any]) -> list[str]:
        """A one-row ``valueRange`` as text, padded to the span (Google trims empty cells)."""
        cells = [str(cell) for cell in ((value_range.get("values") or [[]])[0])][: self.width]
        return cells + [""] * (self.width - len(cells))
