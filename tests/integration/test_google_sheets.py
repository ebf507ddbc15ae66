"""GoogleSheetsBackend through the real gspread/gspread-asyncio/google-auth stack, against the fakes."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.sheets import FakeSheets
from tests.support.google_fakes import SA_EMAIL
from tests.support.sleeps import RecordingSleep
from wipsvc.adapters.base import SheetSession
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.collection import DEFAULT_COLUMNS, CollectionConfig, SheetConfig, column_index
from wipsvc.config import Settings
from wipsvc.domain.errors import StepError
from wipsvc.limits import Limits
from wipsvc.pipeline.retry import RetryPolicy, with_retries

HEADER = [name for name, _ in sorted(DEFAULT_COLUMNS.items(), key=lambda item: column_index(item[1]))]


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def backend(
    sheets: FakeSheets, credentials: Path, sleep: RecordingSleep
) -> AsyncIterator[GoogleSheetsBackend]:
    backend = GoogleSheetsBackend(sheets.url, str(credentials))
    yield backend
    await backend.aclose()


@pytest.fixture
def spreadsheet_id(sheets: FakeSheets) -> str:
    sid = sheets.add_spreadsheet(worksheets=["Sheet1", "Other tab"])
    sheets.set_rows(sid, "Sheet1", [HEADER, ["OLD-1", "https://shop.example/old-1", "Old title"]])
    return sid


def config_for(spreadsheet_id: str, columns: dict[str, str] | None = None, **sheet: Any) -> CollectionConfig:
    sheet_config = SheetConfig(backend="google", spreadsheet_id=spreadsheet_id, **sheet)
    if columns is None:
        return CollectionConfig(sheet=sheet_config)
    return CollectionConfig(sheet=sheet_config, columns=columns)


PRODUCT = {
    "title": "Stoneware mug",
    "brand": "Acme",
    "price": "12.50",
    "currency": "EUR",
    "gtin": "04006381333931",
    "image_url": "https://shop.example/img/mug.jpg",
    "body_html": "<p>A mug.</p>",
    "features": "Dishwasher safe\nMicrowave safe",
    "status": "done",
    "not_a_column": "ignored",
}


async def test_open_append_and_write_fill_every_mapped_column(
    backend: GoogleSheetsBackend, sheets: FakeSheets, spreadsheet_id: str
) -> None:
    session: SheetSession = await backend.open(config_for(spreadsheet_id))
    assert await session.find_row("OLD-1") == 2
    assert await session.find_row("NEW-1") is None

    row = await session.append_row("NEW-1", "https://shop.example/new-1")
    await session.write_fields(row, PRODUCT)
    await session.close()

    assert row == 3
    written = sheets.rows(spreadsheet_id, "Sheet1")[2]
    expected = {"sku": "NEW-1", "url": "https://shop.example/new-1"} | PRODUCT
    assert written == [expected.get(name, "") for name in HEADER][: len(written)]
    assert written[column_index("P")] == "done"
    assert "ignored" not in written
    assert sheets.rows(spreadsheet_id, "Other tab") == []


async def test_custom_column_letters_and_quoted_worksheet(
    backend: GoogleSheetsBackend, sheets: FakeSheets
) -> None:
    sid = sheets.add_spreadsheet(worksheets=["Imports (WIP)"])
    sheets.set_rows(sid, "Imports (WIP)", [["title", "", "sku", "", "url"]])
    columns = {"sku": "C", "url": "E", "title": "A", "price": "Z"}
    session = await backend.open(config_for(sid, columns, worksheet="Imports (WIP)"))

    row = await session.append_row("00123", "https://shop.example/p/123")
    await session.write_fields(row, {"title": "Lamp", "price": "99", "brand": "no column"})

    assert row == 2
    line = sheets.rows(sid, "Imports (WIP)")[1]
    assert (line[0], line[2], line[4], line[25]) == ("Lamp", "00123", "https://shop.example/p/123", "99")
    assert [cell for i, cell in enumerate(line) if i not in (0, 2, 4, 25)] == [""] * 22


async def test_request_budget_is_one_append_and_one_batch_update_per_product(
    backend: GoogleSheetsBackend, sheets: FakeSheets, spreadsheet_id: str
) -> None:
    session = await backend.open(config_for(spreadsheet_id))
    # spreadsheet metadata (open_by_key), worksheet metadata, the SKU column: all reads.
    assert sheets.count("spreadsheets.get") == 2
    assert sheets.count("values.get") == 1
    assert sheets.count(kind="write") == 0

    for n in range(5):
        row = await session.append_row(f"SKU-{n}", f"https://shop.example/{n}")
        assert await session.find_row(f"SKU-{n}") == row
        await session.write_fields(row, {"title": f"Product {n}", "status": "done"})

    assert sheets.count("values.append") == 5
    assert sheets.count("values.batchUpdate") == 5
    assert sheets.count(kind="read") == 3  # nothing read per product
    assert len(sheets.requests) == 13

    # A later job on the same backend: gspread-asyncio's client caches the metadata.
    sheets.reset_counts()
    await backend.open(config_for(spreadsheet_id))
    assert [r.method for r in sheets.requests] == ["values.get"]


async def test_rerun_finds_existing_row_and_never_appends_twice(
    sheets: FakeSheets, credentials: Path, spreadsheet_id: str, sleep: RecordingSleep
) -> None:
    first = GoogleSheetsBackend(sheets.url, str(credentials))
    session = await first.open(config_for(spreadsheet_id))
    row = await session.append_row("SKU-9", "https://shop.example/9")
    await first.aclose()

    # A new process resumes the job.
    second = GoogleSheetsBackend(sheets.url, str(credentials))
    sheets.reset_counts()
    session = await second.open(config_for(spreadsheet_id))
    assert await session.find_row("SKU-9") == row
    assert await session.append_row("SKU-9", "https://shop.example/9") == row
    await session.write_fields(row, {"title": "Resumed"})
    await second.aclose()

    assert sheets.count("values.append") == 0
    skus = [line[0] for line in sheets.rows(spreadsheet_id, "Sheet1")]
    assert skus.count("SKU-9") == 1
    assert sheets.rows(spreadsheet_id, "Sheet1")[row - 1][2] == "Resumed"


async def test_concurrent_products_get_distinct_rows(
    backend: GoogleSheetsBackend, sheets: FakeSheets, spreadsheet_id: str
) -> None:
    session = await backend.open(config_for(spreadsheet_id))

    async def product(sku: str) -> int:
        row = await session.append_row(sku, f"https://shop.example/{sku}")
        await session.write_fields(row, {"title": f"Title {sku}"})
        return row

    skus = [f"C-{n}" for n in range(8)]
    rows = await asyncio.gather(*(product(sku) for sku in [*skus, "C-0", "C-3"]))

    assert len(set(rows)) == 8
    assert sheets.count("values.append") == 8
    lines = sheets.rows(spreadsheet_id, "Sheet1")
    for sku, row in zip(skus, rows, strict=False):
        assert lines[row - 1][:3] == [sku, f"https://shop.example/{sku}", f"Title {sku}"]


async def test_empty_sheet_gets_the_header_in_the_same_append(
    backend: GoogleSheetsBackend, sheets: FakeSheets
) -> None:
    sid = sheets.add_spreadsheet()
    session = await backend.open(config_for(sid))
    row = await session.append_row("FIRST", "https://shop.example/first")
    second = await session.append_row("SECOND", "https://shop.example/second")

    assert (row, second) == (2, 3)
    assert sheets.count("values.append") == 2
    lines = sheets.rows(sid, "Sheet1")
    assert lines[0] == HEADER
    assert [line[0] for line in lines] == ["sku", "FIRST", "SECOND"]
    reopened = await backend.open(config_for(sid))
    assert await reopened.find_row("FIRST") == 2


async def test_gspread_calls_do_not_block_the_event_loop(
    backend: GoogleSheetsBackend, sheets: FakeSheets, spreadsheet_id: str
) -> None:
    session = await backend.open(config_for(spreadsheet_id))
    sheets.latency = 0.3
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await session.write_fields(2, {"title": "slow"})
    task.cancel()
    assert ticks >= 10


async def test_429_storm_is_retried_by_the_step_policy_with_growing_capped_delays_and_loses_nothing(
    sheets: FakeSheets, credentials: Path, spreadsheet_id: str
) -> None:
    sleep = RecordingSleep()
    policy = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=5.0, sleep=sleep, draw=lambda: 0.5)
    backend = GoogleSheetsBackend(sheets.url, str(credentials))
    session = await backend.open(config_for(spreadsheet_id))
    sheets.fail_next(6, 429, method="values.append")

    # No quota bucket here: each 429 is a plain transient error and uses one of the step's tries.
    row = await with_retries(lambda: session.append_row("STORM-1", "https://shop.example/storm"), policy, "t")
    await session.write_fields(row, {"title": "Survived"})
    await backend.aclose()

    assert sleep.delays == [0.5, 1.0, 2.0, 2.5, 2.5, 2.5]  # full jitter (0.5 here) of 1, 2, 4, 5, 5, 5
    assert sheets.count("values.append", status=429) == 6
    assert sheets.count("values.append", status=200) == 1
    assert sheets.rows(spreadsheet_id, "Sheet1")[row - 1][:3] == [
        "STORM-1",
        "https://shop.example/storm",
        "Survived",
    ]


async def test_low_write_quota_every_product_lands_after_backing_off(
    sheets: FakeSheets, credentials: Path, spreadsheet_id: str
) -> None:
    sheets.set_quota(write=3)
    sleep = RecordingSleep(on_sleep=sheets.reset_quota)  # each backoff lets "a minute" pass
    policy = RetryPolicy(max_attempts=3, sleep=sleep)
    backend = GoogleSheetsBackend(sheets.url, str(credentials))
    session = await backend.open(config_for(spreadsheet_id))

    for n in range(6):
        sku, url = f"Q-{n}", f"https://shop.example/q/{n}"
        row = await with_retries(functools.partial(session.append_row, sku, url), policy, "append")
        fields = {"title": f"Quota {n}", "status": "done"}
        await with_retries(functools.partial(session.write_fields, row, fields), policy, "write")
    await backend.aclose()

    assert sheets.count(status=429) == len(sleep.delays) > 0
    lines = sheets.rows(spreadsheet_id, "Sheet1")
    assert [line[0] for line in lines[2:]] == [f"Q-{n}" for n in range(6)]
    assert all(line[2].startswith("Quota") and line[15] == "done" for line in lines[2:])


async def test_a_429_is_one_request_and_one_transient_step_error(
    backend: GoogleSheetsBackend, sheets: FakeSheets, spreadsheet_id: str
) -> None:
    session = await backend.open(config_for(spreadsheet_id))
    sheets.fail_next(10, 429, method="values.batchUpdate")

    with pytest.raises(StepError) as caught:
        await session.write_fields(2, {"title": "never"})

    assert caught.value.transient
    assert not caught.value.throttled  # no quota bucket to wait in: the step's tries count it
    assert caught.value.message == "Google Sheets quota exceeded (429 RESOURCE_EXHAUSTED)"
    assert sheets.count("values.batchUpdate") == 1


async def test_a_429_through_a_bucket_pauses_it_and_is_throttled(
    sheets: FakeSheets, credentials: Path, spreadsheet_id: str
) -> None:
    limits = Limits.from_settings(Settings(sheets_write_per_minute=600))
    backend = GoogleSheetsBackend(sheets.url, str(credentials), limits=limits)
    session = await backend.open(config_for(spreadsheet_id))
    sheets.fail_next(1, 429, method="values.batchUpdate")

    with pytest.raises(StepError) as caught:
        await session.write_fields(2, {"title": "later"})
    await backend.aclose()

    assert caught.value.throttled and caught.value.transient
    assert limits.sheets_write.paused_for() > 0  # every caller of the bucket waits now
    assert sheets.count("values.batchUpdate") == 1


async def test_lost_append_response_is_not_appended_twice(
    backend: GoogleSheetsBackend, sheets: FakeSheets, spreadsheet_id: str
) -> None:
    session = await backend.open(config_for(spreadsheet_id))
    sheets.fail_next(1, 503, method="values.append", after_apply=True)

    with pytest.raises(StepError) as caught:
        await session.append_row("LOST-1", "https://shop.example/lost")
    assert caught.value.transient
    row = await session.append_row("LOST-1", "https://shop.example/lost")  # the step's next try

    skus = [line[0] for line in sheets.rows(spreadsheet_id, "Sheet1")]
    assert skus.count("LOST-1") == 1
    assert skus[row - 1] == "LOST-1"
    assert sheets.count("values.append") == 1  # the SKU column was read again instead


async def _permanent_open_error(backend: GoogleSheetsBackend, spreadsheet_id: str) -> str:
    """Opening the spreadsheet fails with a permanent ``StepError``: its message."""
    with pytest.raises(StepError) as caught:
        await backend.open(config_for(spreadsheet_id))
    assert not caught.value.transient
    return caught.value.message


async def test_token_endpoint_rejecting_the_key_is_a_clear_permanent_error(
    backend: GoogleSheetsBackend, oauth: FakeGoogleOAuth, spreadsheet_id: str
) -> None:
    oauth.reject("invalid_grant", "Invalid JWT Signature.")
    assert await _permanent_open_error(backend, spreadsheet_id) == (
        f"Google refused a token for {SA_EMAIL}: invalid_grant: Invalid JWT Signature."
    )
    assert oauth.token_requests == 1  # not retried: a bad key stays bad


async def test_wrong_bearer_token_is_a_clear_permanent_error(
    backend: GoogleSheetsBackend, oauth: FakeGoogleOAuth, sheets: FakeSheets, spreadsheet_id: str
) -> None:
    oauth.mint_invalid_tokens()
    assert await _permanent_open_error(backend, spreadsheet_id) == (
        f"Google Sheets rejected the access token for {SA_EMAIL} (401 UNAUTHENTICATED)"
    )
    assert sheets.count(status=401) >= 1


async def test_check_reports_the_sheet(backend: GoogleSheetsBackend, spreadsheet_id: str) -> None:
    summary = await backend.check(config_for(spreadsheet_id))
    assert summary == (
        f"Google spreadsheet 'Catalogue' ({spreadsheet_id}), worksheet 'Sheet1' "
        f"(1000 rows x 26 columns), as {SA_EMAIL}"
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing spreadsheet", "Google spreadsheet does-not-exist not found"),
        ("missing worksheet", "worksheet 'Nope' not found in Google spreadsheet {sid}"),
        (
            "not shared",
            "no access to Google spreadsheet {sid} (403 PERMISSION_DENIED): share it with " + SA_EMAIL,
        ),
        ("narrow sheet", "worksheet 'Sheet1' has 10 columns; beyond them: "),
        ("no credentials file", "cannot load Google credentials from "),
    ],
)
async def test_check_fails_with_one_line(
    backend: GoogleSheetsBackend, sheets: FakeSheets, tmp_path: Path, case: str, expected: str
) -> None:
    sid = sheets.add_spreadsheet(cols=10 if case == "narrow sheet" else 26)
    config = config_for(sid)
    if case == "missing spreadsheet":
        config = config_for("does-not-exist")
    elif case == "missing worksheet":
        config = config_for(sid, worksheet="Nope")
    elif case == "not shared":
        sid = sheets.add_spreadsheet(shared_with=["someone-else@example.com"])
        config = config_for(sid)
    elif case == "no credentials file":
        config = config_for(sid, credentials_file=str(tmp_path / "missing.json"))

    with pytest.raises(StepError) as caught:
        await backend.check(config)

    assert caught.value.message.startswith(expected.format(sid=sid))
    assert "\n" not in caught.value.message
    assert not caught.value.transient


def test_fake_answers_429_like_google(sheets: FakeSheets, oauth: FakeGoogleOAuth, credentials: Path) -> None:
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
        str(credentials), scopes=["https://www.googleapis.com/auth/spreadsheets"]
    )
    sid = sheets.add_spreadsheet()
    sheets.set_quota(read=1)
    with AuthorizedSession(creds) as http:  # type: ignore[no-untyped-call]
        assert http.get(f"{sheets.url}/v4/spreadsheets/{sid}").status_code == 200
        answer = http.get(f"{sheets.url}/v4/spreadsheets/{sid}/values/Sheet1!A1")
        unauthenticated = requests.get(f"{sheets.url}/v4/spreadsheets/{sid}", timeout=5)
    assert answer.status_code == 429
    assert "Retry-After" not in answer.headers
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["message"].startswith(
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user'"
    )
    assert unauthenticated.status_code == 401


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_transient_and_retried_by_the_step_policy(
    backend: GoogleSheetsBackend, sheets: FakeSheets, spreadsheet_id: str, sleep: RecordingSleep, status: int
) -> None:
    policy = RetryPolicy(max_attempts=3, sleep=sleep, draw=lambda: 0.5)
    session = await backend.open(config_for(spreadsheet_id))
    sheets.fail_next(1, status, method="values.append")  # rejected before it took effect
    sheets.fail_next(2, status, method="values.batchUpdate")

    row = await with_retries(lambda: session.append_row("RETRY-1", "https://shop.example/retry"), policy, "t")
    await with_retries(lambda: session.write_fields(row, {"title": "Retried"}), policy, "t")

    assert sleep.delays == [0.5, 0.5, 1.0]
    assert sheets.count("values.append") == 2 and sheets.count("values.batchUpdate") == 3
    assert [line[0] for line in sheets.rows(spreadsheet_id, "Sheet1")].count("RETRY-1") == 1
    assert sheets.rows(spreadsheet_id, "Sheet1")[row - 1][2] == "Retried"


async def test_request_google_refuses_is_a_permanent_error_with_its_reason(
    backend: GoogleSheetsBackend, sheets: FakeSheets, sleep: RecordingSleep
) -> None:
    sid = sheets.add_spreadsheet(cols=10)  # the default mapping reaches column P
    sheets.set_rows(sid, "Sheet1", [HEADER[:10]])
    session = await backend.open(config_for(sid))
    row = await session.append_row("WIDE-1", "https://shop.example/wide")

    with pytest.raises(StepError) as caught:
        await session.write_fields(row, {"title": "fits", "status": "does not fit"})

    assert not caught.value.transient
    assert caught.value.message.startswith(
        "Google Sheets rejected the request (400 INVALID_ARGUMENT): Range ("
    )
    assert "exceeds grid limits" in caught.value.message
    assert sleep.delays == []
