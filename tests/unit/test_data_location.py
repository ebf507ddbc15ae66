"""One place for data: the default database lives in the data folder, whatever the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from wipsvc.config import Settings


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh current directory with no .env file and no database settings."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("WIPSVC_DATABASE_URL", raising=False)
    return cwd


def test_default_database_is_in_the_data_dir(
    elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WIPSVC_DATA_DIR", str(tmp_path / "data-here"))
    settings = Settings()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data-here' / 'wipsvc.db'}"
    assert settings.database_notice() == [f"database: {tmp_path / 'data-here' / 'wipsvc.db'}"]


def test_without_data_dir_the_users_data_directory_is_used(
    elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WIPSVC_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    settings = Settings()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'xdg' / 'wipsvc' / 'wipsvc.db'}"
    assert settings.database_warning is None


def test_a_database_at_the_old_default_is_used_with_a_warning(
    elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WIPSVC_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    (elsewhere / "data").mkdir()
    (elsewhere / "data" / "wipsvc.db").write_bytes(b"")
    settings = Settings()
    assert settings.database_url == f"sqlite+aiosqlite:///{elsewhere / 'data' / 'wipsvc.db'}"
    notice = settings.database_notice()
    assert notice[0] == f"database: {elsewhere / 'data' / 'wipsvc.db'}"
    assert notice[1].startswith("warning: using the database at")
    assert str(tmp_path / "xdg" / "wipsvc" / "wipsvc.db") in notice[1]


def test_a_chosen_data_dir_wins_over_the_old_default(
    elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (elsewhere / "data").mkdir()
    (elsewhere / "data" / "wipsvc.db").write_bytes(b"")
    monkeypatch.setenv("WIPSVC_DATA_DIR", str(tmp_path / "chosen"))
    settings = Settings()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'chosen' / 'wipsvc.db'}"
    assert settings.database_warning is None


def test_a_database_url_is_printed_without_its_password(elsewhere: Path) -> None:
    settings = Settings(database_url="postgresql+asyncpg://wipsvc:s3cret@db:5432/wipsvc")
    assert settings.database_notice() == ["database: postgresql+asyncpg://wipsvc:***@db:5432/wipsvc"]
