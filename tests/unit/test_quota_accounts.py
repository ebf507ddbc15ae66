"""Quota buckets per account: which account a collection's job calls, one set of buckets per
account, a project's quota above its users', and what `/api/stats` may show to whom."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from wipsvc.adapters.base import PageFetcher
from wipsvc.collection import CollectionConfig
from wipsvc.config import Settings
from wipsvc.limits.accounts import Account, QuotaAccounts, google_account, llm_account
from wipsvc.pipeline.backends import BackendFactory
from wipsvc.store import CollectionRecord, Store


def _service_account(path: Path, email: str, project: str) -> Path:
    path.write_text(json.dumps({"type": "service_account", "client_email": email, "project_id": project}))
    return path


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite", **values)


def test_google_accounts_come_from_the_credential_files(tmp_path: Path) -> None:
    sa = _service_account(tmp_path / "sa.json", "bot@proj-a.iam.gserviceaccount.com", "proj-a")
    user = tmp_path / "user.json"
    user.write_text(json.dumps({"type": "authorized_user", "client_id": "123", "quota_project_id": "proj-b"}))
    assert google_account(str(sa)) == Account("google", "bot@proj-a.iam.gserviceaccount.com", "proj-a")
    oauth = google_account(str(user))
    assert oauth.identity == "123@user.json" and oauth.project == "proj-b"


def test_an_llm_account_never_holds_the_key() -> None:
    account = llm_account("https://api.example.test/v1/", "sk-secret-123")
    assert "sk-secret-123" not in account.identity
    assert account == llm_account("https://api.example.test/v1", "sk-secret-123")
    assert account != llm_account("https://api.example.test/v1", "sk-other")


async def test_one_set_of_buckets_per_account_with_the_project_above(tmp_path: Path) -> None:
    accounts = QuotaAccounts(
        _settings(tmp_path, sheets_write_per_minute=20, sheets_write_per_minute_per_project=3)
    )
    alice = Account("google", "alice@p", "p")
    bob = Account("google", "bob@p", "p")
    first = accounts.for_job("a", sheets=alice)
    assert accounts.for_job("b", sheets=alice).sheets_write is first.sheets_write
    second = accounts.for_job("c", sheets=bob)
    assert second.sheets_write is not first.sheets_write
    assert second.sheets_write.enclosing is first.sheets_write.enclosing  # one project
    # Each user may write 20 a minute (2 at once), the project 3: the fourth call waits.
    permits = [await first.sheets_write.acquire() for _ in range(2)]
    permits.append(await second.sheets_write.acquire())
    waiting = asyncio.create_task(second.sheets_write.acquire())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    waiting.cancel()
    for permit in permits:
        permit.release()


def test_usage_shows_names_to_admins_and_aliases_to_collection_keys(tmp_path: Path) -> None:
    accounts = QuotaAccounts(_settings(tmp_path))
    accounts.for_job("sinks", sheets=Account("google", "bot@proj.iam.gserviceaccount.com", "proj"))
    accounts.for_job("taps", sheets=Account("google", "other@proj.iam.gserviceaccount.com", "proj"))
    admin = accounts.usage(None, reveal=True)
    assert {row["account"] for row in admin} == {
        "bot@proj.iam.gserviceaccount.com",
        "other@proj.iam.gserviceaccount.com",
    }
    scoped = accounts.usage(frozenset({"sinks"}), reveal=False)
    assert len(scoped) == 1 and scoped[0]["collections"] == ["sinks"]
    assert "@" not in json.dumps(scoped) and "proj" not in json.dumps(scoped)
    assert scoped[0]["alias"].startswith("google-")
    assert set(scoped[0]["buckets"]) == {"sheets_write", "sheets_read"}


async def test_a_jobs_limits_are_its_collections_accounts(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    _service_account(credentials / "a.json", "a@proj.iam.gserviceaccount.com", "proj")
    _service_account(credentials / "b.json", "b@proj.iam.gserviceaccount.com", "proj")
    settings = _settings(tmp_path, credentials_dir=str(credentials))
    # Choosing a job's accounts reads neither the store nor a page.
    factory = BackendFactory(settings, cast(Store, None), fetcher=cast(PageFetcher, None))
    try:

        def collection(name: str, credentials_file: str) -> CollectionRecord:
            config = CollectionConfig.model_validate(
                {"sheet": {"backend": "google", "spreadsheet_id": "x", "credentials_file": credentials_file}}
            )
            now = datetime.now(UTC)
            return CollectionRecord(name=name, config=config, created_at=now, updated_at=now)

        a = factory.job_limits(collection("sinks", str(credentials / "a.json")))
        b = factory.job_limits(collection("taps", str(credentials / "b.json")))
        again = factory.job_limits(collection("baths", str(credentials / "a.json")))
        assert a.sheets_write is not b.sheets_write
        assert again.sheets_write is a.sheets_write
        usage = factory.quota_usage(None, reveal=True)
        assert [row["collections"] for row in usage if row["account"].startswith("a@")] == [
            ["baths", "sinks"]
        ]
    finally:
        await factory.aclose()
