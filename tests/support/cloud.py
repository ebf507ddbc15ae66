"""Every vendor of the real backends as a fake on 127.0.0.1: Google's token endpoint, Sheets and
Apps Script, and an OpenAI-compatible API (:class:`FakeCloud`), with the collection that uses them
all and what its sheet must hold."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any, Self

import httpx

from tests.fakes.apps_script import FakeAppsScript
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.sheets import FakeSheets
from tests.support.live import make_settings
from wipsvc.collection import column_index
from wipsvc.config import Settings

COLLECTION = "sinks"
WORKSHEET = "Products"
SA_EMAIL = "wipsvc-e2e@fake-project.iam.gserviceaccount.com"
# Not the default layout: fields in another order, colour and material added, column R left empty,
# so that a value landing in the wrong column cannot go unnoticed.
COLUMNS = {
    "title": "A",
    "sku": "B",
    "url": "C",
    "status": "D",
    "price": "E",
    "currency": "F",
    "brand": "G",
    "gtin": "H",
    "mpn": "I",
    "availability": "J",
    "category": "K",
    "image_url": "L",
    "color": "M",
    "material": "N",
    "description": "O",
    "body_html": "P",
    "features": "Q",
    "care_instructions": "S",
}
# Sheets requests of one job that do not depend on its size: open_by_key and worksheet() read the
# spreadsheet's metadata, then the SKU column is read once.
SHEETS_REQUESTS_PER_JOB = 3
# values.append (sheet_row), values.batchUpdate of the row (clean), of the status (complete).
SHEETS_REQUESTS_PER_PRODUCT = 3


class FakeCloud:
    """Google's token endpoint, Sheets and Apps Script, and an OpenAI-compatible API, all fakes."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        worksheet: str = WORKSHEET,
        service_account_email: str = SA_EMAIL,
        **sheets_options: Any,  # FakeSheets' quotas and quota window
    ) -> None:
        self._stack = ExitStack()
        self.worksheet = worksheet
        self.oauth = self._stack.enter_context(FakeGoogleOAuth())
        self.sheets = self._stack.enter_context(FakeSheets(self.oauth, **sheets_options))
        self.script = self._stack.enter_context(FakeAppsScript(token_validator=self.oauth.is_valid))
        self.llm = self._stack.enter_context(FakeOpenAI(api_key="sk-e2e-test"))
        # Collections name credential files relative to the operator's directory.
        self.credentials_dir = tmp_path / "credentials"
        self.credentials_dir.mkdir()
        self.service_account = self.oauth.write_service_account(
            self.credentials_dir / "service-account.json", client_email=service_account_email
        )
        self.authorized_user = self.oauth.write_authorized_user(self.credentials_dir / "authorized-user.json")
        self.spreadsheet_id = self.sheets.add_spreadsheet(
            title="Catalogue", worksheets=[worksheet], shared_with=[service_account_email]
        )

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def settings(self, database_url: str, **overrides: Any) -> Settings:
        return make_settings(
            database_url,
            sheets_api_url=self.sheets.url,
            apps_script_api_url=self.script.url,
            llm_base_url=self.llm.base_url,
            llm_api_key=self.llm.api_key,
            llm_model="fake-model",
            credentials_dir=str(self.credentials_dir),
            **overrides,
        )

    def collection_config(self) -> dict[str, Any]:
        """The body of ``PUT /api/collections/{name}``: every backend on its real client."""
        return {
            "sheet": {
                "backend": "google",
                "spreadsheet_id": self.spreadsheet_id,
                "worksheet": self.worksheet,
                "credentials_file": self.service_account.name,
            },
            "columns": COLUMNS,
            "cleaning": {
                "backend": "apps_script_api",
                "script_id": self.script.script_id,
                "function": "cleanRow",
                "oauth_credentials_file": self.authorized_user.name,
            },
            "llm": {"enabled": True, "model": "fake-extractor"},
        }

    def sheet_rows(self) -> dict[str, dict[str, str]]:
        """Data rows by SKU, each as field -> cell; fails if a SKU is on more than one row."""
        header, *rows = self.sheets.rows(self.spreadsheet_id, self.worksheet)
        assert [header[column_index(letter)] for letter in COLUMNS.values()] == list(COLUMNS)
        by_sku: dict[str, dict[str, str]] = {}
        for line in rows:
            cells = {name: cell_at(line, letter) for name, letter in COLUMNS.items()}
            assert cells["sku"] not in by_sku, f"SKU {cells['sku']} is on two rows"
            by_sku[cells["sku"]] = cells
            unmapped = [cell for index, cell in enumerate(line) if index not in _MAPPED]
            assert set(unmapped) <= {""}, f"a value outside the mapping: {unmapped}"
        return by_sku


_MAPPED = {column_index(letter) for letter in COLUMNS.values()}


def cell_at(line: list[str], letter: str) -> str:
    """The cell of a sheet row in a column given by letter (empty past the row's end)."""
    index = column_index(letter)
    return line[index] if index < len(line) else ""


async def configure(client: httpx.AsyncClient, cloud: FakeCloud) -> None:
    response = await client.put(f"/api/collections/{COLLECTION}", json=cloud.collection_config())
    assert response.status_code == 200, response.text
    stored = response.json()["collection"]["config"]
    assert (stored["sheet"]["backend"], stored["cleaning"]["backend"]) == ("google", "apps_script_api")


async def product_record(client: httpx.AsyncClient, wip_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/{COLLECTION}/wip/{wip_id}")
    assert response.status_code == 200, response.text
    product: dict[str, Any] = response.json()["product"]
    return product


def expected_cells(product: dict[str, Any]) -> dict[str, str]:
    """What the row of a finished product must hold, from the service's own record of it."""
    extracted: dict[str, Any] = product["extracted"]
    descriptions: dict[str, Any] = product["descriptions"]
    values = {
        name: ", ".join(value) if isinstance(value, list) else str(value)
        for name, value in extracted.items()
        if name in COLUMNS and name not in ("sku", "url")
    }
    values |= {
        "sku": product["sku"],
        "url": product["url"],
        "status": "ready",
        "body_html": descriptions["body_html"],
        "features": "\n".join(descriptions["features"]),
        "care_instructions": descriptions["care_instructions"],
    }
    return values
