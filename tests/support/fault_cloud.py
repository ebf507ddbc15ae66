"""The fakes of the real backends set up for fault injection: a header row, the service's own quota
pacing out of the way (the storms are injected, and counted exactly), and the step's backoff
recorded instead of slept."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.support.cloud import FakeCloud
from tests.support.live import Started, make_settings, start_job
from tests.support.sheet_servers import HEADER, WORKSHEET
from tests.support.sleeps import RecordingSleep
from wipsvc.adapters.google_sheets import GoogleSheetsBackend
from wipsvc.collection import DEFAULT_COLUMNS, column_index
from wipsvc.config import Settings
from wipsvc.pipeline.retry import RetryPolicy

COLLECTION = "faults"
SA_EMAIL = "wipsvc-faults@fake-project.iam.gserviceaccount.com"
COLUMN = {name: column_index(letter) for name, letter in DEFAULT_COLUMNS.items()}


class Cloud(FakeCloud):
    """The fakes of the real-backends tests, with a header row, quotas out of the way (the storms
    below are injected, and counted exactly) and Google's backoff recorded instead of slept."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(
            tmp_path,
            worksheet=WORKSHEET,
            service_account_email=SA_EMAIL,
            read_quota=100_000,
            write_quota=100_000,
        )
        self.sheets.set_rows(self.spreadsheet_id, WORKSHEET, [HEADER])
        self.backoff = RecordingSleep()

    def settings(self, database_url: str, *, llm: bool = False, **overrides: Any) -> Settings:
        if llm:
            overrides |= {"llm_base_url": self.llm.base_url, "llm_api_key": self.llm.api_key}
        return make_settings(
            database_url,
            sheets_api_url=self.sheets.url,
            apps_script_api_url=self.script.url,
            llm_model="fake-model",
            # Our own quota pacing out of the way: the faults here are injected and counted.
            sheets_write_per_minute=100_000,
            sheets_read_per_minute=100_000,
            rate_limit_backoff_seconds=0.01,
            rate_limit_max_backoff_seconds=0.05,
            credentials_dir=str(self.credentials_dir),
            **overrides,
        )

    def google_sheets(self) -> GoogleSheetsBackend:
        """The real Sheets client without quota buckets: each 429 uses one of a step's tries."""
        return GoogleSheetsBackend(self.sheets.url)

    def retry(self, settings: Settings) -> RetryPolicy:
        """The step's retry policy, its backoff recorded instead of slept (no jitter)."""
        return RetryPolicy(
            max_attempts=settings.step_max_attempts,
            quota_wait=settings.quota_wait_seconds,
            sleep=self.backoff,
            draw=lambda: 1.0,
        )

    def config(self, *, cleaning: dict[str, Any] | None = None, llm: bool = False) -> dict[str, Any]:
        return {
            "sheet": {
                "backend": "google",
                "spreadsheet_id": self.spreadsheet_id,
                "worksheet": WORKSHEET,
                "credentials_file": self.service_account.name,
            },
            "cleaning": cleaning or {"backend": "python"},
            "llm": {"enabled": llm},
        }

    def rows_by_sku(self) -> dict[str, list[str]]:
        """Data rows by SKU; fails if a SKU is on two rows."""
        header, *rows = self.sheets.rows(self.spreadsheet_id, WORKSHEET)
        assert header == HEADER
        counts = Counter(cell_of(row, "sku") for row in rows)
        assert all(count == 1 for count in counts.values()), f"SKUs on several rows: {counts}"
        return {cell_of(row, "sku"): row for row in rows}


def cell_of(row: list[str], name: str) -> str:
    """The cell of a sheet row for a field of the default column mapping."""
    index = COLUMN[name]
    return row[index] if index < len(row) else ""


async def start_faults_job(
    client: httpx.AsyncClient, config: dict[str, Any], products: list[tuple[str, str]]
) -> Started:
    """Set the collection up with ``config``, create the products and start a job of them."""
    (await client.put(f"/api/collections/{COLLECTION}", json=config)).raise_for_status()
    return await start_job(client, COLLECTION, products)
