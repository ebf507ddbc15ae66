"""The in-memory spreadsheet behind :class:`~tests.fakes.sheets.FakeSheets`.

A1-range parsing and the spreadsheet/worksheet grid with Google's ``values.get``,
``values.update`` and ``values.append`` semantics. Nothing here is locked: the server
holds its lock around every call.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wipsvc.collection import column_index, column_letter


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
class Book:
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
