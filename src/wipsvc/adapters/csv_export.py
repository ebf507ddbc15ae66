"""The CSV export of a collection's built-in worksheet (``GET /api/collections/{name}/sheet.csv``).

A cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'``, so that no
spreadsheet program opening the file runs it as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

from wipsvc.collection import column_index
from wipsvc.text import csv_cell


def sheet_as_csv(rows: Iterable[tuple[int, Mapping[str, object]]], columns: Iterable[str]) -> str:
    """``rows`` (row number, cells by column letter) as CSV, as wide as the mapped ``columns``."""
    width = max((column_index(letter) + 1 for letter in columns), default=0)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for _, cells in rows:
        line = [""] * width
        for letter, value in cells.items():
            index = column_index(letter)
            if index < width:
                line[index] = csv_cell(str(value))
        writer.writerow(line)
    return buffer.getvalue()
