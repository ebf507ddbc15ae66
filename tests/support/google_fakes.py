"""Fixtures of the Google fakes shared by the tests (registered in tests/conftest.py): the
OAuth token endpoint, the Sheets API on it, and a service account's credentials file.
A test module that needs other quotas or latencies overrides ``sheets`` locally."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.sheets import FakeSheets

SA_EMAIL = "wipsvc-test@fake-project.iam.gserviceaccount.com"


@pytest.fixture
def oauth() -> Iterator[FakeGoogleOAuth]:
    with FakeGoogleOAuth() as fake:
        yield fake


@pytest.fixture
def sheets(oauth: FakeGoogleOAuth) -> Iterator[FakeSheets]:
    with FakeSheets(oauth) as fake:
        yield fake


@pytest.fixture
def credentials(oauth: FakeGoogleOAuth, tmp_path: Path) -> Path:
    return oauth.write_service_account(tmp_path / "service-account.json", client_email=SA_EMAIL)
