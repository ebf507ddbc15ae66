"""wipsvc server processes that write to the fake Google Sheets: a spreadsheet with the default
header row, shared with the service account, and the settings that point a server at them."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.fakes.sheets import FakeSheets
from tests.support.server_process import server_env
from wipsvc.collection import DEFAULT_COLUMNS, column_index

WORKSHEET = "Sheet1"
# The default column mapping's field names, in column order: a new sheet's header row.
HEADER = [name for name, _ in sorted(DEFAULT_COLUMNS.items(), key=lambda item: column_index(item[1]))]


def add_sheet(sheets: FakeSheets, account: str) -> str:
    """A spreadsheet shared with ``account``, its worksheet holding the header row; its id."""
    spreadsheet_id = sheets.add_spreadsheet(worksheets=[WORKSHEET], shared_with=[account])
    sheets.set_rows(spreadsheet_id, WORKSHEET, [HEADER])
    return spreadsheet_id


def sheets_server_env(credentials: Path, sheets: FakeSheets, **settings: object) -> dict[str, str]:
    """A server's environment (see ``server_env``) for pages on loopback and the fake Sheets."""
    return server_env(
        scrape_allowed_hosts="127.0.0.1",
        sheets_api_url=sheets.url,
        google_credentials_file=credentials,
        workers_per_job=3,
        # Our own Sheets pacing (Google's 60 writes a minute) would make these jobs last minutes.
        sheets_write_per_minute=1_000_000,
        sheets_read_per_minute=1_000_000,
        **settings,
    )


def create_sheet_products(
    client: httpx.Client, collection: str, spreadsheet_id: str, products: list[tuple[str, str]]
) -> list[int]:
    """Point ``collection`` at the spreadsheet (Python cleaning, no LLM) and create the products
    in it; their wip_ids."""
    config = {
        "sheet": {"backend": "google", "spreadsheet_id": spreadsheet_id, "worksheet": WORKSHEET},
        "cleaning": {"backend": "python"},
        "llm": {"enabled": False},
    }
    client.put(f"/api/collections/{collection}", json=config).raise_for_status()
    created = client.post(
        f"/api/{collection}/wip", json={"products": [{"sku": s, "url": u} for s, u in products]}
    )
    created.raise_for_status()
    wip_ids: list[int] = created.json()["wip_ids"]
    return wip_ids
