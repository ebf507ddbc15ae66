"""A Google Sheets session fenced by a job's lease, and the clean-up of doubled rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.sheets import FakeSheets
from wipsvc.adapters.google_sheets import GoogleSheetsBackend, GoogleSheetsSession
from wipsvc.collection import DEFAULT_COLUMNS, CollectionConfig, SheetConfig, column_index
from wipsvc.store import LeaseLost
from wipsvc.store.lease import Lease, LeaseGuard

HEADER = [name for name, _ in sorted(DEFAULT_COLUMNS.items(), key=lambda item: column_index(item[1]))]
COLUMN = {name: column_index(letter) for name, letter in DEFAULT_COLUMNS.items()}


def _row(**cells: str) -> list[str]:
    row = [""] * len(HEADER)
    for name, value in cells.items():
        row[COLUMN[name]] = value
    return row


def _cell(row: list[str], name: str) -> str:
    return row[COLUMN[name]] if COLUMN[name] < len(row) else ""


@pytest.fixture
async def backend(
    oauth: FakeGoogleOAuth, sheets: FakeSheets, tmp_path: Path
) -> AsyncIterator[GoogleSheetsBackend]:
    credentials = oauth.write_service_account(tmp_path / "sa.json", client_email="fence@fake.iam")
    backend = GoogleSheetsBackend(sheets.url, str(credentials))
    yield backend
    await backend.aclose()


async def _open_new(
    backend: GoogleSheetsBackend, sheets: FakeSheets, rows: list[list[str]]
) -> tuple[str, GoogleSheetsSession]:
    """A new spreadsheet whose Sheet1 holds ``rows``, opened: its id and the session."""
    sid = sheets.add_spreadsheet()
    sheets.set_rows(sid, "Sheet1", rows)
    config = CollectionConfig(sheet=SheetConfig(backend="google", spreadsheet_id=sid))
    return sid, await backend.open(config)


async def test_a_write_waits_for_a_valid_lease_and_never_goes_out_once_it_is_lost(
    backend: GoogleSheetsBackend, sheets: FakeSheets
) -> None:
    sid, session = await _open_new(backend, sheets, [HEADER])
    guard = LeaseGuard(Lease("job-1", "a", seconds=15.0, margin=5.0))  # not renewed yet
    session.fence_with(guard)

    append = asyncio.create_task(session.append_row("FENCED-1", "https://shop.example/1"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not append.done() and sheets.count("values.append") == 0
    guard.renewed(guard.lease.renewed(sent_at=guard.now()))
    assert await append == 2
    assert sheets.count("values.append") == 1

    guard.lose(LeaseLost("job job-1 is no longer owned by a"))
    with pytest.raises(LeaseLost):
        await session.append_row("FENCED-2", "https://shop.example/2")
    with pytest.raises(LeaseLost):
        await session.write_fields(2, {"status": "ready"})
    assert sheets.count("values.append") == 1 and sheets.count("values.batchUpdate") == 0
    assert [row[: COLUMN["url"] + 1] for row in sheets.rows(sid, "Sheet1")[1:]] == [
        ["FENCED-1", "https://shop.example/1"][: COLUMN["url"] + 1]
    ]
    await session.close()


async def test_a_doubled_row_of_the_jobs_skus_is_emptied_and_the_first_row_kept(
    backend: GoogleSheetsBackend, sheets: FakeSheets
) -> None:
    sid, session = await _open_new(
        backend,
        sheets,
        [
            HEADER,
            _row(sku="DUP-1", url="https://shop.example/dup", title="Mug"),  # row 2: kept
            _row(sku="OTHER-1", url="https://shop.example/other"),  # row 3
            _row(sku="DUP-1", url="https://shop.example/dup", price="12.50"),  # row 4: the late append
            _row(sku="NOT-OURS", url="https://shop.example/a"),  # row 5
            _row(sku="NOT-OURS", url="https://shop.example/b"),  # row 6: not this job's SKU
        ],
    )
    assert await session.find_row("DUP-1") == 2
    await session.refresh()

    rows = sheets.rows(sid, "Sheet1")
    assert _cell(rows[1], "sku") == "DUP-1" and _cell(rows[1], "title") == "Mug"
    assert _cell(rows[1], "price") == "12.50"  # what only the later row held moved up
    assert not any(rows[3]), rows[3]  # emptied, not deleted: the rows below stay where they were
    assert _cell(rows[2], "sku") == "OTHER-1"
    assert [_cell(rows[4], "sku"), _cell(rows[5], "sku")] == ["NOT-OURS", "NOT-OURS"]
    assert await session.find_row("DUP-1") == 2

    # A write aimed at the emptied row (e.g. by a product that had noted it) goes to the kept one.
    await session.write_fields(4, {"status": "ready"})
    rows = sheets.rows(sid, "Sheet1")
    assert _cell(rows[1], "status") == "ready" and not any(rows[3])
    await session.close()


async def test_a_refresh_finds_an_append_that_landed_after_the_open(
    backend: GoogleSheetsBackend, sheets: FakeSheets
) -> None:
    sid, session = await _open_new(backend, sheets, [HEADER])
    assert await session.find_row("LATE-1") is None
    # Another (paused) instance's append lands meanwhile.
    sheets.set_rows(sid, "Sheet1", [HEADER, _row(sku="LATE-1", url="https://shop.example/late")])
    await session.refresh()
    assert await session.find_row("LATE-1") == 2
    assert await session.append_row("LATE-1", "https://shop.example/late") == 2
    assert sheets.count("values.append") == 0
    await session.close()
